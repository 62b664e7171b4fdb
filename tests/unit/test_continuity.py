from __future__ import annotations

import json
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
    continuous_enrolment_months,
    contribution_by_region,
    deadline_decision,
    deemed_contribution_years,
    interruption_months,
    late_fee_estimate_fen,
    total_contribution_months,
    waiting_period_end,
)
from domain.eligibility import Scheme
from domain.limits import compute_transfer_out_deadlines
from domain.policy import DEFAULT_POLICY_FILE, ResolvedPolicy, load_policy_table
from domain.regions import RegionRegistry

pytestmark = pytest.mark.unit

D = date.fromisoformat
REGIONS = ("620800", "610100", "350100", "440300", "110000")
SCHEMES: tuple[Scheme, ...] = ("employee", "resident")


def settings(
    waiting: int = 3, base: int = 700000, rate: int = 85, fee: int = 5
) -> ContinuitySettings:
    return ContinuitySettings(
        version="test-1",
        waiting_period_months=waiting,
        back_payment_base_fen=base,
        back_payment_rate_per_mille=rate,
        late_fee_per_day_per_10000=fee,
    )


def span(region: str, scheme: Scheme, start: str, end: str | None, months: int) -> EnrolmentSpan:
    return EnrolmentSpan(region, scheme, D(start), None if end is None else D(end), months)


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
    """1-6 consecutive spans with gaps of 0-200 days between them."""
    start = draw(st.dates(min_value=D("2000-01-01"), max_value=D("2020-12-31")))
    spans = []
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        length = draw(st.integers(min_value=0, max_value=1500))
        end = start + timedelta(days=length)
        spans.append(
            EnrolmentSpan(
                region=draw(st.sampled_from(REGIONS)),
                scheme=draw(st.sampled_from(SCHEMES)),
                start=start,
                end=end,
                contribution_months=draw(st.integers(min_value=0, max_value=60)),
            )
        )
        start = end + timedelta(days=draw(st.integers(min_value=1, max_value=200)))
    return tuple(spans)


continuity_settings = st.builds(
    ContinuitySettings,
    version=st.just("prop-1"),
    waiting_period_months=st.integers(min_value=0, max_value=6),
    back_payment_base_fen=st.integers(min_value=0, max_value=5_000_000),
    back_payment_rate_per_mille=st.integers(min_value=0, max_value=1000),
    late_fee_per_day_per_10000=st.integers(min_value=0, max_value=5),
)


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


def test_r24_span_from_contract_enrolment_period() -> None:
    period = EnrolmentPeriod(
        region="620800",
        scheme="employee",
        start=D("2020-01-01"),
        end=D("2020-12-31"),
        contribution_months=12,
    )
    assert EnrolmentSpan.from_json(period.model_dump()) == span(
        "620800", "employee", "2020-01-01", "2020-12-31", 12
    )
    assert EnrolmentSpan.from_json(period.model_dump(mode="json")) == EnrolmentSpan(
        **period.model_dump()
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"region": "6208"}, "six digits"),
        ({"scheme": "private"}, "scheme"),
        ({"end": D("2019-12-31")}, "before it starts"),
        ({"contribution_months": -1}, "contribution_months"),
        ({"contribution_months": True}, "contribution_months"),
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


# --- interruption and continuous enrolment ------------------------------------------


@pytest.mark.parametrize(
    ("end", "enrolled", "months"),
    [
        ("2026-01-31", "2026-02-01", 0),
        ("2026-01-15", "2026-02-20", 0),
        ("2026-01-31", "2026-03-01", 1),
        ("2026-01-31", "2026-05-01", 3),
        ("2026-01-10", "2026-05-31", 3),
        ("2026-01-31", "2026-06-01", 4),
        ("2025-11-30", "2026-02-15", 2),
        ("2026-03-31", "2026-02-01", 0),
    ],
)
def test_r25_r27_interruption_months_examples(end: str, enrolled: str, months: int) -> None:
    assert interruption_months(D(end), D(enrolled)) == months


@given(
    end=st.dates(min_value=D("2000-01-01"), max_value=D("2030-12-31")),
    day=st.integers(min_value=1, max_value=28),
)
def test_r25_r27_interruption_of_exactly_three_months_is_three_or_less(end: date, day: int) -> None:
    # Contributions cover the month of ``end``; the three following months are unpaid.
    enrolled = add_months(end.replace(day=1), 4).replace(day=day)
    assert interruption_months(end, enrolled) == 3
    history = (EnrolmentSpan("620800", "employee", end - timedelta(days=800), end, 26),)
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


@given(
    end=st.dates(min_value=D("2000-01-01"), max_value=D("2030-12-31")),
    later=st.integers(min_value=0, max_value=400),
)
def test_r25_r27_interruption_is_monotone_and_non_negative(end: date, later: int) -> None:
    first = end + timedelta(days=1)
    assert interruption_months(end, first) == 0
    assert (
        0
        <= interruption_months(end, first + timedelta(days=later))
        <= interruption_months(end, first + timedelta(days=later + 31))
    )


def test_r26_continuous_enrolment_months_examples() -> None:
    on = D("2026-06-01")
    assert continuous_enrolment_months(HISTORY, on) == 131
    # A whole month (2021-01) without enrolment breaks the run: only the later span counts.
    broken = (
        span("620800", "employee", "2015-03-01", "2020-12-31", 70),
        span("610100", "employee", "2021-02-01", "2026-01-31", 60),
    )
    assert continuous_enrolment_months(broken, on) == 60
    # No whole month uncovered (ends mid-December, next starts in January): adjacent.
    mid_month = (
        span("620800", "employee", "2024-01-01", "2024-12-15", 12),
        span("610100", "resident", "2025-01-20", "2025-06-30", 6),
    )
    assert continuous_enrolment_months(mid_month, on) == 18
    overlapping = (
        span("620800", "employee", "2024-01-01", "2024-12-31", 12),
        span("610100", "employee", "2024-06-01", "2025-03-31", 3),
    )
    assert continuous_enrolment_months(overlapping, on) == 15
    open_span = (span("620800", "resident", "2024-07-01", None, 23),)
    assert continuous_enrolment_months(open_span, on) == 24
    assert continuous_enrolment_months((), on) == 0


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
    assert "R25" in result.explanation_zh


def test_r26_switch_after_two_continuous_years() -> None:
    history = (span("620800", "employee", "2024-01-01", "2025-12-31", 24),)
    result = assess(history, transfer_on="2026-03-01", to_scheme="resident")
    assert result.continuous_enrolment_months == 24
    assert result.interruption_months == 2  # January and February
    assert result.rules == ("R24", "R26", "R28")
    assert result.back_payment_allowed
    assert result.benefits_from_month == D("2026-03-01")


def test_r26_switch_before_two_years_gets_no_retroactive_cover() -> None:
    history = (span("620800", "employee", "2024-02-01", "2025-12-31", 23),)
    result = assess(history, transfer_on="2026-03-01", to_scheme="resident")
    assert result.continuous_enrolment_months == 23
    assert "R26" not in result.rules
    assert "R27" not in result.rules
    assert not result.back_payment_allowed
    assert result.benefits_from == D("2026-03-01")
    assert result.waiting_period_months == 0


def test_r25_resident_scheme_short_interruption_is_not_r25() -> None:
    history = (span("620800", "resident", "2020-01-01", "2025-12-31", 72),)
    result = assess(history, transfer_on="2026-03-01", from_scheme="resident", to_scheme="resident")
    assert result.rules == ("R24", "R28")
    assert not result.back_payment_allowed


def test_r27_long_interruption_waits_per_region_setting() -> None:
    result = assess(transfer_on="2026-06-15", policy=settings(waiting=3))
    assert result.interruption_months == 4
    assert result.rules == ("R24", "R27", "R28")
    assert result.waiting_period_months == 3
    assert result.waiting_period_ends_on == D("2026-09-14")
    assert result.benefits_from == D("2026-09-15")
    assert not result.back_payment_allowed
    assert result.benefits_from_month is None


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
    assert isinstance(result.back_payment_estimate_fen, int)
    assert isinstance(result.late_fee_estimate_fen, int)
    assert result.back_payment_estimate_fen >= 0
    assert result.late_fee_estimate_fen >= 0
    assert ContinuityAssessment.from_json(json.loads(json.dumps(result.to_json()))) == result


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


def test_r28_estimates_on_the_assessment() -> None:
    result = assess(transfer_on="2026-05-01")
    assert result.interruption_months == 3
    assert result.back_payment_estimate_fen == 178500
    assert result.arrears_days == (D("2026-05-01") - D("2026-02-01")).days
    assert result.late_fee_estimate_fen == late_fee_estimate_fen(178500, 5, result.arrears_days)
    assert "1785.00" in result.explanation_en
    assert "1785.00" in result.explanation_zh


def test_r28_no_interruption_no_estimate() -> None:
    result = assess(transfer_on="2026-02-10")
    assert (result.back_payment_estimate_fen, result.late_fee_estimate_fen) == (0, 0)
    assert "R28" not in result.rules


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
    gap=st.integers(min_value=1, max_value=24),
    config=continuity_settings,
)
def test_r28_assessed_estimate_is_monotone_in_interruption_months(
    gap: int, config: ContinuitySettings
) -> None:
    history = (span("620800", "employee", "2020-01-01", "2024-12-31", 60),)

    def estimate(months: int) -> tuple[int, int]:
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
    assert result.last_contribution_end == D("2026-01-01")


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
        assert Decision.from_json(json.loads(json.dumps(decision.to_json()))) == decision
    assert decisions[0].outcome == "deemed 10 years 11 months"


def test_r27_decision_names_the_waiting_period() -> None:
    decisions = continuity_decisions(assess(transfer_on="2026-06-15"))
    r27 = next(d for d in decisions if d.rule == "R27")
    assert r27.outcome == "waiting period 3 months until 2026-09-14"


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
    r12, r14 = case_deadline_decisions(deadlines, policy)
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
