"""Time limits of the handshake (R12-R14) and the deadlines computed from them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final

from domain.calendar import Deadline, WorkingDayCalendar

NATIONAL_TRANSFER_OUT_DAYS: Final = 10  # R12
NATIONAL_TRANSFER_IN_DAYS: Final = 5  # R13
NATIONAL_TOTAL_DAYS: Final = 15  # R14


class PolicyError(ValueError):
    """A regional setting breaks a national rule."""


@dataclass(frozen=True)
class CaseLimits:
    """A region's limits, in working days. Regions may be faster than the national
    maxima, never slower (R14)."""

    transfer_out_days: int = NATIONAL_TRANSFER_OUT_DAYS
    transfer_in_days: int = NATIONAL_TRANSFER_IN_DAYS
    reminder_before_days: int = 2
    soft_refusal_window_days: int = 5
    not_connected_escalation_days: int = 10

    @property
    def total_days(self) -> int:
        return self.transfer_out_days + self.transfer_in_days

    def validate(self) -> None:
        """R12/R13/R14: raise ``PolicyError`` if a limit is below 1 or above the maximum."""
        for name in (
            "transfer_out_days",
            "transfer_in_days",
            "reminder_before_days",
            "soft_refusal_window_days",
            "not_connected_escalation_days",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise PolicyError(f"{name} must be an integer number of working days")
            if value < 1:
                raise PolicyError(f"{name} must be at least 1 working day, got {value}")
        # R12
        if self.transfer_out_days > NATIONAL_TRANSFER_OUT_DAYS:
            raise PolicyError(
                f"transfer_out_days {self.transfer_out_days} exceeds the national maximum "
                f"of {NATIONAL_TRANSFER_OUT_DAYS} working days (R12)"
            )
        # R13
        if self.transfer_in_days > NATIONAL_TRANSFER_IN_DAYS:
            raise PolicyError(
                f"transfer_in_days {self.transfer_in_days} exceeds the national maximum "
                f"of {NATIONAL_TRANSFER_IN_DAYS} working days (R13)"
            )
        # R14: regions may be faster, never slower.
        if self.total_days > NATIONAL_TOTAL_DAYS:
            raise PolicyError(
                f"total of {self.total_days} working days exceeds the national maximum "
                f"of {NATIONAL_TOTAL_DAYS} (R14)"
            )


@dataclass(frozen=True)
class CaseDeadlines:
    """Deadlines fixed when the incoming agency accepts the application."""

    accepted_on: date
    transfer_out_due: Deadline
    reminder_on: date
    total_due: Deadline


def compute_transfer_out_deadlines(
    accepted_on: date, limits: CaseLimits, calendar: WorkingDayCalendar
) -> CaseDeadlines:
    """R12 transfer-out due date, the reminder before it, and the R14 total due date."""
    limits.validate()
    # R12
    transfer_out_due = calendar.add_working_days(accepted_on, limits.transfer_out_days)
    # The reminder is a working day; with a very short limit it cannot precede the first
    # working day after acceptance, so it may coincide with the due date.
    first_working_day = calendar.add_working_days(accepted_on, 1).due
    reminder_on = max(
        calendar.subtract_working_days(transfer_out_due.due, limits.reminder_before_days),
        first_working_day,
    )
    # R14
    total_due = calendar.add_working_days(accepted_on, limits.total_days)
    return CaseDeadlines(
        accepted_on=accepted_on,
        transfer_out_due=transfer_out_due,
        reminder_on=reminder_on,
        total_due=total_due,
    )


def compute_transfer_in_deadline(
    sheet_received_on: date, limits: CaseLimits, calendar: WorkingDayCalendar
) -> Deadline:
    """R13: transfer-in is due N working days after the information sheet arrived."""
    # R13
    limits.validate()
    return calendar.add_working_days(sheet_received_on, limits.transfer_in_days)


def compute_soft_refusal_deadline(
    refused_on: date, limits: CaseLimits, calendar: WorkingDayCalendar
) -> Deadline:
    """Last day on which a soft refusal (R5-R8) can be corrected on the same case."""
    limits.validate()
    return calendar.add_working_days(refused_on, limits.soft_refusal_window_days)


def compute_not_connected_escalation(
    waiting_since: date, limits: CaseLimits, calendar: WorkingDayCalendar
) -> Deadline:
    """R23: a case waiting for a region to go live is escalated to a clerk on this day."""
    # R23
    limits.validate()
    return calendar.add_working_days(waiting_since, limits.not_connected_escalation_days)
