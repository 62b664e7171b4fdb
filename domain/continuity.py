"""Continuity of benefits after a transfer (R24-R28), and the ``Decision`` records that
explain every rule applied to a case.

Money is integer fen, durations are integer months. Months follow the way contributions
are paid: per calendar month. A month is covered when an enrolment span touches it, so
the month in which contributions end and the month in which the new enrolment starts are
both covered, and an *interruption* is the number of whole calendar months strictly
between them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import date, datetime, timedelta
from typing import Any, Final, get_args

from domain.balance import BalanceDecision
from domain.calendar import Deadline
from domain.eligibility import Scheme
from domain.limits import CaseDeadlines
from domain.money import Fen, format_fen
from domain.policy import MAX_WAITING_PERIOD_MONTHS, ResolvedPolicy
from domain.regions import is_region_code

MAX_SHORT_INTERRUPTION_MONTHS: Final = 3  # R25 R26 R27: "3 months or less"
MIN_CONTINUOUS_MONTHS_FOR_SWITCH: Final = 24  # R26: 2 or more continuous years

_SCHEMES: Final = frozenset(get_args(Scheme))
_ONE_DAY: Final = timedelta(days=1)


def _require_date(value: object, name: str) -> date:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise TypeError(f"{name} must be a datetime.date (not a datetime)")
    return value


def _require_count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer")
    return value


def _month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


def _month_start(index: int) -> date:
    return date(index // 12, index % 12 + 1, 1)


def add_months(day: date, months: int) -> date:
    """The same day ``months`` calendar months later, clamped to the month's last day
    (2026-01-31 + 1 month = 2026-02-28)."""
    _require_date(day, "day")
    index = _month_index(day) + months
    first = _month_start(index)
    next_first = _month_start(index + 1)
    return first.replace(day=min(day.day, (next_first - first).days))


def _parse_date(value: object, name: str) -> date:
    if isinstance(value, str):
        return date.fromisoformat(value)
    return _require_date(value, name)


@dataclass(frozen=True)
class EnrolmentSpan:
    """One enrolment in one region and scheme (same fields as ``contracts``'
    ``EnrolmentPeriod``, so ``EnrolmentSpan(**period.model_dump())`` works).

    ``end`` None: still enrolled. ``contribution_months``: months actually contributed.
    """

    region: str
    scheme: Scheme
    start: date
    end: date | None
    contribution_months: int

    def __post_init__(self) -> None:
        if not is_region_code(self.region):
            raise ValueError("a region code is six digits")
        if self.scheme not in _SCHEMES:
            raise ValueError("scheme must be employee or resident")
        _require_date(self.start, "start")
        if self.end is not None and _require_date(self.end, "end") < self.start:
            raise ValueError("an enrolment span cannot end before it starts")
        _require_count(self.contribution_months, "contribution_months")

    def to_json(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "scheme": self.scheme,
            "start": self.start.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
            "contribution_months": self.contribution_months,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EnrolmentSpan:
        """Accepts ISO strings or dates, so a contract's ``model_dump()`` fits too."""
        end = data.get("end")
        return cls(
            region=data["region"],
            scheme=data["scheme"],
            start=_parse_date(data["start"], "start"),
            end=None if end is None else _parse_date(end, "end"),
            contribution_months=data["contribution_months"],
        )


def contribution_by_region(spans: Iterable[EnrolmentSpan]) -> dict[str, int]:
    """R24: contribution months per region (sorted by region code)."""
    # R24: years accumulate across regions.
    totals: dict[str, int] = {}
    for span in spans:
        totals[span.region] = totals.get(span.region, 0) + span.contribution_months
    return dict(sorted(totals.items()))


def total_contribution_months(spans: Iterable[EnrolmentSpan]) -> int:
    """R24: contribution months over all regions."""
    # R24
    return sum(span.contribution_months for span in spans)


def deemed_contribution_years(total_months: int) -> tuple[int, int]:
    """R24: ``(years, months)`` the incoming region counts as deemed contribution years
    (视同缴费年限): whole years and the remaining months."""
    # R24
    return divmod(_require_count(total_months, "total_months"), 12)


def interruption_months(last_contribution_end: date, new_enrolment: date) -> int:
    """R25-R27: whole calendar months with no contribution between the last covered day and
    the new enrolment (transfer) date.

    Both the month of ``last_contribution_end`` and the month of ``new_enrolment`` count
    as covered, so the interruption is the months strictly between them, never negative:
    end 2026-01-31, enrolled 2026-05-01 -> February, March, April = 3 ("3 months or
    less"); enrolled 2026-05-31 is still 3; 2026-06-01 is 4.
    """
    _require_date(last_contribution_end, "last_contribution_end")
    _require_date(new_enrolment, "new_enrolment")
    return max(0, _month_index(new_enrolment) - _month_index(last_contribution_end) - 1)


def _span_end(span: EnrolmentSpan, on: date) -> date:
    return on if span.end is None or span.end > on else span.end


def continuous_enrolment_months(spans: Iterable[EnrolmentSpan], on: date) -> int:
    """R26: calendar months of the run of adjacent spans that contains the latest span.

    Spans starting after ``on`` are ignored; an open span (or one ending after ``on``)
    counts up to ``on``. Two spans are adjacent when no whole calendar month lies between
    them (``interruption_months(previous_end, next_start) == 0``), in particular when the
    next starts no later than the day after the previous ends; overlaps are adjacent. The
    run's months are counted from the month of its first start to the month of its last
    end, both included.
    """
    _require_date(on, "on")
    ordered = sorted((s for s in spans if s.start <= on), key=lambda s: s.start)
    if not ordered:
        return 0
    run_start = ordered[0].start
    run_end = _span_end(ordered[0], on)
    for span in ordered[1:]:
        if interruption_months(run_end, span.start) == 0:
            run_end = max(run_end, _span_end(span, on))
        else:
            run_start, run_end = span.start, _span_end(span, on)
    return _month_index(run_end) - _month_index(run_start) + 1


def _round_half_up_div(numerator: int, denominator: int) -> int:
    # Integer arithmetic only: floor((2n + d) / 2d) is n/d rounded half up for n, d >= 0.
    return (2 * numerator + denominator) // (2 * denominator)


def back_payment_estimate_fen(months: int, base_fen: Fen, rate_per_mille: int) -> Fen:
    """R28: months x monthly base x rate, in fen, rounded half up to a whole fen."""
    # R28
    _require_count(months, "months")
    _require_count(base_fen, "base_fen")
    _require_count(rate_per_mille, "rate_per_mille")
    return _round_half_up_div(months * base_fen * rate_per_mille, 1000)


def late_fee_estimate_fen(amount_fen: Fen, per_day_per_10000: int, days: int) -> Fen:
    """R28: amount x (per_day_per_10000 / 10000) x days, in fen, rounded half up."""
    # R28: 0.05% per day is 5 per 10000.
    _require_count(amount_fen, "amount_fen")
    _require_count(per_day_per_10000, "per_day_per_10000")
    _require_count(days, "days")
    return _round_half_up_div(amount_fen * per_day_per_10000 * days, 10000)


def waiting_period_end(enrolled_on: date, months: int) -> date | None:
    """R27: last day of a waiting period of ``months`` starting on ``enrolled_on``
    (2026-03-15 + 3 months ends 2026-06-14); None without a waiting period."""
    _require_date(enrolled_on, "enrolled_on")
    _require_count(months, "months")
    if months == 0:
        return None
    return add_months(enrolled_on, months) - _ONE_DAY


@dataclass(frozen=True)
class ContinuitySettings:
    """The incoming region's numbers that continuity needs (R27, R28)."""

    version: str
    waiting_period_months: int
    back_payment_base_fen: Fen
    back_payment_rate_per_mille: int
    late_fee_per_day_per_10000: int

    def __post_init__(self) -> None:
        _require_count(self.waiting_period_months, "waiting_period_months")
        # R27
        if self.waiting_period_months > MAX_WAITING_PERIOD_MONTHS:
            raise ValueError(
                f"waiting_period_months exceeds the national maximum of "
                f"{MAX_WAITING_PERIOD_MONTHS} (R27)"
            )
        _require_count(self.back_payment_base_fen, "back_payment_base_fen")
        _require_count(self.back_payment_rate_per_mille, "back_payment_rate_per_mille")
        _require_count(self.late_fee_per_day_per_10000, "late_fee_per_day_per_10000")

    @classmethod
    def from_policy(cls, policy: ResolvedPolicy) -> ContinuitySettings:
        return cls(
            version=policy.version_label,
            waiting_period_months=policy.waiting_period_months,
            back_payment_base_fen=policy.back_payment_base_fen,
            back_payment_rate_per_mille=policy.back_payment_rate_per_mille,
            late_fee_per_day_per_10000=policy.late_fee_per_day_per_10000,
        )


@dataclass(frozen=True)
class ContinuityAssessment:
    """What the transfer means for the person's benefits, with the rules that decided it.

    ``back_payment_allowed``: R25/R26, back-paying the interruption restores cover
    retroactively (``retroactive``) and benefits run from ``benefits_from_month``.
    Otherwise, over 3 months, R27's waiting period applies. The R28 estimates are shown
    whenever there is an interruption: they use the incoming region's base and rate and
    count late-fee days from the first uncovered month to ``paid_on`` (an upper bound:
    each month's own arrears start later).
    """

    policy_version: str
    from_scheme: Scheme
    to_scheme: Scheme
    transfer_on: date
    paid_on: date
    total_contribution_months: int
    months_by_region: dict[str, int]
    deemed_years: int
    deemed_months: int
    last_contribution_end: date
    interruption_months: int
    continuous_enrolment_months: int
    back_payment_allowed: bool
    retroactive: bool
    benefits_from_month: date | None
    benefits_from: date
    waiting_period_months: int
    waiting_period_ends_on: date | None
    arrears_days: int
    back_payment_estimate_fen: Fen
    late_fee_estimate_fen: Fen
    rules: tuple[str, ...]
    explanation_en: str
    explanation_zh: str

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, date):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dict):
                value = dict(value)
            data[f.name] = value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ContinuityAssessment:
        dates = {"transfer_on", "paid_on", "last_contribution_end", "benefits_from"}
        optional_dates = {"benefits_from_month", "waiting_period_ends_on"}
        values: dict[str, Any] = {}
        for f in fields(cls):
            value = data[f.name]
            if f.name in dates or (f.name in optional_dates and value is not None):
                value = date.fromisoformat(value)
            elif f.name == "rules":
                value = tuple(value)
            elif f.name == "months_by_region":
                value = dict(value)
            values[f.name] = value
        return cls(**values)


_SCHEME_ZH: Final = {"employee": "职工医保", "resident": "居民医保"}


def _months_en(n: int) -> str:
    return f"{n} month" if n == 1 else f"{n} months"


def assess_continuity(
    spans: Iterable[EnrolmentSpan],
    *,
    transfer_on: date,
    from_scheme: Scheme,
    to_scheme: Scheme,
    policy: ResolvedPolicy | ContinuitySettings,
    paid_on: date | None = None,
) -> ContinuityAssessment:
    """Assess R24-R28 for a transfer.

    ``spans``: the enrolment history before the transfer (e.g. the information sheet's
    periods). ``transfer_on``: the enrolment date at the incoming region. ``policy``: the
    incoming region's policy (or just its continuity numbers). ``paid_on``: when a
    back-payment would be made (default ``transfer_on``): it fixes the month benefits
    start under R25/R26 and the late-fee days (R28).
    """
    history = tuple(spans)
    _require_date(transfer_on, "transfer_on")
    paid_on = transfer_on if paid_on is None else _require_date(paid_on, "paid_on")
    if paid_on < transfer_on:
        raise ValueError("paid_on cannot be before transfer_on")
    if from_scheme not in _SCHEMES or to_scheme not in _SCHEMES:
        raise ValueError("scheme must be employee or resident")
    if not history:
        raise ValueError("no enrolment history to assess")
    if any(span.start > transfer_on for span in history):
        raise ValueError("an enrolment span starts after the transfer")
    settings = (
        ContinuitySettings.from_policy(policy) if isinstance(policy, ResolvedPolicy) else policy
    )

    # R24
    by_region = contribution_by_region(history)
    total = total_contribution_months(history)
    years, months = deemed_contribution_years(total)
    rules = ["R24"]

    last_end = max(_span_end(span, transfer_on) for span in history)
    gap = interruption_months(last_end, transfer_on)
    continuous = continuous_enrolment_months(history, transfer_on)
    short = 0 < gap <= MAX_SHORT_INTERRUPTION_MONTHS  # R25 R26: "3 months or less"

    back_payment_allowed = False
    benefits_from_month: date | None = None
    benefits_from = transfer_on
    waiting = 0
    waiting_ends: date | None = None

    if short and from_scheme == to_scheme == "employee":
        rules.append("R25")  # R25
    elif short and from_scheme != to_scheme and continuous >= MIN_CONTINUOUS_MONTHS_FOR_SWITCH:
        rules.append("R26")  # R26
    elif gap > MAX_SHORT_INTERRUPTION_MONTHS:
        # R27: never above the region's setting, never above the national 6 months.
        rules.append("R27")
        waiting = max(0, min(settings.waiting_period_months, MAX_WAITING_PERIOD_MONTHS))
        waiting_ends = waiting_period_end(transfer_on, waiting)
        if waiting_ends is not None:
            benefits_from = waiting_ends + _ONE_DAY
    if rules[-1] in ("R25", "R26"):
        # R25 R26: benefits from the month of payment, the interruption covered retroactively.
        back_payment_allowed = True
        benefits_from_month = _month_start(_month_index(paid_on))
        benefits_from = benefits_from_month

    arrears_days = 0
    estimate = 0
    late_fee = 0
    if gap > 0:
        # R28
        rules.append("R28")
        first_uncovered = _month_start(_month_index(last_end) + 1)
        arrears_days = max(0, (paid_on - first_uncovered).days)
        estimate = back_payment_estimate_fen(
            gap, settings.back_payment_base_fen, settings.back_payment_rate_per_mille
        )
        late_fee = late_fee_estimate_fen(
            estimate, settings.late_fee_per_day_per_10000, arrears_days
        )

    assessment = ContinuityAssessment(
        policy_version=settings.version,
        from_scheme=from_scheme,
        to_scheme=to_scheme,
        transfer_on=transfer_on,
        paid_on=paid_on,
        total_contribution_months=total,
        months_by_region=by_region,
        deemed_years=years,
        deemed_months=months,
        last_contribution_end=last_end,
        interruption_months=gap,
        continuous_enrolment_months=continuous,
        back_payment_allowed=back_payment_allowed,
        retroactive=back_payment_allowed,
        benefits_from_month=benefits_from_month,
        benefits_from=benefits_from,
        waiting_period_months=waiting,
        waiting_period_ends_on=waiting_ends,
        arrears_days=arrears_days,
        back_payment_estimate_fen=estimate,
        late_fee_estimate_fen=late_fee,
        rules=tuple(rules),
        explanation_en="",
        explanation_zh="",
    )
    parts = _explain(assessment)
    return replace(
        assessment,
        explanation_en=_sentence("; ".join(en for _, en, _ in parts), "."),
        explanation_zh="；".join(zh for _, _, zh in parts) + "。",
    )


def _explain(a: ContinuityAssessment) -> list[tuple[str | None, str, str]]:
    """Clauses ``(rule, english, chinese)`` explaining an assessment, R24 first."""
    gap = a.interruption_months
    parts: list[tuple[str | None, str, str]] = [
        (
            "R24",
            f"{a.total_contribution_months} contribution months ({a.deemed_years} years "
            f"{a.deemed_months} months) count as deemed contribution years at the incoming "
            "region (R24)",
            f"累计缴费{a.total_contribution_months}个月（{a.deemed_years}年{a.deemed_months}个月），"
            "转入地认可为视同缴费年限（R24）",
        )
    ]
    month = a.benefits_from_month
    if gap == 0:
        parts.append(
            (None, "there is no interruption, so benefits continue", "无中断，待遇连续享受")
        )
    elif "R25" in a.rules and month is not None:
        parts.append(
            (
                "R25",
                f"contributions were interrupted for {_months_en(gap)} (3 or less) in the "
                f"employee scheme, so the person may back-pay and has benefits from "
                f"{month:%Y-%m}, retroactively for the interruption (R25)",
                f"职工医保中断缴费{gap}个月（不超过3个月），可按转入地规定补缴，"
                f"自{month.year}年{month.month}月起享受待遇，中断期间待遇可追溯（R25）",
            )
        )
    elif "R26" in a.rules and month is not None:
        parts.append(
            (
                "R26",
                f"after {a.continuous_enrolment_months} continuous months of enrolment the person "
                f"switched from the {a.from_scheme} to the {a.to_scheme} scheme with an "
                f"interruption of {_months_en(gap)} (3 or less), so the person may back-pay and "
                f"has benefits from {month:%Y-%m}, retroactively for the interruption (R26)",
                f"连续参保{a.continuous_enrolment_months}个月后由{_SCHEME_ZH[a.from_scheme]}转为"
                f"{_SCHEME_ZH[a.to_scheme]}，中断{gap}个月（不超过3个月），可补缴，"
                f"自{month.year}年{month.month}月起享受待遇，中断期间待遇可追溯（R26）",
            )
        )
    elif "R27" in a.rules and a.waiting_period_ends_on is not None:
        ends = a.waiting_period_ends_on.isoformat()
        starts = a.benefits_from.isoformat()
        parts.append(
            (
                "R27",
                f"contributions were interrupted for {_months_en(gap)} (over 3), so a waiting "
                f"period of {_months_en(a.waiting_period_months)} applies until {ends} and "
                f"benefits start on {starts} (R27)",
                f"中断缴费{gap}个月（超过3个月），设待遇等待期{a.waiting_period_months}个月"
                f"至{ends}，自{starts}起享受待遇（R27）",
            )
        )
    elif "R27" in a.rules:
        parts.append(
            (
                "R27",
                f"contributions were interrupted for {_months_en(gap)} (over 3) but the incoming "
                "region sets no waiting period (R27)",
                f"中断缴费{gap}个月（超过3个月），转入地未设待遇等待期（R27）",
            )
        )
    else:
        parts.append(
            (
                None,
                f"contributions were interrupted for {_months_en(gap)} (3 or less) but neither "
                "R25 (employee scheme) nor R26 (switch after 2 continuous years) applies, so "
                "benefits start on enrolment without retroactive cover",
                f"中断缴费{gap}个月（不超过3个月），不符合R25（职工医保）或R26"
                "（连续参保满2年后转换险种）的条件，自参保之日起享受待遇，中断期间不追溯",
            )
        )
    if "R28" in a.rules:
        fee = format_fen(a.late_fee_estimate_fen)
        amount = format_fen(a.back_payment_estimate_fen)
        parts.append(
            (
                "R28",
                f"back-paying {_months_en(gap)} is estimated at {amount} yuan plus a late fee of "
                f"{fee} yuan for {a.arrears_days} days (R28)",
                f"补缴{gap}个月预计{amount}元，滞纳金按{a.arrears_days}天预计{fee}元（R28）",
            )
        )
    return parts


@dataclass(frozen=True)
class Decision:
    """One decision on a case and why: the rule, the policy version it was taken under,
    the outcome and one sentence in each language. The case API lists these."""

    rule: str
    policy_version: str
    outcome: str
    explanation_en: str
    explanation_zh: str

    def to_json(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Decision:
        return cls(**{f.name: str(data[f.name]) for f in fields(cls)})


def balance_decision(decision: BalanceDecision, policy_version: str) -> Decision:
    """R18-R23: the balance routing as a ``Decision``."""
    outcome: str = decision.action
    if decision.awaiting_bank_account:
        outcome += " (awaiting bank account)"
    return Decision(
        rule=decision.rule,
        policy_version=policy_version,
        outcome=outcome,
        explanation_en=decision.explanation_en,
        explanation_zh=decision.explanation_zh,
    )


# What each time limit is for: (English, Chinese).
_DEADLINE_SUBJECTS: Final = {
    "R12": ("Transfer-out by the outgoing agency", "转出地经办机构应完成转出"),
    "R13": ("Transfer-in by the incoming agency", "转入地经办机构应完成转入"),
    "R14": ("The whole case", "整个转移接续业务应办结"),
    "R23": (
        "Escalation to a clerk while the region is not connected to the platform",
        "转入地尚未接入平台，应移交经办人员处理",
    ),
    "R6-R9": ("Correction of a soft refusal", "可更正退回原因的期限"),
}


def deadline_decision(
    *, rule: str, start: date, limit_days: int, deadline: Deadline, policy_version: str
) -> Decision:
    """A time limit (R12, R13, R14, R23 or the R6-R9 soft-refusal window) as a
    ``Decision``; a deadline computed Monday-Friday for want of calendar data says so."""
    if rule not in _DEADLINE_SUBJECTS:
        raise ValueError(f"no time limit for rule {rule}")
    subject_en, subject_zh = _DEADLINE_SUBJECTS[rule]
    due = deadline.due.isoformat()
    en = (
        f"{subject_en} is due by the end of {due}: {limit_days} working days after "
        f"{start.isoformat()} ({rule})"
    )
    zh = f"{subject_zh}，期限为{start.isoformat()}后{limit_days}个工作日，至{due}止（{rule}）"
    if not deadline.official:
        years = ", ".join(str(y) for y in deadline.fallback_years)
        en += f", counted Monday-Friday for {years} until the official calendar is loaded"
        zh += f"，{years}年官方日历尚未发布，暂按周一至周五计算"
    return Decision(
        rule=rule,
        policy_version=policy_version,
        outcome=f"due {due}",
        explanation_en=en + ".",
        explanation_zh=zh + "。",
    )


def case_deadline_decisions(
    deadlines: CaseDeadlines, policy: ResolvedPolicy
) -> tuple[Decision, Decision]:
    """R12 transfer-out and R14 whole-case deadlines fixed at acceptance."""
    limits = policy.limits()
    return (
        deadline_decision(
            rule="R12",
            start=deadlines.accepted_on,
            limit_days=limits.transfer_out_days,
            deadline=deadlines.transfer_out_due,
            policy_version=policy.version_label,
        ),
        deadline_decision(
            rule="R14",
            start=deadlines.accepted_on,
            limit_days=limits.total_days,
            deadline=deadlines.total_due,
            policy_version=policy.version_label,
        ),
    )


def continuity_decisions(assessment: ContinuityAssessment) -> tuple[Decision, ...]:
    """One ``Decision`` per continuity rule applied (R24, then R25/R26/R27, then R28)."""
    a = assessment
    outcomes = {
        "R24": f"deemed {a.deemed_years} years {a.deemed_months} months",
        "R25": f"back-payment allowed; benefits from {_month_label(a)}, retroactive",
        "R26": f"back-payment allowed; benefits from {_month_label(a)}, retroactive",
        "R27": f"waiting period {a.waiting_period_months} months"
        + ("" if a.waiting_period_ends_on is None else f" until {a.waiting_period_ends_on}"),
        "R28": f"back-payment {format_fen(a.back_payment_estimate_fen)} yuan, "
        f"late fee {format_fen(a.late_fee_estimate_fen)} yuan",
    }
    return tuple(
        Decision(
            rule=rule,
            policy_version=a.policy_version,
            outcome=outcomes[rule],
            explanation_en=_sentence(en, "."),
            explanation_zh=zh + "。",
        )
        for rule, en, zh in _explain(a)
        if rule is not None
    )


def _month_label(assessment: ContinuityAssessment) -> str:
    month = assessment.benefits_from_month
    return "-" if month is None else f"{month:%Y-%m}"


def _sentence(text: str, end: str) -> str:
    return text[:1].upper() + text[1:] + end
