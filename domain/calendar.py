"""Working days (工作日): Monday-Friday minus public holidays plus make-up working days.

The calendar is data, versioned per year. Years come from the ``chinesecalendar``
package (2004 up to the last year it ships) and from operator-maintained files
``data/calendar/<year>.json``, which add a year or override the package's year. Years
without data fall back to Monday-Friday minus the fixed-date statutory holidays, and every
deadline that crosses them says so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_YEAR_FILE = re.compile(r"([0-9]{4})\.json")
_FILE_KEYS_REQUIRED = frozenset({"year", "version", "source", "holidays", "makeup_workdays"})
_FILE_KEYS_OPTIONAL = frozenset({"notice", "comment"})
_ONE_DAY = timedelta(days=1)


class CalendarDataError(ValueError):
    """A calendar year (file or payload) is malformed; names where and what."""

    def __init__(self, origin: str, problem: str) -> None:
        super().__init__(f"{origin}: {problem}")
        self.origin = origin
        self.problem = problem


def _is_plain_date(value: object) -> bool:
    # datetime is a subclass of date but never equal to one: it would silently miss lookups.
    return isinstance(value, date) and not isinstance(value, datetime)


def _is_weekend(day: date) -> bool:
    return day.weekday() >= 5


# The holidays of all citizens on a fixed solar date (month, day) under the national holiday
# regulation (全国年节及纪念日放假办法), by the first year each revision was in force. Its
# lunar holidays (Spring Festival, Qingming, Dragon Boat, Mid-Autumn), the working day given
# for a holiday on a weekend and the make-up working weekends (调休) are fixed only by the
# State Council's notice for the year, so a year without data cannot know them.
_FIXED_DATE_HOLIDAYS: Final = (
    # Revised 2024, in force 2025: New Year's Day; Labour Day 1-2 May; National Day 1-3 Oct.
    (2025, ((1, 1), (5, 1), (5, 2), (10, 1), (10, 2), (10, 3))),
    # Revised 2007, in force 2008: Labour Day one day.
    (2008, ((1, 1), (5, 1), (10, 1), (10, 2), (10, 3))),
    # Revised 1999: Labour Day 1-3 May.
    (2000, ((1, 1), (5, 1), (5, 2), (5, 3), (10, 1), (10, 2), (10, 3))),
)


@lru_cache(maxsize=64)
def statutory_fixed_holidays(year: int) -> frozenset[date]:
    """The fixed-date statutory holidays of ``year`` (weekend days included): the part of
    the official arrangement known before the year's notice is published."""
    for first_year, days in _FIXED_DATE_HOLIDAYS:
        if year >= first_year:
            return frozenset(date(year, month, day) for month, day in days)
    return frozenset()


@dataclass(frozen=True)
class YearCalendar:
    """One year's official arrangement.

    ``holidays``: Monday-Friday days that are off. ``makeup_workdays``: Saturdays and
    Sundays that are working days (调休). ``source`` names the publication, ``version``
    distinguishes revisions of the same year.
    """

    year: int
    holidays: frozenset[date]
    makeup_workdays: frozenset[date]
    source: str
    version: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "holidays", frozenset(self.holidays))
        object.__setattr__(self, "makeup_workdays", frozenset(self.makeup_workdays))
        problems = self.problems()
        if problems:
            raise CalendarDataError(f"calendar {self.year!r}", "; ".join(problems))

    def problems(self) -> list[str]:
        if isinstance(self.year, bool) or not isinstance(self.year, int):
            return ["year must be an integer"]
        if not 1 <= self.year <= 9999:
            return ["year out of range"]
        found: list[str] = []
        for label, days in (("holidays", self.holidays), ("makeup_workdays", self.makeup_workdays)):
            if not all(_is_plain_date(d) for d in days):
                found.append(f"{label} must hold dates")
                return found
            outside = sorted(d for d in days if d.year != self.year)
            if outside:
                found.append(f"{label} outside {self.year}: {_iso_list(outside)}")
        both = sorted(self.holidays & self.makeup_workdays)
        if both:
            found.append(f"in both holidays and makeup_workdays: {_iso_list(both)}")
        weekend_holidays = sorted(d for d in self.holidays if _is_weekend(d))
        if weekend_holidays:
            found.append(f"holidays must be Monday-Friday: {_iso_list(weekend_holidays)}")
        weekday_makeups = sorted(d for d in self.makeup_workdays if not _is_weekend(d))
        if weekday_makeups:
            found.append(f"makeup_workdays must be Saturday/Sunday: {_iso_list(weekday_makeups)}")
        if not isinstance(self.source, str) or not self.source.strip():
            found.append("source is empty")
        if not isinstance(self.version, str) or not self.version.strip():
            found.append("version is empty")
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "year": self.year,
            "version": self.version,
            "source": self.source,
            "holidays": [d.isoformat() for d in sorted(self.holidays)],
            "makeup_workdays": [d.isoformat() for d in sorted(self.makeup_workdays)],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], origin: str = "calendar data") -> YearCalendar:
        """Parse the file/payload format strictly; errors name ``origin``."""
        if not isinstance(data, Mapping):
            raise CalendarDataError(origin, "expected a JSON object")
        missing = sorted(_FILE_KEYS_REQUIRED - data.keys())
        if missing:
            raise CalendarDataError(origin, f"missing keys: {', '.join(missing)}")
        unknown = sorted(set(data.keys()) - _FILE_KEYS_REQUIRED - _FILE_KEYS_OPTIONAL)
        if unknown:
            raise CalendarDataError(origin, f"unknown keys: {', '.join(map(str, unknown))}")
        year = data["year"]
        if isinstance(year, bool) or not isinstance(year, int):
            raise CalendarDataError(origin, "year must be an integer")
        for key in ("version", "source"):
            if not isinstance(data[key], str):
                raise CalendarDataError(origin, f"{key} must be a string")
        holidays = _parse_dates(data["holidays"], "holidays", origin)
        makeups = _parse_dates(data["makeup_workdays"], "makeup_workdays", origin)
        try:
            return cls(year, holidays, makeups, data["source"], data["version"])
        except CalendarDataError as exc:
            raise CalendarDataError(origin, exc.problem) from exc


def _iso_list(days: Iterable[date]) -> str:
    return ", ".join(d.isoformat() for d in days)


def _parse_dates(values: object, label: str, origin: str) -> frozenset[date]:
    if not isinstance(values, list):
        raise CalendarDataError(origin, f"{label} must be a list of ISO dates")
    parsed: set[date] = set()
    for value in values:
        if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
            raise CalendarDataError(origin, f"{label}: {value!r} is not a YYYY-MM-DD date")
        try:
            day = date.fromisoformat(value)
        except ValueError as exc:
            raise CalendarDataError(origin, f"{label}: {value} is not a real date") from exc
        if day in parsed:
            raise CalendarDataError(origin, f"{label}: {value} is listed twice")
        parsed.add(day)
    return frozenset(parsed)


@dataclass(frozen=True)
class Deadline:
    """The last day of a time limit (it ends at the end of ``due``).

    ``fallback_years`` lists years without calendar data that the count crossed and
    computed as Monday-Friday minus the fixed-date statutory holidays; empty means the
    deadline rests fully on official data.
    """

    due: date
    fallback_years: tuple[int, ...] = ()

    @property
    def official(self) -> bool:
        return not self.fallback_years

    def to_json(self) -> dict[str, Any]:
        return {"due": self.due.isoformat(), "fallback_years": list(self.fallback_years)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Deadline:
        return cls(date.fromisoformat(data["due"]), tuple(int(y) for y in data["fallback_years"]))


def _require_plain_date(value: object, name: str) -> None:
    if not _is_plain_date(value):
        raise TypeError(f"{name} must be a datetime.date (not a datetime)")


class WorkingDayCalendar:
    """Working days for the covered years; for every other year Monday-Friday minus the
    fixed-date statutory holidays (``statutory_fixed_holidays``). Immutable."""

    __slots__ = ("_years",)

    def __init__(self, years: Mapping[int, YearCalendar] | None = None) -> None:
        checked: dict[int, YearCalendar] = {}
        for key, year_calendar in (years or {}).items():
            if not isinstance(year_calendar, YearCalendar) or key != year_calendar.year:
                raise CalendarDataError(f"calendar {key!r}", "key and YearCalendar.year differ")
            checked[key] = year_calendar
        self._years: dict[int, YearCalendar] = dict(sorted(checked.items()))

    def covers(self, year: int) -> bool:
        return year in self._years

    def covered_years(self) -> tuple[int, ...]:
        return tuple(self._years)

    def year(self, year: int) -> YearCalendar | None:
        return self._years.get(year)

    def with_years(self, years: Iterable[YearCalendar]) -> WorkingDayCalendar:
        """This calendar with ``years`` added (or replacing the same years)."""
        merged = dict(self._years)
        for year_calendar in years:
            merged[year_calendar.year] = year_calendar
        return WorkingDayCalendar(merged)

    def versions(self) -> dict[int, str]:
        """Version per covered year, to record which data a deadline was computed with."""
        return {year: cal.version for year, cal in self._years.items()}

    def is_working_day(self, d: date) -> bool:
        _require_plain_date(d, "d")
        year_calendar = self._years.get(d.year)
        if year_calendar is None:
            # No data: the regulation's fixed dates are off all the same (New Year's Day
            # 2027 is a Friday); the deadline stays flagged (Deadline.fallback_years).
            return not _is_weekend(d) and d not in statutory_fixed_holidays(d.year)
        if d in year_calendar.makeup_workdays:
            return True
        return not _is_weekend(d) and d not in year_calendar.holidays

    def add_working_days(self, start: date, n: int) -> Deadline:
        """The Nth working day after ``start`` (Civil Code art. 201: the start day does not
        count). Used for the R12/R13/R14 limits."""
        # R12 R13 R14: limits run from the day after the triggering event (art. 201).
        _require_plain_date(start, "start")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError("n must be a non-negative integer")
        day = start
        counted = 0
        fallback: set[int] = set()
        while counted < n:
            day += _ONE_DAY
            if day.year not in self._years:
                fallback.add(day.year)
            if self.is_working_day(day):
                counted += 1
        return Deadline(day, tuple(sorted(fallback)))

    def subtract_working_days(self, end: date, n: int) -> date:
        """The Nth working day before ``end`` (``end`` itself does not count)."""
        _require_plain_date(end, "end")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError("n must be a non-negative integer")
        day = end
        counted = 0
        while counted < n:
            day -= _ONE_DAY
            if self.is_working_day(day):
                counted += 1
        return day

    def working_days_between(self, start: date, end: date) -> int:
        """Working days after ``start`` up to and including ``end``; 0 if ``end <= start``."""
        _require_plain_date(start, "start")
        _require_plain_date(end, "end")
        count = 0
        day = start + _ONE_DAY
        while day <= end:
            if self.is_working_day(day):
                count += 1
            day += _ONE_DAY
        return count

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-compatible data, so a workflow gets the calendar as its input and
        replays deterministically."""
        return {"years": [cal.to_json() for cal in self._years.values()]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkingDayCalendar:
        entries = data.get("years") if isinstance(data, Mapping) else None
        if not isinstance(entries, list):
            raise CalendarDataError("calendar data", 'expected an object with a "years" list')
        years: dict[int, YearCalendar] = {}
        for index, entry in enumerate(entries):
            year_calendar = YearCalendar.from_json(entry, origin=f"calendar data years[{index}]")
            if year_calendar.year in years:
                raise CalendarDataError("calendar data", f"year {year_calendar.year} twice")
            years[year_calendar.year] = year_calendar
        return cls(years)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WorkingDayCalendar):
            return NotImplemented
        return self._years == other._years

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"WorkingDayCalendar(years={list(self._years)})"


def package_year_calendar(year: int) -> YearCalendar | None:
    """The year as shipped by the ``chinesecalendar`` package, or None if it has no data."""
    import chinese_calendar  # imported here so workflow code using the calendar never loads it

    try:
        chinese_calendar.is_workday(date(year, 1, 1))
    except NotImplementedError:
        return None
    holidays: set[date] = set()
    makeups: set[date] = set()
    day = date(year, 1, 1)
    while day.year == year:
        working = bool(chinese_calendar.is_workday(day))
        if _is_weekend(day) and working:
            makeups.add(day)
        elif not _is_weekend(day) and not working:
            holidays.add(day)
        day += _ONE_DAY
    package_version = str(getattr(chinese_calendar, "__version__", "unknown"))
    return YearCalendar(
        year=year,
        holidays=frozenset(holidays),
        makeup_workdays=frozenset(makeups),
        source="chinesecalendar package (State Council holiday notices)",
        version=f"chinesecalendar-{package_version}",
    )


def load_year_calendar(path: Path) -> YearCalendar:
    """Read and validate ``<year>.json``; ``CalendarDataError`` names the file and problem."""
    path = Path(path)
    name = path.name
    match = _YEAR_FILE.fullmatch(name)
    if match is None:
        raise CalendarDataError(name, "a calendar file is named <year>.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CalendarDataError(name, f"not valid JSON: {exc}") from exc
    year_calendar = YearCalendar.from_json(data, origin=name)
    if year_calendar.year != int(match.group(1)):
        raise CalendarDataError(
            name, f"file name says {match.group(1)}, the year field says {year_calendar.year}"
        )
    return year_calendar


def load_calendar_dir(data_dir: Path) -> dict[int, YearCalendar]:
    """Every ``<year>.json`` in the directory; any other ``*.json`` name is an error, so a
    misnamed file is never silently ignored."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise CalendarDataError(str(data_dir), "calendar directory not found")
    years: dict[int, YearCalendar] = {}
    for path in sorted(data_dir.glob("*.json")):
        year_calendar = load_year_calendar(path)
        years[year_calendar.year] = year_calendar
    return years


def build_calendar(years: Iterable[int], data_dir: Path | None = None) -> WorkingDayCalendar:
    """Calendar for ``years`` from the ``chinesecalendar`` package (years it does not know
    stay uncovered), then every ``<year>.json`` in ``data_dir`` added or overriding."""
    collected: dict[int, YearCalendar] = {}
    for year in years:
        from_package = package_year_calendar(year)
        if from_package is not None:
            collected[year] = from_package
    if data_dir is not None:
        collected.update(load_calendar_dir(data_dir))
    return WorkingDayCalendar(collected)
