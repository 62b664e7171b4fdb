from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.calendar import Deadline, WorkingDayCalendar, build_calendar
from domain.limits import (
    NATIONAL_TOTAL_DAYS,
    NATIONAL_TRANSFER_IN_DAYS,
    NATIONAL_TRANSFER_OUT_DAYS,
    CaseLimits,
    PolicyError,
    compute_not_connected_escalation,
    compute_soft_refusal_deadline,
    compute_transfer_in_deadline,
    compute_transfer_out_deadlines,
)

pytestmark = pytest.mark.unit

D = date.fromisoformat


def test_r12_r13_r14_national_maxima() -> None:
    assert NATIONAL_TRANSFER_OUT_DAYS == 10
    assert NATIONAL_TRANSFER_IN_DAYS == 5
    assert NATIONAL_TOTAL_DAYS == 15
    assert CaseLimits().total_days == NATIONAL_TOTAL_DAYS


class TestR14LimitsValidation:
    def test_r14_defaults_are_valid(self) -> None:
        CaseLimits().validate()

    def test_r14_faster_region_allowed(self) -> None:
        CaseLimits(transfer_out_days=5, transfer_in_days=3, reminder_before_days=1).validate()

    def test_r12_slower_transfer_out_refused(self) -> None:
        with pytest.raises(PolicyError, match="R12"):
            CaseLimits(transfer_out_days=11).validate()

    def test_r13_slower_transfer_in_refused(self) -> None:
        with pytest.raises(PolicyError, match="R13"):
            CaseLimits(transfer_in_days=6).validate()

    @pytest.mark.parametrize(
        "field",
        [
            "transfer_out_days",
            "transfer_in_days",
            "reminder_before_days",
            "soft_refusal_window_days",
            "not_connected_escalation_days",
        ],
    )
    @pytest.mark.parametrize("value", [0, -1])
    def test_r14_limits_below_one_refused(self, field: str, value: int) -> None:
        with pytest.raises(PolicyError, match=field):
            CaseLimits(**{field: value}).validate()

    def test_compute_validates(self, calendar: WorkingDayCalendar) -> None:
        with pytest.raises(PolicyError):
            compute_transfer_out_deadlines(
                D("2026-02-13"), CaseLimits(transfer_out_days=12), calendar
            )
        with pytest.raises(PolicyError):
            compute_transfer_in_deadline(D("2026-02-13"), CaseLimits(transfer_in_days=0), calendar)


class TestR12TransferOutDeadlines:
    def test_r12_r14_spring_festival_2026(self, calendar: WorkingDayCalendar) -> None:
        deadlines = compute_transfer_out_deadlines(D("2026-02-13"), CaseLimits(), calendar)
        assert deadlines.accepted_on == D("2026-02-13")
        assert deadlines.transfer_out_due == Deadline(D("2026-03-05"), ())
        assert deadlines.reminder_on == D("2026-03-03")
        assert deadlines.total_due == Deadline(D("2026-03-12"), ())

    def test_r12_national_day_2026(self, calendar: WorkingDayCalendar) -> None:
        deadlines = compute_transfer_out_deadlines(D("2026-09-30"), CaseLimits(), calendar)
        assert deadlines.transfer_out_due.due == D("2026-10-20")
        assert deadlines.reminder_on == D("2026-10-16")
        assert deadlines.total_due.due == D("2026-10-27")

    def test_r14_faster_region_total(self, calendar: WorkingDayCalendar) -> None:
        limits = CaseLimits(transfer_out_days=5, transfer_in_days=3)
        deadlines = compute_transfer_out_deadlines(D("2026-02-13"), limits, calendar)
        assert deadlines.transfer_out_due.due == D("2026-02-27")
        # 8 working days: 14 Feb, 24-27 Feb, Sat 28 Feb (make-up), 2-3 Mar.
        assert deadlines.total_due.due == D("2026-03-03")

    def test_reminder_never_before_first_working_day_after_acceptance(
        self, calendar: WorkingDayCalendar
    ) -> None:
        limits = CaseLimits(transfer_out_days=1, transfer_in_days=1, reminder_before_days=2)
        deadlines = compute_transfer_out_deadlines(D("2026-02-13"), limits, calendar)
        assert deadlines.transfer_out_due.due == D("2026-02-14")
        assert deadlines.reminder_on == D("2026-02-14")

    def test_r12_deadline_into_uncovered_year_is_flagged(self) -> None:
        calendar = build_calendar([2026])
        deadlines = compute_transfer_out_deadlines(D("2026-12-24"), CaseLimits(), calendar)
        assert deadlines.transfer_out_due == Deadline(D("2027-01-08"), (2027,))  # 1 Jan off
        assert deadlines.total_due.fallback_years == (2027,)


class TestR13TransferInDeadline:
    def test_r13_spring_festival_example(self, calendar: WorkingDayCalendar) -> None:
        deadline = compute_transfer_in_deadline(D("2026-02-13"), CaseLimits(), calendar)
        assert deadline == Deadline(D("2026-02-27"), ())

    def test_r13_regional_limit(self, calendar: WorkingDayCalendar) -> None:
        deadline = compute_transfer_in_deadline(
            D("2026-02-13"), CaseLimits(transfer_in_days=2), calendar
        )
        assert deadline.due == D("2026-02-24")


def test_soft_refusal_window(calendar: WorkingDayCalendar) -> None:
    assert compute_soft_refusal_deadline(D("2026-02-13"), CaseLimits(), calendar).due == D(
        "2026-02-27"
    )


def test_r23_not_connected_escalation(calendar: WorkingDayCalendar) -> None:
    deadline = compute_not_connected_escalation(D("2026-09-30"), CaseLimits(), calendar)
    assert deadline.due == D("2026-10-20")


@given(
    accepted_on=st.dates(min_value=date(2004, 1, 1), max_value=date(2027, 12, 31)),
    out_days=st.integers(min_value=1, max_value=10),
    in_days=st.integers(min_value=1, max_value=5),
    reminder=st.integers(min_value=1, max_value=12),
)
def test_r12_r14_deadline_invariants(
    calendar: WorkingDayCalendar, accepted_on: date, out_days: int, in_days: int, reminder: int
) -> None:
    limits = CaseLimits(
        transfer_out_days=out_days, transfer_in_days=in_days, reminder_before_days=reminder
    )
    deadlines = compute_transfer_out_deadlines(accepted_on, limits, calendar)
    out_due = deadlines.transfer_out_due.due
    assert calendar.working_days_between(accepted_on, out_due) == out_days
    assert calendar.working_days_between(accepted_on, deadlines.total_due.due) == out_days + in_days
    assert accepted_on < deadlines.reminder_on <= out_due
    assert calendar.is_working_day(deadlines.reminder_on)
    if reminder < out_days:
        assert calendar.working_days_between(deadlines.reminder_on, out_due) == reminder
    assert out_due < deadlines.total_due.due
