"""Continuity of benefits after a transfer (R24-R28), and the ``Decision`` records that
explain every rule applied to a case.

Money is integer fen, durations are integer months. Contributions are paid per calendar
month, and the rules read as the December 2026 clarifications state them:

- R24: only employee-scheme months count as deemed employee contribution years
  (视同缴费年限); resident-scheme months are reported on their own.
- R25-R27: the *interruption* is the number of calendar months without a contribution
  between the last paid month at the outgoing region and the first month at the incoming
  one (the month its enrolment starts), never a count from the suspension date, which an
  agency often records weeks after the last payment. 3 or fewer: R25 (R26); 4 or more:
  R27's waiting period.
- R26: "2 or more continuous years" counts the paid months of the continuous run.
- R28: where back-payment is allowed, the interruption's months x base x rate, and a late
  fee each month's arrears accrue from that month's own due date to the payment date.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, timedelta
from typing import Any, Final, Protocol, get_args

from domain.balance import BalanceDecision
from domain.calendar import Deadline
from domain.eligibility import Scheme
from domain.limits import CaseDeadlines, CaseLimits
from domain.money import Fen, format_fen
from domain.policy import MAX_WAITING_PERIOD_MONTHS, PolicySource, ResolvedPolicy
from domain.regions import is_region_code

MAX_SHORT_INTERRUPTION_MONTHS: Final = 3  # R25 R26 R27: "3 months or less"
MIN_CONTINUOUS_MONTHS_FOR_SWITCH: Final = 24  # R26: 2 or more continuous years, paid months

_SCHEMES: Final = frozenset(get_args(Scheme))
_ONE_DAY: Final = timedelta(days=1)
# R28: the base is per month, the rate per mille of it, the late fee per 10000 a day.
_RATE_DENOMINATOR: Final = 1000
_LATE_FEE_DENOMINATOR: Final = 10000


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


def month_of(day: date) -> date:
    """The first day of ``day``'s month: how a month is written (2026-06-01 for June)."""
    return _month_start(_month_index(_require_date(day, "day")))


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


def _date_zh(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def _month_zh(month: date) -> str:
    return f"{month.year}年{month.month}月"


@dataclass(frozen=True)
class EnrolmentSpan:
    """One enrolment in one region and scheme (same fields as ``contracts``'
    ``EnrolmentPeriod``, so ``EnrolmentSpan(**period.model_dump())`` works).

    ``end`` None: still enrolled. ``contribution_months``: months actually contributed.
    ``last_paid_month``: the last month contributed for, as its first day (None: not
    reported, the month of ``end`` stands in for it).
    """

    region: str
    scheme: Scheme
    start: date
    end: date | None
    contribution_months: int
    last_paid_month: date | None = None

    def __post_init__(self) -> None:
        if not is_region_code(self.region):
            raise ValueError("a region code is six digits")
        if self.scheme not in _SCHEMES:
            raise ValueError("scheme must be employee or resident")
        _require_date(self.start, "start")
        if self.end is not None and _require_date(self.end, "end") < self.start:
            raise ValueError("an enrolment span cannot end before it starts")
        _require_count(self.contribution_months, "contribution_months")
        paid = self.last_paid_month
        if paid is not None:
            if _require_date(paid, "last_paid_month").day != 1:
                raise ValueError("last_paid_month is a month: its first day (YYYY-MM-01)")
            if paid < month_of(self.start):
                raise ValueError("last_paid_month is before the enrolment starts")
            if self.end is not None and paid > month_of(self.end):
                raise ValueError("last_paid_month is after the enrolment ends")

    def paid_through(self, on: date) -> date:
        """The last paid month (its first day): ``last_paid_month`` when reported, else
        the month the span ends (an open span: the month of ``on``)."""
        if self.last_paid_month is not None:
            return self.last_paid_month
        return month_of(_span_end(self, on))

    def to_json(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "scheme": self.scheme,
            "start": self.start.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
            "contribution_months": self.contribution_months,
            "last_paid_month": None
            if self.last_paid_month is None
            else self.last_paid_month.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EnrolmentSpan:
        """Accepts ISO strings or dates, so a contract's ``model_dump()`` fits too."""
        end = data.get("end")
        paid = data.get("last_paid_month")
        return cls(
            region=data["region"],
            scheme=data["scheme"],
            start=_parse_date(data["start"], "start"),
            end=None if end is None else _parse_date(end, "end"),
            contribution_months=data["contribution_months"],
            last_paid_month=None if paid is None else _parse_date(paid, "last_paid_month"),
        )


def last_paid_month_problem(
    last_paid: date | None, enrolled_since: date, suspended_on: date | None, today: date
) -> str | None:
    """R25-R27: what is wrong with an enrolment record's last paid month, None when it
    fits: a month (its first day), not before the enrolment starts, not after the
    suspension, and not in the future."""
    if last_paid is None:
        return None
    if last_paid.day != 1:
        return "last_paid_month is a month: give its first day (YYYY-MM-01)"
    if last_paid < month_of(enrolled_since):
        return "last_paid_month is before the enrolment starts (enrolled_since)"
    if suspended_on is not None and last_paid > month_of(suspended_on):
        return "last_paid_month is after the suspension (suspended_on)"
    if last_paid > month_of(today):
        return "last_paid_month is in the future"
    return None


class Contributions(Protocol):
    """Anything with a scheme and its contribution months (a span, a contract period)."""

    @property
    def scheme(self) -> str: ...

    @property
    def contribution_months(self) -> int: ...


def contribution_by_region(spans: Iterable[EnrolmentSpan]) -> dict[str, int]:
    """R24: contribution months per region (sorted by region code)."""
    # R24: years accumulate across regions.
    totals: dict[str, int] = {}
    for span in spans:
        totals[span.region] = totals.get(span.region, 0) + span.contribution_months
    return dict(sorted(totals.items()))


def total_contribution_months(spans: Iterable[Contributions]) -> int:
    """R24: contribution months over all regions and both schemes."""
    # R24
    return sum(span.contribution_months for span in spans)


def contribution_months_by_scheme(spans: Iterable[Contributions]) -> dict[str, int]:
    """R24: contribution months per scheme, ``{"employee": n, "resident": m}``."""
    totals = dict.fromkeys(sorted(_SCHEMES), 0)
    for span in spans:
        totals[span.scheme] += span.contribution_months
    return totals


def deemed_employee_months(spans: Iterable[Contributions]) -> int:
    """R24: the months the incoming region counts as deemed employee contribution years
    (视同缴费年限): employee-scheme months only; resident-scheme months are not."""
    # R24: only employee-scheme months are deemed employee contribution years.
    return contribution_months_by_scheme(spans)["employee"]


def deemed_contribution_years(total_months: int) -> tuple[int, int]:
    """R24: ``(years, months)`` of deemed contribution years: whole years and the rest."""
    # R24
    return divmod(_require_count(total_months, "total_months"), 12)


def interruption_months(last_paid: date, first_month: date) -> int:
    """R25-R27: calendar months without a contribution between the last paid month and
    the first month at the incoming region (any day of each month may be given).

    The months strictly between the two, never negative: last paid January 2026, enrolled
    in May -> February, March, April = 3 ("3 months or less"); enrolled in June: 4.
    """
    _require_date(last_paid, "last_paid")
    _require_date(first_month, "first_month")
    return max(0, _month_index(first_month) - _month_index(last_paid) - 1)


def uncovered_months(last_paid: date, first_month: date) -> tuple[date, ...]:
    """R25 R28: the months of the interruption, each as its first day."""
    start = _month_index(last_paid) + 1
    return tuple(
        _month_start(start + n) for n in range(interruption_months(last_paid, first_month))
    )


def _span_end(span: EnrolmentSpan, on: date) -> date:
    return on if span.end is None or span.end > on else span.end


def last_paid_month(spans: Iterable[EnrolmentSpan], on: date) -> date:
    """R25-R27: the latest paid month of the history (first day), spans ending after
    ``on`` counted up to ``on``."""
    months = [span.paid_through(on) for span in spans if span.start <= on]
    if not months:
        raise ValueError("no enrolment history to assess")
    return max(months)


def continuous_paid_months(spans: Iterable[EnrolmentSpan], on: date) -> int:
    """R26: paid months (``contribution_months``) of the continuous run of spans that
    contains the latest one.

    Spans starting after ``on`` are ignored. A span continues the run when no calendar
    month lies between the run's last paid month and the span's start
    (``interruption_months(...) == 0``); overlaps continue it too.
    """
    _require_date(on, "on")
    ordered = sorted((s for s in spans if s.start <= on), key=lambda s: s.start)
    if not ordered:
        return 0
    paid = ordered[0].contribution_months
    paid_through = ordered[0].paid_through(on)
    for span in ordered[1:]:
        if interruption_months(paid_through, span.start) == 0:
            paid += span.contribution_months
            paid_through = max(paid_through, span.paid_through(on))
        else:
            paid, paid_through = span.contribution_months, span.paid_through(on)
    return paid


def _round_half_up_div(numerator: int, denominator: int) -> int:
    # Integer arithmetic only: floor((2n + d) / 2d) is n/d rounded half up for n, d >= 0.
    return (2 * numerator + denominator) // (2 * denominator)


def back_payment_estimate_fen(months: int, base_fen: Fen, rate_per_mille: int) -> Fen:
    """R28: months x monthly base x rate, in fen, rounded half up to a whole fen once, on
    the total."""
    # R28
    _require_count(months, "months")
    _require_count(base_fen, "base_fen")
    _require_count(rate_per_mille, "rate_per_mille")
    return _round_half_up_div(months * base_fen * rate_per_mille, _RATE_DENOMINATOR)


def late_fee_estimate_fen(amount_fen: Fen, per_day_per_10000: int, days: int) -> Fen:
    """R28: amount x (per_day_per_10000 / 10000) x days, in fen, rounded half up."""
    # R28: 0.05% per day is 5 per 10000.
    _require_count(amount_fen, "amount_fen")
    _require_count(per_day_per_10000, "per_day_per_10000")
    _require_count(days, "days")
    return _round_half_up_div(amount_fen * per_day_per_10000 * days, _LATE_FEE_DENOMINATOR)


def contribution_due_date(month: date, due_day: int | None = None) -> date:
    """R28: the day ``month``'s contribution is due: day ``due_day`` of the month (its last
    day when the month is shorter), or the month's last day when the region sets none."""
    first = month_of(month)
    last = add_months(first, 1) - _ONE_DAY
    if due_day is None:
        return last
    if isinstance(due_day, bool) or not isinstance(due_day, int) or not 1 <= due_day <= 31:
        raise ValueError("due_day must be a day of the month, 1..31")
    return first.replace(day=min(due_day, last.day))


def late_fee_days(
    months: Sequence[date], paid_on: date, due_day: int | None = None
) -> tuple[int, ...]:
    """R28: for each month, the days its arrears accrue a late fee: from the day after its
    due date up to and including ``paid_on`` (0 when paid by the due date)."""
    _require_date(paid_on, "paid_on")
    return tuple(max(0, (paid_on - contribution_due_date(m, due_day)).days) for m in months)


def monthly_late_fee_fen(
    days_by_month: Sequence[int], base_fen: Fen, rate_per_mille: int, per_day_per_10000: int
) -> Fen:
    """R28: the late fee on a back-payment whose months each owe base x rate and accrue
    from their own due date: the sum over months of base x rate x per-day rate x that
    month's days, in fen, computed exactly and rounded half up to a whole fen once, on
    the total."""
    # R28: each month's arrears accrue from that month's own due date.
    for days in days_by_month:
        _require_count(days, "days")
    _require_count(base_fen, "base_fen")
    _require_count(rate_per_mille, "rate_per_mille")
    _require_count(per_day_per_10000, "per_day_per_10000")
    numerator = base_fen * rate_per_mille * per_day_per_10000 * sum(days_by_month)
    return _round_half_up_div(numerator, _RATE_DENOMINATOR * _LATE_FEE_DENOMINATOR)


def waiting_period_end(enrolled_on: date, months: int) -> date | None:
    """R27: last day of a waiting period of ``months`` starting on ``enrolled_on``
    (2026-03-15 + 3 months ends 2026-06-14); None without a waiting period."""
    _require_date(enrolled_on, "enrolled_on")
    _require_count(months, "months")
    if months == 0:
        return None
    return add_months(enrolled_on, months) - _ONE_DAY


def _optional_count(value: object, name: str, maximum: int | None = None) -> None:
    if value is None:
        return
    _require_count(value, name)
    if maximum is not None and isinstance(value, int) and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}")


@dataclass(frozen=True)
class ContinuitySettings:
    """The incoming region's numbers that continuity needs (R25-R28).

    ``back_payment_base_fen`` / ``back_payment_rate_per_mille`` None: the region's policy
    does not set them ("not set": no amount is estimated). ``contribution_due_day`` None:
    each month's contribution is due on its last day. The sources say where base and rate
    come from (a document, or the project's default).
    """

    version: str
    waiting_period_months: int
    back_payment_base_fen: Fen | None
    back_payment_rate_per_mille: int | None
    late_fee_per_day_per_10000: int
    back_payment_allowed: bool = True  # R25 R26: the region lets the interruption be back-paid
    contribution_due_day: int | None = None
    back_payment_base_source: PolicySource = field(default_factory=PolicySource)
    back_payment_rate_source: PolicySource = field(default_factory=PolicySource)

    def __post_init__(self) -> None:
        _require_count(self.waiting_period_months, "waiting_period_months")
        # R27
        if self.waiting_period_months > MAX_WAITING_PERIOD_MONTHS:
            raise ValueError(
                f"waiting_period_months exceeds the national maximum of "
                f"{MAX_WAITING_PERIOD_MONTHS} (R27)"
            )
        _optional_count(self.back_payment_base_fen, "back_payment_base_fen")
        _optional_count(self.back_payment_rate_per_mille, "back_payment_rate_per_mille", 1000)
        _require_count(self.late_fee_per_day_per_10000, "late_fee_per_day_per_10000")
        if not isinstance(self.back_payment_allowed, bool):
            raise ValueError("back_payment_allowed must be a boolean")
        if self.contribution_due_day is not None:
            contribution_due_date(date(2000, 1, 1), self.contribution_due_day)

    @classmethod
    def from_policy(cls, policy: ResolvedPolicy) -> ContinuitySettings:
        return cls(
            version=policy.version_label,
            waiting_period_months=policy.waiting_period_months,
            back_payment_base_fen=policy.back_payment_base_fen,
            back_payment_rate_per_mille=policy.back_payment_rate_per_mille,
            late_fee_per_day_per_10000=policy.late_fee_per_day_per_10000,
            back_payment_allowed=policy.back_payment == "allowed",
            contribution_due_day=policy.contribution_due_day,
            back_payment_base_source=policy.source_of("back_payment_base_fen") or PolicySource(),
            back_payment_rate_source=(
                policy.source_of("back_payment_rate_per_mille") or PolicySource()
            ),
        )


_DATE_FIELDS: Final = frozenset({"transfer_on", "paid_on", "last_paid_month", "benefits_from"})
_OPTIONAL_DATE_FIELDS: Final = frozenset({"benefits_from_month", "waiting_period_ends_on"})
_SOURCE_FIELDS: Final = frozenset({"back_payment_base_source", "back_payment_rate_source"})


@dataclass(frozen=True)
class ContinuityAssessment:
    """What the transfer means for the person's benefits, with the rules that decided it.

    R24: ``deemed_years``/``deemed_months`` come from ``employee_contribution_months``;
    ``resident_contribution_months`` are shown on their own. ``interruption_months``: the
    calendar months between ``last_paid_month`` (``last_paid_month_reported`` False: not
    on the sheet, the month enrolment ended stands in) and the month of ``transfer_on``,
    the first at the incoming region.

    ``back_payment_allowed``: R25/R26 apply and the region allows back-payment; cover is
    then restored retroactively and benefits run from ``benefits_from_month`` (the month of
    ``paid_on``). Over 3 months, R27's waiting period applies. The R28 figures are there
    only where back-payment is allowed and there is an interruption: its months, the
    region's base and rate with their sources (None: not set, and then no amount), each
    month's late-fee days from its own due date to ``paid_on``, and the estimates.
    """

    policy_version: str
    from_scheme: Scheme
    to_scheme: Scheme
    transfer_on: date
    paid_on: date
    total_contribution_months: int
    employee_contribution_months: int
    resident_contribution_months: int
    months_by_region: dict[str, int]
    deemed_years: int
    deemed_months: int
    last_paid_month: date
    last_paid_month_reported: bool
    interruption_months: int
    continuous_paid_months: int
    back_payment_allowed: bool
    retroactive: bool
    benefits_from_month: date | None
    benefits_from: date
    waiting_period_months: int
    waiting_period_ends_on: date | None
    back_payment_months: tuple[date, ...]
    back_payment_base_fen: Fen | None
    back_payment_rate_per_mille: int | None
    back_payment_base_source: PolicySource | None
    back_payment_rate_source: PolicySource | None
    late_fee_per_day_per_10000: int | None
    contribution_due_day: int | None
    late_fee_days: tuple[int, ...]
    back_payment_estimate_fen: Fen | None
    late_fee_estimate_fen: Fen | None
    rules: tuple[str, ...]
    explanation_en: str
    explanation_zh: str

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, PolicySource):
                value = value.to_json()
            elif isinstance(value, date):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = [v.isoformat() if isinstance(v, date) else v for v in value]
            elif isinstance(value, dict):
                value = dict(value)
            data[f.name] = value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ContinuityAssessment:
        values: dict[str, Any] = {}
        for f in fields(cls):
            value = data[f.name]
            if value is None:
                pass
            elif f.name in _DATE_FIELDS or f.name in _OPTIONAL_DATE_FIELDS:
                value = date.fromisoformat(value)
            elif f.name in _SOURCE_FIELDS:
                value = PolicySource.from_json(value)
            elif f.name == "back_payment_months":
                value = tuple(date.fromisoformat(v) for v in value)
            elif f.name in ("rules", "late_fee_days"):
                value = tuple(value)
            elif f.name == "months_by_region":
                value = dict(value)
            values[f.name] = value
        return cls(**values)


_SCHEME_ZH: Final = {"employee": "职工医保", "resident": "居民医保"}
_DIGITS_ZH: Final = "零一二三四五六七八九"


def _months_en(n: int) -> str:
    return f"{n} month" if n == 1 else f"{n} months"


def _decimal(value: int, places: int) -> str:
    """``value / 10**places`` written exactly, without trailing zeros (85, 1 -> "8.5")."""
    whole, part = divmod(value, 10**places)
    digits = f"{part:0{places}d}".rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def _rate_percent(per_mille: int) -> str:
    return _decimal(per_mille, 1) + "%"


def _late_fee_zh(per_10000: int) -> str:
    # 0.05% a day is written 每日万分之五; a region's rate is at most that (R28).
    if per_10000 < len(_DIGITS_ZH):
        return f"每日万分之{_DIGITS_ZH[per_10000]}"
    return f"每日万分之{per_10000}"


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
    periods, with their last paid months). ``transfer_on``: the enrolment start at the
    incoming region: its month is the first month there. ``policy``: the incoming region's
    policy (or just its continuity numbers). ``paid_on``: when a back-payment would be made
    (default ``transfer_on``): it fixes the month benefits start under R25/R26 and the
    late-fee days (R28).
    """
    history, paid_on = _check_inputs(tuple(spans), transfer_on, from_scheme, to_scheme, paid_on)
    settings = (
        ContinuitySettings.from_policy(policy) if isinstance(policy, ResolvedPolicy) else policy
    )
    # R24: employee-scheme months are deemed employee contribution years; resident-scheme
    # months are reported on their own.
    by_scheme = contribution_months_by_scheme(history)
    years, months = deemed_contribution_years(by_scheme["employee"])

    # R25-R27: calendar months from the last paid month to the first month here.
    paid_through = last_paid_month(history, transfer_on)
    reported = any(span.last_paid_month == paid_through for span in history if span.last_paid_month)
    gap = interruption_months(paid_through, transfer_on)
    continuous = continuous_paid_months(history, transfer_on)
    benefits = _benefits_after_interruption(
        gap, continuous, from_scheme, to_scheme, transfer_on, paid_on, settings
    )
    back_payment = _back_payment(benefits, paid_through, transfer_on, paid_on, settings)
    assessment = ContinuityAssessment(
        policy_version=settings.version,
        from_scheme=from_scheme,
        to_scheme=to_scheme,
        transfer_on=transfer_on,
        paid_on=paid_on,
        total_contribution_months=total_contribution_months(history),
        employee_contribution_months=by_scheme["employee"],
        resident_contribution_months=by_scheme["resident"],
        months_by_region=contribution_by_region(history),
        deemed_years=years,
        deemed_months=months,
        last_paid_month=paid_through,
        last_paid_month_reported=reported,
        interruption_months=gap,
        continuous_paid_months=continuous,
        retroactive=benefits.back_payment_allowed,
        rules=("R24", *benefits.rules, *back_payment.rules),
        explanation_en="",
        explanation_zh="",
        **benefits.fields(),
        **back_payment.fields(),
    )
    return _explained(assessment)


def _explained(assessment: ContinuityAssessment) -> ContinuityAssessment:
    parts = _explain(assessment)
    return replace(
        assessment,
        explanation_en=_sentence("; ".join(en for _, en, _ in parts), "."),
        explanation_zh="；".join(zh for _, _, zh in parts) + "。",
    )


def _check_inputs(
    history: tuple[EnrolmentSpan, ...],
    transfer_on: date,
    from_scheme: Scheme,
    to_scheme: Scheme,
    paid_on: date | None,
) -> tuple[tuple[EnrolmentSpan, ...], date]:
    """Refuse what cannot be assessed; the history and the day of payment (default: the
    transfer's)."""
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
    return history, paid_on


@dataclass(frozen=True)
class _Benefits:
    """When benefits start after the interruption (R25-R27), as assessment fields."""

    rules: tuple[str, ...]
    back_payment_allowed: bool
    benefits_from_month: date | None
    benefits_from: date
    waiting_period_months: int
    waiting_period_ends_on: date | None

    def fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "rules"}


def _benefits_after_interruption(
    gap: int,
    continuous: int,
    from_scheme: Scheme,
    to_scheme: Scheme,
    transfer_on: date,
    paid_on: date,
    settings: ContinuitySettings,
) -> _Benefits:
    short = 0 < gap <= MAX_SHORT_INTERRUPTION_MONTHS  # R25 R26: "3 months or less"
    if short and from_scheme == to_scheme == "employee":
        rule = "R25"  # R25
    elif short and from_scheme != to_scheme and continuous >= MIN_CONTINUOUS_MONTHS_FOR_SWITCH:
        rule = "R26"  # R26
    elif gap > MAX_SHORT_INTERRUPTION_MONTHS:
        # R27: never above the region's setting, never above the national 6 months.
        waiting = max(0, min(settings.waiting_period_months, MAX_WAITING_PERIOD_MONTHS))
        waiting_ends = waiting_period_end(transfer_on, waiting)
        starts = transfer_on if waiting_ends is None else waiting_ends + _ONE_DAY
        return _Benefits(("R27",), False, None, starts, waiting, waiting_ends)
    else:
        return _Benefits((), False, None, transfer_on, 0, None)
    if settings.back_payment_allowed:
        # R25 R26: benefits from the month of payment, the interruption covered retroactively.
        month = month_of(paid_on)
        return _Benefits((rule,), True, month, month, 0, None)
    return _Benefits((rule,), False, None, transfer_on, 0, None)


@dataclass(frozen=True)
class _BackPayment:
    """R28's figures, as assessment fields (all empty where no back-payment is allowed)."""

    rules: tuple[str, ...] = ()
    back_payment_months: tuple[date, ...] = ()
    back_payment_base_fen: Fen | None = None
    back_payment_rate_per_mille: int | None = None
    back_payment_base_source: PolicySource | None = None
    back_payment_rate_source: PolicySource | None = None
    late_fee_per_day_per_10000: int | None = None
    contribution_due_day: int | None = None
    late_fee_days: tuple[int, ...] = ()
    back_payment_estimate_fen: Fen | None = None
    late_fee_estimate_fen: Fen | None = None

    def fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "rules"}


_NO_BACK_PAYMENT = _BackPayment()


def _back_payment(
    benefits: _Benefits,
    paid_through: date,
    transfer_on: date,
    paid_on: date,
    settings: ContinuitySettings,
) -> _BackPayment:
    """R28: only where back-payment is allowed, for the person's own arrears: the
    interruption's months, at the region's base and rate (None: not set)."""
    if not benefits.back_payment_allowed:
        return _NO_BACK_PAYMENT
    arrears = uncovered_months(paid_through, transfer_on)
    base, rate = settings.back_payment_base_fen, settings.back_payment_rate_per_mille
    fee_rate, due_day = settings.late_fee_per_day_per_10000, settings.contribution_due_day
    days = late_fee_days(arrears, paid_on, due_day)
    estimate = late_fee = None
    if base is not None and rate is not None:
        estimate = back_payment_estimate_fen(len(arrears), base, rate)
        late_fee = monthly_late_fee_fen(days, base, rate, fee_rate)
    return _BackPayment(
        rules=("R28",),
        back_payment_months=arrears,
        back_payment_base_fen=base,
        back_payment_rate_per_mille=rate,
        back_payment_base_source=settings.back_payment_base_source if base is not None else None,
        back_payment_rate_source=settings.back_payment_rate_source if rate is not None else None,
        late_fee_per_day_per_10000=fee_rate,
        contribution_due_day=due_day,
        late_fee_days=days,
        back_payment_estimate_fen=estimate,
        late_fee_estimate_fen=late_fee,
    )


def _explain(a: ContinuityAssessment) -> list[tuple[str | None, str, str]]:
    """Clauses ``(rule, english, chinese)`` explaining an assessment, R24 first."""
    parts: list[tuple[str | None, str, str]] = [_explain_r24(a), _explain_interruption(a)]
    if "R28" in a.rules:
        parts.append(_explain_r28(a))
    return parts


def _explain_r24(a: ContinuityAssessment) -> tuple[str, str, str]:
    en = (
        f"{a.employee_contribution_months} employee-scheme contribution months "
        f"({a.deemed_years} years {a.deemed_months} months) count as deemed employee "
        "contribution years at the incoming region"
    )
    zh = (
        f"职工医保缴费{a.employee_contribution_months}个月（{a.deemed_years}年"
        f"{a.deemed_months}个月），转入地认可为职工医保视同缴费年限"
    )
    if a.resident_contribution_months:
        en += (
            f"; {a.resident_contribution_months} resident-scheme months are shown on their "
            "own and are not deemed employee contribution years"
        )
        zh += f"；居民医保缴费{a.resident_contribution_months}个月单独列示，不计入视同缴费年限"
    return "R24", en + " (R24)", zh + "（R24）"


def _explain_interruption(a: ContinuityAssessment) -> tuple[str | None, str, str]:
    gap, short = a.interruption_months, MAX_SHORT_INTERRUPTION_MONTHS
    paid, first = a.last_paid_month, month_of(a.transfer_on)
    en = f"the last paid month at the outgoing region is {paid:%Y-%m}"
    zh = f"转出地最后缴费月份为{_month_zh(paid)}"
    if not a.last_paid_month_reported:
        en += " (not reported: the month the enrolment ended is taken)"
        zh += "（转出地未报最后缴费月份，按参保终止月份计）"
    en += f" and the first month at the incoming region {first:%Y-%m}, "
    zh += f"，转入地参保首月为{_month_zh(first)}，"
    starts_en, starts_zh = a.transfer_on.isoformat(), _date_zh(a.transfer_on)
    if gap == 0:
        return (
            None,
            en + "so there is no interruption and benefits continue",
            zh + "无中断，待遇连续享受",
        )
    rule = next((r for r in ("R25", "R26", "R27") if r in a.rules), None)
    if rule in ("R25", "R26"):
        more_en, more_zh = _explain_short_interruption(a, rule)
        return rule, en + more_en, zh + more_zh
    if rule == "R27":
        more_en, more_zh = _explain_r27(a)
        return "R27", en + more_en, zh + more_zh
    en += (
        f"so contributions were interrupted for {_months_en(gap)} ({short} or less), but this "
        "is neither an employee-scheme interruption (R25) nor a switch of scheme after "
        f"{MIN_CONTINUOUS_MONTHS_FOR_SWITCH} continuous paid months (R26: "
        f"{a.continuous_paid_months}), so benefits start on {starts_en} without retroactive cover"
    )
    zh += (
        f"中断缴费{gap}个月（不超过{short}个月），但既非职工医保中断缴费，也非连续缴费满"
        f"{MIN_CONTINUOUS_MONTHS_FOR_SWITCH}个月后转换险种（连续缴费{a.continuous_paid_months}"
        f"个月），自{starts_zh}起享受待遇，中断期间不追溯"
    )
    return None, en, zh


def _explain_short_interruption(a: ContinuityAssessment, rule: str) -> tuple[str, str]:
    """R25/R26: the interruption of 3 months or less, and whether it may be back-paid."""
    gap, short = a.interruption_months, MAX_SHORT_INTERRUPTION_MONTHS
    if rule == "R25":
        en = (
            f"so contributions were interrupted for {_months_en(gap)} ({short} or less) "
            "in the employee scheme"
        )
        zh = f"职工医保中断缴费{gap}个月（不超过{short}个月）"
    else:
        en = (
            f"so after {a.continuous_paid_months} continuous paid months (at least "
            f"{MIN_CONTINUOUS_MONTHS_FOR_SWITCH}) the person switched from the "
            f"{a.from_scheme} to the {a.to_scheme} scheme with an interruption of "
            f"{_months_en(gap)} ({short} or less)"
        )
        zh = (
            f"连续缴费{a.continuous_paid_months}个月（满{MIN_CONTINUOUS_MONTHS_FOR_SWITCH}"
            f"个月）后由{_SCHEME_ZH[a.from_scheme]}转为{_SCHEME_ZH[a.to_scheme]}，"
            f"中断{gap}个月（不超过{short}个月）"
        )
    month = a.benefits_from_month
    if a.back_payment_allowed and month is not None:
        en += (
            f"; the person may back-pay under the incoming region's rules and, paying on "
            f"{a.paid_on.isoformat()}, has benefits from {month:%Y-%m}, retroactively for "
            f"the interruption ({rule})"
        )
        zh += (
            f"，可按转入地规定补缴，于{_date_zh(a.paid_on)}补缴的，自{_month_zh(month)}"
            f"起享受待遇，中断期间待遇可追溯（{rule}）"
        )
    else:
        starts_en, starts_zh = a.transfer_on.isoformat(), _date_zh(a.transfer_on)
        en += (
            f", but the incoming region does not allow a back-payment, so benefits start "
            f"on {starts_en} without retroactive cover ({rule})"
        )
        zh += f"，但转入地不允许补缴，自{starts_zh}起享受待遇，中断期间不追溯（{rule}）"
    return en, zh


def _explain_r27(a: ContinuityAssessment) -> tuple[str, str]:
    """R27: an interruption of over 3 months, and the waiting period it sets."""
    gap, short = a.interruption_months, MAX_SHORT_INTERRUPTION_MONTHS
    en = f"so contributions were interrupted for {_months_en(gap)} (over {short})"
    zh = f"中断缴费{gap}个月（超过{short}个月）"
    if a.waiting_period_ends_on is not None:
        ends = a.waiting_period_ends_on
        en += (
            f": the incoming region's waiting period of {_months_en(a.waiting_period_months)}"
            f" applies until {ends.isoformat()} and benefits start on "
            f"{a.benefits_from.isoformat()} (R27)"
        )
        zh += (
            f"，按转入地规定设待遇等待期{a.waiting_period_months}个月，至{_date_zh(ends)}止，"
            f"自{_date_zh(a.benefits_from)}起享受待遇（R27）"
        )
    else:
        starts_en, starts_zh = a.transfer_on.isoformat(), _date_zh(a.transfer_on)
        en += (
            f", but the incoming region sets no waiting period: benefits start on {starts_en} (R27)"
        )
        zh += f"，转入地未设待遇等待期，自{starts_zh}起享受待遇（R27）"
    return en, zh


def _sources_text(a: ContinuityAssessment) -> tuple[str, str]:
    """Where base and rate come from, once when one source gives both."""
    named = [
        (label, source)
        for label, source in (
            ("base", a.back_payment_base_source),
            ("rate", a.back_payment_rate_source),
        )
        if source is not None
    ]
    if not named:
        return "", ""
    if len({source for _, source in named}) == 1:
        source = named[0][1]
        return f" (source: {source.label_en()})", f"（依据：{source.label_zh()}）"
    labels_zh = {"base": "基数", "rate": "费率"}
    en = "; ".join(f"{label}: {source.label_en()}" for label, source in named)
    zh = "；".join(f"{labels_zh[label]}依据{source.label_zh()}" for label, source in named)
    return f" (sources: {en})", f"（{zh}）"


def _explain_r28(a: ContinuityAssessment) -> tuple[str, str, str]:
    months = a.back_payment_months
    n = len(months)
    if n > 1:
        span_en = f"{months[0]:%Y-%m} to {months[-1]:%Y-%m}"
        span_zh = f"{_month_zh(months[0])}至{_month_zh(months[-1])}"
    else:
        span_en = "-" if not n else f"{months[0]:%Y-%m}"
        span_zh = "" if not n else _month_zh(months[0])
    if a.contribution_due_day is None:
        due_en, due_zh = "the month's last day, by default", "默认为当月最后一日"
    else:
        due = a.contribution_due_day
        due_en, due_zh = f"day {due} of the month", f"当月{due}日"
    per_10000 = a.late_fee_per_day_per_10000 or 0
    paid_en, paid_zh = a.paid_on.isoformat(), _date_zh(a.paid_on)
    base, rate = a.back_payment_base_fen, a.back_payment_rate_per_mille
    base_en = "not set" if base is None else f"{format_fen(base)} yuan"
    base_zh = "未设定" if base is None else f"{format_fen(base)}元"
    rate_en = "not set" if rate is None else _rate_percent(rate)
    rate_zh = "未设定" if rate is None else _rate_percent(rate)
    source_en, source_zh = _sources_text(a)
    en = (
        f"back-paying {_months_en(n)} ({span_en}): the incoming region's monthly base "
        f"{base_en}, rate {rate_en}{source_en}"
    )
    zh = f"补缴{n}个月（{span_zh}）：转入地缴费基数{base_zh}，费率{rate_zh}{source_zh}"
    if per_10000:
        fee_en = (
            f"a late fee of {_decimal(per_10000, 2)}% a day on each month's arrears from its "
            f"due date ({due_en})"
        )
        fee_zh = f"各月欠费自缴费截止日（{due_zh}）次日起按{_late_fee_zh(per_10000)}计收滞纳金"
    else:
        fee_en, fee_zh = "no late fee (the region's rate is 0)", "转入地不收滞纳金"
    if a.back_payment_estimate_fen is None or a.late_fee_estimate_fen is None:
        en += (
            f"; no amount is estimated while the region's policy does not set them; {fee_en} (R28)"
        )
        zh += f"；转入地政策未设定，暂不预计补缴金额和滞纳金；{fee_zh}（R28）"
        return "R28", en, zh
    amount, fee = format_fen(a.back_payment_estimate_fen), format_fen(a.late_fee_estimate_fen)
    days = sum(a.late_fee_days)
    en += (
        f"; months x base x rate is estimated at {amount} yuan; paid on {paid_en}, {fee_en}, "
        f"{days} days in all, is estimated at {fee} yuan (each total rounded half up to the "
        "fen) (R28)"
    )
    zh += (
        f"；按月数乘基数乘费率预计{amount}元；于{paid_zh}补缴的，{fee_zh}，合计{days}天，"
        f"预计{fee}元（合计金额按分四舍五入）（R28）"
    )
    return "R28", en, zh


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
    ``Decision``; a deadline computed without calendar data says so."""
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
        years_zh = "、".join(str(y) for y in deadline.fallback_years)
        en += (
            f", counted Monday-Friday for {years} (less the fixed-date public holidays) "
            "until the official calendar is loaded"
        )
        zh += f"，{years_zh}年官方日历尚未发布，暂按周一至周五（扣除固定日期的法定节假日）计算"
    return Decision(
        rule=rule,
        policy_version=policy_version,
        outcome=f"due {due}",
        explanation_en=en + ".",
        explanation_zh=zh + "。",
    )


def calendar_loaded_decision(
    *, rule: str, years: Mapping[int, str], policy_version: str
) -> Decision:
    """An open case found the official calendar of ``years`` (year -> version) loaded
    since it started, before computing a ``rule`` deadline: deadlines from now on follow
    it; those already set stay as they were computed."""
    listed = sorted(years)
    years_en = ", ".join(f"{year} (version {years[year]})" for year in listed)
    years_zh = "、".join(str(year) for year in listed)
    return Decision(
        rule=rule,
        policy_version=policy_version,
        outcome="official calendar loaded: " + ", ".join(str(year) for year in listed),
        explanation_en=(
            f"The official working-day calendar for {years_en} has been loaded: deadlines "
            f"computed from now on follow it; deadlines already set stay as they are ({rule})."
        ),
        explanation_zh=(
            f"{years_zh}年官方工作日日历已载入：此后计算的期限按该日历计算，"
            f"此前已确定的期限保持不变（{rule}）。"
        ),
    )


def case_deadline_decisions(
    deadlines: CaseDeadlines, limits: CaseLimits, policy_version: str
) -> tuple[Decision, Decision]:
    """R12 transfer-out and R14 whole-case deadlines fixed at acceptance."""
    return (
        deadline_decision(
            rule="R12",
            start=deadlines.accepted_on,
            limit_days=limits.transfer_out_days,
            deadline=deadlines.transfer_out_due,
            policy_version=policy_version,
        ),
        deadline_decision(
            rule="R14",
            start=deadlines.accepted_on,
            limit_days=limits.total_days,
            deadline=deadlines.total_due,
            policy_version=policy_version,
        ),
    )


def continuity_decisions(assessment: ContinuityAssessment) -> tuple[Decision, ...]:
    """One ``Decision`` per continuity rule applied (R24, then R25/R26/R27, then R28)."""
    a = assessment
    r24 = f"deemed {a.deemed_years} years {a.deemed_months} months"
    if a.resident_contribution_months:
        r24 += f"; resident-scheme months {a.resident_contribution_months}, not deemed"
    if a.back_payment_allowed:
        r25 = f"back-payment allowed; benefits from {_month_label(a)}, retroactive"
    else:
        r25 = f"back-payment not allowed by the region; benefits from {a.benefits_from}"
    if a.back_payment_estimate_fen is None or a.late_fee_estimate_fen is None:
        base = "not set" if a.back_payment_base_fen is None else "set"
        rate = "not set" if a.back_payment_rate_per_mille is None else "set"
        r28 = f"back-payment {_months_en(len(a.back_payment_months))}; base {base}, rate {rate}"
    else:
        r28 = (
            f"back-payment {_months_en(len(a.back_payment_months))}: "
            f"{format_fen(a.back_payment_estimate_fen)} yuan, "
            f"late fee {format_fen(a.late_fee_estimate_fen)} yuan"
        )
    outcomes = {
        "R24": r24,
        "R25": r25,
        "R26": r25,
        "R27": f"waiting period {a.waiting_period_months} months"
        + ("" if a.waiting_period_ends_on is None else f" until {a.waiting_period_ends_on}"),
        "R28": r28,
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
