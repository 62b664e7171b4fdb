from __future__ import annotations

import json
import re
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.documents import EnrolmentPeriod
from domain.balance import BalancePolicy, decide_balance
from domain.calendar import Deadline, WorkingDayCalendar
from domain.continuity import (
    ContinuityAssessment,
    ContinuitySettings,
    Decision,
    EnrolmentSpan,
    add_months,
    assess_continuity,
    back_payment_estimate_fen,
    balance_decision,
    case_deadline_decisions,
    continuity_decisions,
    continuous_paid_months,
    contribution_by_region,
    contribution_due_date,
    deadline_decision,
    deemed_contribution_years,
    deemed_employee_months,
    interruption_months,
    last_paid_month_problem,
    late_fee_days,
    late_fee_estimate_fen,
    monthly_late_fee_fen,
    total_contribution_months,
    uncovered_months,
    waiting_period_end,
)
from domain.eligibility import Scheme
from domain.limits import compute_transfer_out_deadlines
from domain.policy import (
    DEFAULT_POLICY_FILE,
    PolicySource,
    ResolvedPolicy,
    load_policy_table,
    parse_policy_table,
)
from domain.regions import RegionRegistry

pytestmark = pytest.mark.unit

D = date.fromisoformat
REGIONS = ("620800", "610100", "350100", "440300", "110000")
SCHEMES: tuple[Scheme, ...] = ("employee", "resident")
CIRCULAR = PolicySource(
    title="关于调整职工医保缴费基数的通知", number="示例〔2026〕1号", issued_on=D("2026-01-15")
)


def settings(
    waiting: int = 3,
    base: int | None = 700000,
    rate: int | None = 85,
    fee: int = 5,
    *,
    allowed: bool = True,
    due_day: int | None = None,
    source: PolicySource | None = None,
) -> ContinuitySettings:
    return ContinuitySettings(
        version="test-1",
        waiting_period_months=waiting,
        back_payment_base_fen=base,
        back_payment_rate_per_mille=rate,
        late_fee_per_day_per_10000=fee,
        back_payment_allowed=allowed,
        contribution_due_day=due_day,
        back_payment_base_source=source or PolicySource(),
        back_payment_rate_source=source or PolicySource(),
    )


def span(
    region: str,
    scheme: Scheme,
    start: str,
    end: str | None,
    months: int,
    paid: str | None = None,
) -> EnrolmentSpan:
    return EnrolmentSpan(
        region,
        scheme,
        D(start),
        None if end is None else D(end),
        months,
        None if paid is None else D(paid),
    )


# Pingliang 2015-03..2020-12 then Xi'an 2021-01..2026-01: 131 months, continuous.
HISTORY = (
    span("620800", "employee", "2015-03-01", "2020-12-31", 70),
    span("610100", "employee", "2021-01-01", "2026-01-31", 61),
)


def assess(
    history: tuple[EnrolmentSpan, ...] = HISTORY,
    *,
    transfer_on: str,
    to_scheme: Scheme = "employee",
    from_scheme: Scheme = "employee",
    policy: ContinuitySettings | ResolvedPolicy | None = None,
    paid_on: str | None = None,
) -> ContinuityAssessment:
    return assess_continuity(
        history,
        transfer_on=D(transfer_on),
        from_scheme=from_scheme,
        to_scheme=to_scheme,
        policy=settings() if policy is None else policy,
        paid_on=None if paid_on is None else D(paid_on),
    )


@st.composite
def histories(draw: st.DrawFn) -> tuple[EnrolmentSpan, ...]:
    """1-6 consecutive spans with gaps of 0-200 days between them, some with a last paid
    month before their end."""
    start = draw(st.dates(min_value=D("2000-01-01"), max_value=D("2020-12-31")))
    spans = []
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        length = draw(st.integers(min_value=0, max_value=1500))
        end = start + timedelta(days=length)
        paid = None
        if draw(st.booleans()):
            first, last = start.replace(day=1), end.replace(day=1)
            back = draw(st.integers(min_value=0, max_value=6))
            paid = max(first, add_months(last, -back))
        spans.append(
            EnrolmentSpan(
                region=draw(st.sampled_from(REGIONS)),
                scheme=draw(st.sampled_from(SCHEMES)),
                start=start,
                end=end,
                contribution_months=draw(st.integers(min_value=0, max_value=60)),
                last_paid_month=paid,
            )
        )
        start = end + timedelta(days=draw(st.integers(min_value=1, max_value=200)))
    return tuple(spans)


continuity_settings = st.builds(
    ContinuitySettings,
    version=st.just("prop-1"),
    waiting_period_months=st.integers(min_value=0, max_value=6),
    back_payment_base_fen=st.integers(min_value=0, max_value=5_000_000) | st.none(),
    back_payment_rate_per_mille=st.integers(min_value=0, max_value=1000) | st.none(),
    late_fee_per_day_per_10000=st.integers(min_value=0, max_value=5),
    back_payment_allowed=st.booleans(),
    contribution_due_day=st.integers(min_value=1, max_value=31) | st.none(),
)

# Chinese sentences: no Latin letters inside them, except the rule ids in （Rnn）.
_LATIN_WORD = re.compile(r"[A-Za-z]+")


def assert_wholly_chinese(text: str) -> None:
    stripped = re.sub(r"（R\d+(-R\d+)?）", "", text)
    assert not _LATIN_WORD.search(stripped), stripped


# --- R24 -----------------------------------------------------------------------------


@given(histories())
def test_r24_total_months_is_the_sum_of_regional_months(history: tuple[EnrolmentSpan, ...]) -> None:
    by_region = contribution_by_region(history)
    assert sum(by_region.values()) == total_contribution_months(history)
    assert set(by_region) == {s.region for s in history}


@given(st.integers(min_value=0, max_value=1200))
def test_r24_deemed_years_and_months_recompose_the_total(total: int) -> None:
    years, months = deemed_contribution_years(total)
    assert years * 12 + months == total
    assert 0 <= months < 12


def test_r24_assessment_counts_every_region() -> None:
    result = assess(transfer_on="2026-02-10")
    assert result.months_by_region == {"610100": 61, "620800": 70}
    assert (result.total_contribution_months, result.deemed_years, result.deemed_months) == (
        131,
        10,
        11,
    )
    assert result.rules == ("R24",)


def test_r24_only_employee_scheme_months_are_deemed_contribution_years() -> None:
    # 5 resident years in Fuzhou, then 6 employee years in Pingliang.
    history = (
        span("350100", "resident", "2014-01-01", "2018-12-31", 60),
        span("620800", "employee", "2019-01-01", "2025-12-31", 72, "2025-12-01"),
    )
    result = assess(history, transfer_on="2026-01-05")
    assert result.total_contribution_months == 132
    assert (result.employee_contribution_months, result.resident_contribution_months) == (72, 60)
    assert (result.deemed_years, result.deemed_months) == (6, 0)
    assert deemed_employee_months(history) == 72


def test_r24_resident_months_are_shown_on_their_own_line_in_both_languages() -> None:
    history = (
        span("350100", "resident", "2014-01-01", "2018-12-31", 60),
        span("620800", "employee", "2019-01-01", "2025-12-31", 72, "2025-12-01"),
    )
    r24 = continuity_decisions(assess(history, transfer_on="2026-01-05"))[0]
    assert r24.rule == "R24"
    assert r24.outcome == "deemed 6 years 0 months; resident-scheme months 60, not deemed"
    assert "72 employee-scheme contribution months (6 years 0 months)" in r24.explanation_en
    assert "60 resident-scheme months are shown on their own" in r24.explanation_en
    assert "职工医保缴费72个月（6年0个月）" in r24.explanation_zh
    assert "居民医保缴费60个月单独列示，不计入视同缴费年限" in r24.explanation_zh
    assert_wholly_chinese(r24.explanation_zh)


def test_r24_deemed_months_of_contract_periods() -> None:
    periods = [
        EnrolmentPeriod(
            region="350100",
            scheme="resident",
            start=D("2014-01-01"),
            end=D("2018-12-31"),
            contribution_months=60,
        ),
        EnrolmentPeriod(
            region="620800",
            scheme="employee",
            start=D("2019-01-01"),
            end=D("2025-12-31"),
            contribution_months=72,
        ),
    ]
    assert deemed_employee_months(periods) == 72


@given(histories())
def test_r24_deemed_months_never_exceed_the_total(history: tuple[EnrolmentSpan, ...]) -> None:
    deemed = deemed_employee_months(history)
    assert 0 <= deemed <= total_contribution_months(history)
    assert deemed == sum(s.contribution_months for s in history if s.scheme == "employee")


def test_r24_span_from_contract_enrolment_period() -> None:
    period = EnrolmentPeriod(
        region="620800",
        scheme="employee",
        start=D("2020-01-01"),
        end=D("2020-12-31"),
        contribution_months=11,
        last_paid_month=D("2020-11-01"),
    )
    assert EnrolmentSpan.from_json(period.model_dump()) == span(
        "620800", "employee", "2020-01-01", "2020-12-31", 11, "2020-11-01"
    )
    assert EnrolmentSpan.from_json(period.model_dump(mode="json")) == EnrolmentSpan(
        **period.model_dump()
    )
    assert EnrolmentSpan.from_json(EnrolmentSpan(**period.model_dump()).to_json()) == (
        EnrolmentSpan(**period.model_dump())
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"region": "6208"}, "six digits"),
        ({"scheme": "private"}, "scheme"),
        ({"end": D("2019-12-31")}, "before it starts"),
        ({"contribution_months": -1}, "contribution_months"),
        ({"contribution_months": True}, "contribution_months"),
        ({"last_paid_month": D("2020-06-15")}, "first day"),
        ({"last_paid_month": D("2019-12-01")}, "before the enrolment starts"),
        ({"last_paid_month": D("2021-01-01")}, "after the enrolment ends"),
    ],
)
def test_r24_invalid_span_refused(kwargs: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {
        "region": "620800",
        "scheme": "employee",
        "start": D("2020-01-01"),
        "end": D("2020-12-31"),
        "contribution_months": 12,
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        EnrolmentSpan(**fields)


# --- R25-R27: the interruption, from the last paid month -----------------------------


@pytest.mark.parametrize(
    ("paid", "enrolled", "months"),
    [
        ("2026-01-01", "2026-02-01", 0),
        ("2026-01-15", "2026-02-20", 0),
        ("2026-01-01", "2026-03-01", 1),
        ("2026-01-01", "2026-05-01", 3),
        ("2026-01-01", "2026-05-31", 3),
        ("2026-01-01", "2026-06-01", 4),
        ("2025-11-01", "2026-02-15", 2),
        ("2026-03-01", "2026-02-01", 0),
    ],
)
def test_r25_r27_interruption_months_examples(paid: str, enrolled: str, months: int) -> None:
    assert interruption_months(D(paid), D(enrolled)) == months
    assert len(uncovered_months(D(paid), D(enrolled))) == months


def test_r25_r27_interruption_counts_from_the_last_paid_month_not_the_suspension() -> None:
    # Last paid for June; the agency recorded the suspension on 20 July; enrolled here on
    # 1 November: July, August, September and October are unpaid, 4 months (R27), even
    # though only August to October lie between the suspension and the enrolment.
    history = (span("620800", "employee", "2018-01-01", "2026-07-20", 102, "2026-06-01"),)
    result = assess(history, transfer_on="2026-11-01", policy=settings(waiting=3))
    assert result.last_paid_month == D("2026-06-01")
    assert result.last_paid_month_reported
    assert result.interruption_months == 4
    assert result.rules == ("R24", "R27")
    assert result.waiting_period_ends_on == D("2027-01-31")
    assert not result.back_payment_allowed
    assert "last paid month at the outgoing region is 2026-06" in result.explanation_en
    assert "转出地最后缴费月份为2026年6月，转入地参保首月为2026年11月" in result.explanation_zh
    assert "中断缴费4个月（超过3个月）" in result.explanation_zh


def test_r25_three_unpaid_months_after_the_last_payment_are_r25() -> None:
    history = (span("620800", "employee", "2018-01-01", "2026-07-20", 102, "2026-06-01"),)
    result = assess(history, transfer_on="2026-10-08", paid_on="2026-10-20")
    assert result.interruption_months == 3
    assert result.rules == ("R24", "R25", "R28")
    assert result.back_payment_months == (D("2026-07-01"), D("2026-08-01"), D("2026-09-01"))


def test_r25_r27_unreported_last_paid_month_takes_the_end_month_and_says_so() -> None:
    history = (span("620800", "employee", "2018-01-01", "2026-07-20", 102),)
    result = assess(history, transfer_on="2026-11-01")
    assert (result.last_paid_month, result.last_paid_month_reported) == (D("2026-07-01"), False)
    assert result.interruption_months == 3
    assert "not reported" in result.explanation_en
    assert "转出地未报最后缴费月份，按参保终止月份计" in result.explanation_zh


@given(
    paid=st.dates(min_value=D("2000-01-01"), max_value=D("2030-12-31")),
    enrolled=st.dates(min_value=D("1999-01-01"), max_value=D("2032-12-31")),
)
def test_r25_r27_interruption_is_never_negative(paid: date, enrolled: date) -> None:
    gap = interruption_months(paid, enrolled)
    assert gap >= 0
    assert gap == len(uncovered_months(paid, enrolled))
    assert interruption_months(paid, enrolled + timedelta(days=31)) >= gap


@given(history=histories(), extra_days=st.integers(min_value=0, max_value=1000))
def test_r25_r27_interruption_from_the_paid_month_is_never_shorter_than_from_the_end(
    history: tuple[EnrolmentSpan, ...], extra_days: int
) -> None:
    last = history[-1]
    transfer_on = (last.end or last.start) + timedelta(days=extra_days)
    result = assess(history, transfer_on=transfer_on.isoformat())
    assert result.interruption_months >= 0
    ends = [s.end or transfer_on for s in history]
    assert result.interruption_months >= interruption_months(max(ends), transfer_on)
    assert result.last_paid_month <= transfer_on


@given(
    paid=st.dates(min_value=D("2000-01-01"), max_value=D("2030-12-31")),
    day=st.integers(min_value=1, max_value=28),
)
def test_r25_r27_interruption_of_exactly_three_months_is_three_or_less(
    paid: date, day: int
) -> None:
    # Contributions cover the month of ``paid``; the three following months are unpaid.
    month = paid.replace(day=1)
    enrolled = add_months(month, 4).replace(day=day)
    assert interruption_months(month, enrolled) == 3
    history = (EnrolmentSpan("620800", "employee", month - timedelta(days=800), paid, 26, month),)
    result = assess_continuity(
        history,
        transfer_on=enrolled,
        from_scheme="employee",
        to_scheme="employee",
        policy=settings(waiting=6),
    )
    assert "R25" in result.rules
    assert "R27" not in result.rules
    assert result.waiting_period_months == 0
    assert result.back_payment_allowed


def test_r26_continuous_paid_months_examples() -> None:
    on = D("2026-06-01")
    assert continuous_paid_months(HISTORY, on) == 131
    # A whole month (2021-01) without enrolment breaks the run: only the later span counts.
    broken = (
        span("620800", "employee", "2015-03-01", "2020-12-31", 70),
        span("610100", "employee", "2021-02-01", "2026-01-31", 60),
    )
    assert continuous_paid_months(broken, on) == 60
    # The last payment was for October, the next enrolment starts in December: November
    # is unpaid, so the run breaks although the first enrolment lasted into November.
    unpaid_tail = (
        span("620800", "employee", "2022-01-01", "2024-11-20", 34, "2024-10-01"),
        span("610100", "resident", "2024-12-01", "2025-06-30", 7),
    )
    assert continuous_paid_months(unpaid_tail, on) == 7
    # No whole month unpaid (ends mid-December, next starts in January): adjacent.
    mid_month = (
        span("620800", "employee", "2024-01-01", "2024-12-15", 12),
        span("610100", "resident", "2025-01-20", "2025-06-30", 6),
    )
    assert continuous_paid_months(mid_month, on) == 18
    overlapping = (
        span("620800", "employee", "2024-01-01", "2024-12-31", 12),
        span("610100", "employee", "2024-06-01", "2025-03-31", 3),
    )
    assert continuous_paid_months(overlapping, on) == 15
    open_span = (span("620800", "resident", "2024-07-01", None, 23),)
    assert continuous_paid_months(open_span, on) == 23
    assert continuous_paid_months((), on) == 0


# --- R25 R26 R27 ---------------------------------------------------------------------


def test_r25_employee_short_interruption_back_pays_retroactively() -> None:
    result = assess(transfer_on="2026-04-15", paid_on="2026-05-06")
    assert result.interruption_months == 2
    assert result.rules == ("R24", "R25", "R28")
    assert result.back_payment_allowed
    assert result.retroactive
    assert result.benefits_from_month == D("2026-05-01")
    assert result.waiting_period_ends_on is None
    assert "R25" in result.explanation_en
    assert "（R25）" in result.explanation_zh
    assert "于2026年5月6日补缴的，自2026年5月起享受待遇" in result.explanation_zh


def test_r26_switch_after_two_continuous_years() -> None:
    history = (span("620800", "employee", "2024-01-01", "2025-12-31", 24),)
    result = assess(history, transfer_on="2026-03-01", to_scheme="resident")
    assert result.continuous_paid_months == 24
    assert result.interruption_months == 2  # January and February
    assert result.rules == ("R24", "R26", "R28")
    assert result.back_payment_allowed
    assert result.benefits_from_month == D("2026-03-01")


def test_r26_two_continuous_years_count_paid_months_not_calendar_months() -> None:
    # Enrolled for 24 calendar months (2024-01 to 2025-12) but paid for only 20 of them.
    history = (span("620800", "employee", "2024-01-01", "2025-12-31", 20, "2025-12-01"),)
    result = assess(history, transfer_on="2026-03-01", to_scheme="resident")
    assert result.continuous_paid_months == 20
    assert "R26" not in result.rules
    assert not result.back_payment_allowed
    assert "R28" not in result.rules
    assert "连续缴费20个月" in result.explanation_zh


def test_r26_switch_before_two_years_gets_no_retroactive_cover() -> None:
    history = (span("620800", "employee", "2024-02-01", "2025-12-31", 23),)
    result = assess(history, transfer_on="2026-03-01", to_scheme="resident")
    assert result.continuous_paid_months == 23
    assert "R26" not in result.rules
    assert "R27" not in result.rules
    assert not result.back_payment_allowed
    assert result.benefits_from == D("2026-03-01")
    assert result.waiting_period_months == 0


def test_r25_resident_scheme_short_interruption_is_not_r25() -> None:
    history = (span("620800", "resident", "2020-01-01", "2025-12-31", 72),)
    result = assess(history, transfer_on="2026-03-01", from_scheme="resident", to_scheme="resident")
    assert result.rules == ("R24",)
    assert not result.back_payment_allowed
    assert_wholly_chinese(result.explanation_zh)


def test_r27_long_interruption_waits_per_region_setting() -> None:
    result = assess(transfer_on="2026-06-15", policy=settings(waiting=3))
    assert result.interruption_months == 4
    assert result.rules == ("R24", "R27")
    assert result.waiting_period_months == 3
    assert result.waiting_period_ends_on == D("2026-09-14")
    assert result.benefits_from == D("2026-09-15")
    assert not result.back_payment_allowed
    assert result.benefits_from_month is None
    assert "设待遇等待期3个月，至2026年9月14日止，自2026年9月15日起享受待遇" in (
        result.explanation_zh
    )


def test_r27_region_without_waiting_period() -> None:
    result = assess(transfer_on="2026-06-15", policy=settings(waiting=0))
    assert "R27" in result.rules
    assert (result.waiting_period_months, result.waiting_period_ends_on) == (0, None)
    assert result.benefits_from == D("2026-06-15")


def test_r27_xian_six_months_from_the_shipped_policy(registry: RegionRegistry) -> None:
    policy = load_policy_table(DEFAULT_POLICY_FILE, registry).resolve("610100", D("2026-08-31"))
    result = assess(transfer_on="2026-08-31", policy=policy)
    assert result.waiting_period_months == 6
    assert result.waiting_period_ends_on == D("2027-02-27")
    assert result.policy_version == "national-2024.1+610100-2025.1"
    assert "等待期6个月" in result.explanation_zh


def test_r27_settings_refuse_seven_months() -> None:
    with pytest.raises(ValueError, match="R27"):
        settings(waiting=7)


@given(
    history=histories(),
    config=continuity_settings,
    extra_days=st.integers(min_value=0, max_value=1000),
    switch=st.booleans(),
)
def test_r27_waiting_period_never_exceeds_setting(
    history: tuple[EnrolmentSpan, ...], config: ContinuitySettings, extra_days: int, switch: bool
) -> None:
    last = history[-1]
    transfer_on = (last.end or last.start) + timedelta(days=extra_days)
    to_scheme: Scheme = "resident" if switch else "employee"
    result = assess_continuity(
        history,
        transfer_on=transfer_on,
        from_scheme="employee",
        to_scheme=to_scheme,
        policy=config,
    )
    assert 0 <= result.waiting_period_months <= config.waiting_period_months <= 6
    if result.interruption_months <= 3:
        assert result.waiting_period_months == 0
        assert "R27" not in result.rules
    else:
        assert result.waiting_period_months == config.waiting_period_months
        assert not result.back_payment_allowed
    assert result.benefits_from >= transfer_on.replace(day=1)
    assert result.total_contribution_months == sum(result.months_by_region.values())
    assert (
        result.employee_contribution_months + result.resident_contribution_months
        == result.total_contribution_months
    )
    # R28 figures only where back-payment is allowed.
    if result.back_payment_allowed and result.interruption_months:
        assert "R28" in result.rules
        assert len(result.back_payment_months) == result.interruption_months
    else:
        assert "R28" not in result.rules
        assert result.back_payment_months == ()
        assert result.back_payment_estimate_fen is None
        assert result.late_fee_estimate_fen is None
    for fen in (result.back_payment_estimate_fen, result.late_fee_estimate_fen):
        assert fen is None or (isinstance(fen, int) and fen >= 0)
    assert ContinuityAssessment.from_json(json.loads(json.dumps(result.to_json()))) == result
    assert_wholly_chinese(result.explanation_zh)
    for decision in continuity_decisions(result):
        assert_wholly_chinese(decision.explanation_zh)


@given(st.dates(min_value=D("2000-01-01"), max_value=D("2030-12-31")), st.integers(0, 6))
def test_r27_waiting_period_end_is_inside_the_months(start: date, months: int) -> None:
    end = waiting_period_end(start, months)
    if months == 0:
        assert end is None
    else:
        assert end is not None
        assert start <= end < add_months(start, months)
        assert add_months(start, months - 1) <= end


# --- R28 -----------------------------------------------------------------------------


def test_r28_back_payment_and_late_fee_figures() -> None:
    # 3 months x 7000.00 yuan x 8.5 % = 1785.00 yuan.
    assert back_payment_estimate_fen(3, 700000, 85) == 178500
    # 1785.00 yuan x 0.05 % x 89 days = 79.4325 yuan -> 79.43.
    assert late_fee_estimate_fen(178500, 5, 89) == 7943
    # Half a fen rounds up: 1 fen x 5/10000 x 1000 days = 0.5 fen.
    assert late_fee_estimate_fen(1, 5, 1000) == 1
    assert late_fee_estimate_fen(1, 5, 999) == 0
    assert back_payment_estimate_fen(1, 1, 500) == 1


@pytest.mark.parametrize(
    ("month", "due_day", "due"),
    [
        ("2026-02-01", None, "2026-02-28"),
        ("2028-02-01", None, "2028-02-29"),
        ("2026-04-01", 15, "2026-04-15"),
        ("2026-02-01", 31, "2026-02-28"),
        ("2026-03-01", 31, "2026-03-31"),
    ],
)
def test_r28_contribution_due_date(month: str, due_day: int | None, due: str) -> None:
    assert contribution_due_date(D(month), due_day) == D(due)


def test_r28_late_fee_accrues_from_each_months_own_due_date() -> None:
    # Last paid January; enrolled here and paid on 1 May: February, March and April owe
    # 595.00 yuan each. February's arrears accrue from 1 March (62 days to 1 May), March's
    # from 1 April (31), April's from 1 May (1): 94 days x 595.00 x 0.05 % = 27.965 yuan.
    result = assess(transfer_on="2026-05-01")
    assert result.interruption_months == 3
    assert result.back_payment_months == (D("2026-02-01"), D("2026-03-01"), D("2026-04-01"))
    assert result.late_fee_days == (62, 31, 1)
    assert result.back_payment_estimate_fen == 178500
    assert result.late_fee_estimate_fen == 2797  # rounded half up from 2796.5 fen
    # Today's code counted every month from 1 February, 89 days each: 79.43 yuan.
    assert result.late_fee_estimate_fen < late_fee_estimate_fen(178500, 5, 89)
    assert "1785.00" in result.explanation_en
    assert "27.97" in result.explanation_en
    assert "预计1785.00元" in result.explanation_zh
    assert "合计94天，预计27.97元（合计金额按分四舍五入）" in result.explanation_zh
    assert "自缴费截止日（默认为当月最后一日）次日起按每日万分之五计收滞纳金" in (
        result.explanation_zh
    )


def test_r28_due_day_is_the_regions() -> None:
    result = assess(transfer_on="2026-05-01", policy=settings(due_day=15))
    # Due on 15 February, 15 March, 15 April: 75 + 47 + 16 days.
    assert result.late_fee_days == (75, 47, 16)
    assert result.late_fee_estimate_fen == monthly_late_fee_fen((75, 47, 16), 700000, 85, 5)
    assert "当月15日" in result.explanation_zh
    assert "day 15 of the month" in result.explanation_en


def test_r28_figures_shown_only_where_back_payment_is_allowed() -> None:
    # R27 (4 months): no back-payment, so no R28 figures.
    result = assess(transfer_on="2026-06-15")
    assert result.rules == ("R24", "R27")
    assert result.back_payment_months == ()
    assert (result.back_payment_estimate_fen, result.late_fee_estimate_fen) == (None, None)
    assert result.back_payment_base_fen is None
    assert "补缴" not in result.explanation_zh
    assert [d.rule for d in continuity_decisions(result)] == ["R24", "R27"]


def test_r28_no_figures_where_the_region_does_not_allow_back_payment() -> None:
    result = assess(transfer_on="2026-04-15", policy=settings(allowed=False))
    assert result.rules == ("R24", "R25")
    assert not result.back_payment_allowed
    assert not result.retroactive
    assert result.benefits_from == D("2026-04-15")
    assert result.back_payment_estimate_fen is None
    assert "does not allow a back-payment" in result.explanation_en
    assert "但转入地不允许补缴，自2026年4月15日起享受待遇，中断期间不追溯（R25）" in (
        result.explanation_zh
    )
    r25 = continuity_decisions(result)[1]
    assert r25.outcome == "back-payment not allowed by the region; benefits from 2026-04-15"


def test_r28_no_interruption_no_estimate() -> None:
    result = assess(transfer_on="2026-02-10")
    assert (result.back_payment_estimate_fen, result.late_fee_estimate_fen) == (None, None)
    assert "R28" not in result.rules


@pytest.mark.parametrize(
    ("base", "rate", "outcome"),
    [
        (None, 85, "back-payment 2 months; base not set, rate set"),
        (700000, None, "back-payment 2 months; base set, rate not set"),
        (None, None, "back-payment 2 months; base not set, rate not set"),
    ],
)
def test_r28_region_without_base_or_rate_shows_not_set(
    base: int | None, rate: int | None, outcome: str
) -> None:
    result = assess(transfer_on="2026-04-15", policy=settings(base=base, rate=rate))
    assert result.rules == ("R24", "R25", "R28")
    assert (result.back_payment_estimate_fen, result.late_fee_estimate_fen) == (None, None)
    assert len(result.back_payment_months) == 2
    assert "not set" in result.explanation_en
    assert "未设定" in result.explanation_zh
    assert "暂不预计补缴金额和滞纳金" in result.explanation_zh
    r28 = continuity_decisions(result)[-1]
    assert (r28.rule, r28.outcome) == ("R28", outcome)
    assert_wholly_chinese(r28.explanation_zh)


def test_r28_base_and_rate_are_the_regions_own_with_their_source() -> None:
    result = assess(
        transfer_on="2026-03-01", policy=settings(base=812345, rate=77, fee=3, source=CIRCULAR)
    )
    assert (result.back_payment_base_fen, result.back_payment_rate_per_mille) == (812345, 77)
    assert result.back_payment_base_source == CIRCULAR
    # 1 month x 8123.45 x 7.7 % = 625.50565 -> 625.51 yuan.
    assert result.back_payment_estimate_fen == 62551
    assert "monthly base 8123.45 yuan, rate 7.7%" in result.explanation_en
    assert "0.03% a day" in result.explanation_en
    assert "(source: 《关于调整职工医保缴费基数的通知》 (示例〔2026〕1号, 2026-01-15))" in (
        result.explanation_en
    )
    assert "转入地缴费基数8123.45元，费率7.7%" in result.explanation_zh
    assert "（依据：《关于调整职工医保缴费基数的通知》（示例〔2026〕1号，2026年1月15日））" in (
        result.explanation_zh
    )
    assert "每日万分之三" in result.explanation_zh
    again = ContinuityAssessment.from_json(json.loads(json.dumps(result.to_json())))
    assert again == result


def test_r28_project_default_figures_say_so() -> None:
    result = assess(transfer_on="2026-03-01")
    assert "(source: project default)" in result.explanation_en
    assert "（依据：项目默认值）" in result.explanation_zh


def test_r28_figures_and_source_from_the_resolved_policy(registry: RegionRegistry) -> None:
    lines = [
        {
            "scope": "national",
            "code": "CN",
            "version": "national-t1",
            "effective_from": "2024-01-01",
            "source": "project default",
            "transfer_out_days": 10,
            "transfer_in_days": 5,
            "reminder_before_days": 2,
            "soft_refusal_window_days": 5,
            "not_connected_escalation_days": 10,
            "waiting_period_months": 0,
            "intra_province_balance": "remit",
            "employee_to_resident_balance": "pay_to_bank",
            "back_payment": "allowed",
            "late_fee_per_day_per_10000": 5,
        },
        {
            "scope": "region",
            "code": "350100",
            "version": "350100-t1",
            "effective_from": "2025-01-01",
            "source": {"title": "福州市职工医保缴费基数通知", "date": "2024-12-20"},
            "back_payment_base_fen": 650000,
            "back_payment_rate_per_mille": 80,
            "contribution_due_day": 20,
        },
    ]
    table = parse_policy_table("\n".join(json.dumps(line) for line in lines), registry)
    fuzhou = table.resolve("350100", D("2026-04-15"))
    result = assess(transfer_on="2026-04-15", policy=fuzhou)
    assert (result.back_payment_base_fen, result.contribution_due_day) == (650000, 20)
    assert result.back_payment_base_source == PolicySource(
        title="福州市职工医保缴费基数通知", issued_on=D("2024-12-20")
    )
    assert "（依据：《福州市职工医保缴费基数通知》（2024年12月20日））" in result.explanation_zh
    # A region whose policy sets no base or rate: "not set", never the national default.
    beijing = table.resolve("110000", D("2026-04-15"))
    other = assess(transfer_on="2026-04-15", policy=beijing)
    assert (other.back_payment_base_fen, other.back_payment_estimate_fen) == (None, None)
    assert "未设定" in other.explanation_zh


def test_r28_the_shipped_national_line_invents_no_base_or_rate(registry: RegionRegistry) -> None:
    table = load_policy_table(DEFAULT_POLICY_FILE, registry)
    pingliang = table.resolve("620800", D("2026-12-01"))
    assert (pingliang.back_payment_base_fen, pingliang.back_payment_rate_per_mille) == (None, None)
    result = assess(transfer_on="2026-04-15", policy=pingliang)
    assert "R28" in result.rules
    assert result.back_payment_estimate_fen is None
    assert "缴费基数未设定，费率未设定" in result.explanation_zh


@given(
    months=st.integers(min_value=0, max_value=120),
    base=st.integers(min_value=0, max_value=10_000_000),
    rate=st.integers(min_value=0, max_value=1000),
)
def test_r28_back_payment_is_a_non_negative_int_monotone_in_months(
    months: int, base: int, rate: int
) -> None:
    now = back_payment_estimate_fen(months, base, rate)
    assert isinstance(now, int)
    assert now >= 0
    assert back_payment_estimate_fen(months + 1, base, rate) >= now
    assert back_payment_estimate_fen(0, base, rate) == 0


@given(
    amount=st.integers(min_value=0, max_value=100_000_000),
    per_10000=st.integers(min_value=0, max_value=5),
    days=st.integers(min_value=0, max_value=3650),
)
def test_r28_late_fee_is_a_non_negative_int_monotone_in_days_and_amount(
    amount: int, per_10000: int, days: int
) -> None:
    fee = late_fee_estimate_fen(amount, per_10000, days)
    assert isinstance(fee, int)
    assert fee >= 0
    assert late_fee_estimate_fen(amount, per_10000, days + 1) >= fee
    assert late_fee_estimate_fen(amount + 1, per_10000, days) >= fee
    # Round half up, integer arithmetic: within half a fen of the exact value.
    assert abs(fee * 10000 - amount * per_10000 * days) * 2 <= 10000


@given(
    gap=st.integers(min_value=1, max_value=3),
    later=st.integers(min_value=0, max_value=400),
    more=st.integers(min_value=1, max_value=400),
    base=st.integers(min_value=0, max_value=5_000_000),
    rate=st.integers(min_value=0, max_value=1000),
    fee=st.integers(min_value=0, max_value=5),
    due_day=st.integers(min_value=1, max_value=31) | st.none(),
)
def test_r28_monthly_late_fee_is_monotone_in_the_payment_date_and_below_the_old_bound(
    gap: int, later: int, more: int, base: int, rate: int, fee: int, due_day: int | None
) -> None:
    last_paid = D("2025-10-01")
    transfer_on = add_months(last_paid, gap + 1)
    months = uncovered_months(last_paid, transfer_on)
    assert len(months) == gap
    paid_on = transfer_on + timedelta(days=later)
    days = late_fee_days(months, paid_on, due_day)
    assert all(d >= 0 for d in days)
    assert list(days) == sorted(days, reverse=True)  # a later month accrues for fewer days
    now = monthly_late_fee_fen(days, base, rate, fee)
    later_fee = monthly_late_fee_fen(
        late_fee_days(months, paid_on + timedelta(days=more), due_day), base, rate, fee
    )
    assert 0 <= now <= later_fee
    # The old estimate, every month from the first uncovered month's first day, is an upper
    # bound (computed exactly, then rounded the same way).
    old_days = (paid_on - months[0]).days
    old_exact = gap * base * rate * fee * old_days
    assert now <= (2 * old_exact + 10**7) // (2 * 10**7)
    # Exact to within half a fen.
    exact = base * rate * fee * sum(days)
    assert abs(now * 10**7 - exact) * 2 <= 10**7


@given(gap=st.integers(min_value=1, max_value=2), config=continuity_settings)
def test_r28_assessed_estimate_is_monotone_in_interruption_months(
    gap: int, config: ContinuitySettings
) -> None:
    history = (span("620800", "employee", "2020-01-01", "2024-12-31", 60),)

    def estimate(months: int) -> tuple[int | None, int | None]:
        transfer_on = add_months(D("2025-01-01"), months)
        result = assess_continuity(
            history,
            transfer_on=transfer_on,
            from_scheme="employee",
            to_scheme="employee",
            policy=config,
        )
        assert result.interruption_months == months
        return result.back_payment_estimate_fen, result.late_fee_estimate_fen

    shorter, longer = estimate(gap), estimate(gap + 1)
    if shorter[0] is None or shorter[1] is None or longer[0] is None or longer[1] is None:
        assert shorter == longer == (None, None)
    else:
        assert longer[0] >= shorter[0]
        assert longer[1] >= shorter[1]


def test_r24_r28_assessment_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="no enrolment history"):
        assess((), transfer_on="2026-01-01")
    with pytest.raises(ValueError, match="after the transfer"):
        assess(transfer_on="2015-01-01")
    with pytest.raises(ValueError, match="paid_on"):
        assess(transfer_on="2026-05-01", paid_on="2026-04-30")


def test_r24_open_span_means_no_interruption() -> None:
    history = (span("620800", "employee", "2020-01-01", None, 70),)
    result = assess(history, transfer_on="2026-01-01")
    assert result.interruption_months == 0
    assert result.last_paid_month == D("2026-01-01")


@pytest.mark.parametrize(
    ("paid", "suspended", "problem"),
    [
        ("2026-06-01", "2026-07-20", None),
        ("2026-07-01", "2026-07-20", None),
        ("2026-08-01", "2026-07-20", "after the suspension"),
        ("2027-01-01", None, "in the future"),
        ("2026-06-15", "2026-07-20", "first day"),
        ("2015-12-01", "2026-07-20", "before the enrolment starts"),
    ],
)
def test_r25_r27_last_paid_month_of_a_record(
    paid: str, suspended: str | None, problem: str | None
) -> None:
    found = last_paid_month_problem(
        D(paid), D("2016-03-01"), None if suspended is None else D(suspended), D("2026-12-02")
    )
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


# --- decisions -----------------------------------------------------------------------


def test_r24_r25_r28_continuity_decisions_one_per_rule() -> None:
    result = assess(transfer_on="2026-04-15")
    decisions = continuity_decisions(result)
    assert tuple(d.rule for d in decisions) == result.rules == ("R24", "R25", "R28")
    for decision in decisions:
        assert decision.policy_version == "test-1"
        assert f"({decision.rule})" in decision.explanation_en
        assert f"（{decision.rule}）" in decision.explanation_zh
        assert decision.explanation_en.endswith(".")
        assert decision.explanation_zh.endswith("。")
        assert_wholly_chinese(decision.explanation_zh)
        assert Decision.from_json(json.loads(json.dumps(decision.to_json()))) == decision
    assert decisions[0].outcome == "deemed 10 years 11 months"
    # February due on the 28th (46 days to 15 April), March on the 31st (15): 61 days x
    # 595.00 yuan x 0.05 % = 18.1475 -> 18.15 yuan.
    assert decisions[2].outcome == "back-payment 2 months: 1190.00 yuan, late fee 18.15 yuan"


def test_r27_decision_names_the_waiting_period() -> None:
    decisions = continuity_decisions(assess(transfer_on="2026-06-15"))
    r27 = next(d for d in decisions if d.rule == "R27")
    assert r27.outcome == "waiting period 3 months until 2026-09-14"
    assert_wholly_chinese(r27.explanation_zh)


def test_r20_balance_decision_carries_rule_and_version() -> None:
    balance = decide_balance(
        from_region="441900",
        to_region="440300",
        from_scheme="employee",
        to_scheme="employee",
        balance_fen=123456,
        resettled_retiree=False,
        incoming_connected=True,
        has_bank_account=True,
        policy=BalancePolicy(),
    )
    decision = balance_decision(balance, "national-2024.1+44-2024.1")
    assert (decision.rule, decision.outcome) == ("R20", "keep_usable")
    assert decision.policy_version == "national-2024.1+44-2024.1"
    assert decision.explanation_en == balance.explanation_en


def test_r22_balance_decision_awaiting_bank_account() -> None:
    balance = decide_balance(
        from_region="620800",
        to_region="350100",
        from_scheme="employee",
        to_scheme="resident",
        balance_fen=5000,
        resettled_retiree=False,
        incoming_connected=True,
        has_bank_account=False,
        policy=BalancePolicy(),
    )
    decision = balance_decision(balance, "v")
    assert decision.rule == "R22"
    assert decision.outcome == "pay_to_bank (awaiting bank account)"


def test_r12_r14_case_deadline_decisions(
    calendar: WorkingDayCalendar, registry: RegionRegistry
) -> None:
    policy = load_policy_table(DEFAULT_POLICY_FILE, registry).resolve("620800", D("2026-02-13"))
    deadlines = compute_transfer_out_deadlines(D("2026-02-13"), policy.limits(), calendar)
    r12, r14 = case_deadline_decisions(deadlines, policy.limits(), policy.version_label)
    assert (r12.rule, r14.rule) == ("R12", "R14")
    assert r12.outcome == f"due {deadlines.transfer_out_due.due.isoformat()}"
    assert r14.outcome == f"due {deadlines.total_due.due.isoformat()}"
    assert "10 working days after 2026-02-13 (R12)" in r12.explanation_en
    assert "15 working days" in r14.explanation_en
    assert r12.policy_version == "national-2024.1"
    assert "（R12）" in r12.explanation_zh


def test_r13_deadline_decision_flags_fallback_years() -> None:
    decision = deadline_decision(
        rule="R13",
        start=D("2030-12-30"),
        limit_days=5,
        deadline=Deadline(D("2031-01-06"), (2031,)),
        policy_version="v",
    )
    assert decision.outcome == "due 2031-01-06"
    assert "Monday-Friday for 2031" in decision.explanation_en
    assert "2031年官方日历尚未发布" in decision.explanation_zh


def test_r23_deadline_decision_and_unknown_rule() -> None:
    decision = deadline_decision(
        rule="R23",
        start=D("2026-03-02"),
        limit_days=10,
        deadline=Deadline(D("2026-03-16")),
        policy_version="v",
    )
    assert "not connected" in decision.explanation_en
    with pytest.raises(ValueError, match="R99"):
        deadline_decision(
            rule="R99",
            start=D("2026-03-02"),
            limit_days=1,
            deadline=Deadline(D("2026-03-03")),
            policy_version="v",
        )


def test_r27_settings_from_resolved_policy(registry: RegionRegistry) -> None:
    policy = load_policy_table(DEFAULT_POLICY_FILE, registry).resolve("440300", D("2026-03-02"))
    config = ContinuitySettings.from_policy(policy)
    assert config.version == policy.version_label
    assert (config.waiting_period_months, config.back_payment_base_fen) == (3, 700000)
    assert assess(transfer_on="2026-06-15", policy=policy) == assess(
        transfer_on="2026-06-15", policy=config
    )
