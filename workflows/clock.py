"""Deterministic time helpers for workflow code: working-day limits become instants.

A limit of N working days ends at the end of the Nth working day (Civil Code art. 201),
in China Standard Time, whatever the server's zone.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

CHINA_TZ = timezone(timedelta(hours=8), "CST")
REMINDER_HOUR = 9


def china_date(instant: datetime) -> date:
    return instant.astimezone(CHINA_TZ).date()


def end_of_day(day: date) -> datetime:
    """The instant a limit that ends on ``day`` runs out."""
    return datetime.combine(day + timedelta(days=1), time(0), CHINA_TZ)


def morning_of(day: date) -> datetime:
    """When a reminder for ``day`` goes out: 09:00 China time."""
    return datetime.combine(day, time(REMINDER_HOUR), CHINA_TZ)


def seconds_until(instant: datetime, now: datetime) -> float:
    """Seconds from ``now`` to ``instant``; never below zero."""
    return max(0.0, (instant - now).total_seconds())
