from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import chinese_calendar
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.calendar import (
    CalendarDataError,
    Deadline,
    WorkingDayCalendar,
    YearCalendar,
    build_calendar,
    load_year_calendar,
    package_year_calendar,
    statutory_fixed_holidays,
)
from domain.continuity import calendar_loaded_decision, deadline_decision
from domain.limits import CaseLimits, compute_transfer_out_deadlines

pytestmark = pytest.mark.unit

REPO_CALENDAR_DIR = Path(__file__).resolve().parents[2] / "data" / "calendar"

D = date.fromisoformat


def year_file(year: int = 2027, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    # Deliberately not an official calendar: a minimal structurally valid year.
    data: dict[str, Any] = {
        "year": year,
        "version": "test-1",
        "source": "unit test fixture, not an official calendar",
        "holidays": [f"{year}-01-01"] if date(year, 1, 1).weekday() < 5 else [],
        "makeup_workdays": [],
    }
    data.update(overrides or {})
    return data


def write(dir_: Path, name: str, data: object) -> Path:
    path = dir_ / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


class TestCivilCodeCounting:
    def test_r13_spring_festival_2026_example(self, calendar: WorkingDayCalendar) -> None:
        # The rules document's example: Sat 14 Feb is a make-up working day, 15-23 Feb off.
        assert calendar.add_working_days(D("2026-02-13"), 5) == Deadline(D("2026-02-27"), ())

    def test_spring_festival_2026_calendar_facts(self, calendar: WorkingDayCalendar) -> None:
        assert calendar.is_working_day(D("2026-02-14"))
        assert calendar.is_working_day(D("2026-02-28"))
        for day in range(15, 24):
            assert not calendar.is_working_day(date(2026, 2, day))

    @pytest.mark.parametrize(
        ("start", "n", "due"),
        [
            ("2026-02-13", 10, "2026-03-05"),  # R12 from the same acceptance
            ("2026-02-13", 15, "2026-03-12"),  # R14
            ("2026-09-30", 5, "2026-10-13"),
            ("2026-09-30", 10, "2026-10-20"),
            ("2026-09-30", 15, "2026-10-27"),
            ("2026-09-24", 5, "2026-10-09"),  # Mid-Autumn 25 Sep, then National Day
            ("2026-09-24", 10, "2026-10-15"),
            ("2026-09-18", 5, "2026-09-24"),  # Sun 20 Sep is a make-up working day
            ("2026-10-01", 1, "2026-10-08"),  # accepted during the holiday
            ("2026-10-09", 1, "2026-10-10"),  # Sat 10 Oct is a make-up working day
        ],
    )
    def test_r12_r14_worked_examples(
        self, calendar: WorkingDayCalendar, start: str, n: int, due: str
    ) -> None:
        assert calendar.add_working_days(D(start), n) == Deadline(D(due), ())

    def test_national_day_2026_matches_chinesecalendar(self, calendar: WorkingDayCalendar) -> None:
        for day in range(1, 8):
            assert not calendar.is_working_day(date(2026, 10, day))
        assert chinese_calendar.is_workday(D("2026-09-20"))
        assert chinese_calendar.is_workday(D("2026-10-10"))
        assert calendar.is_working_day(D("2026-09-20"))
        assert calendar.is_working_day(D("2026-10-10"))
        assert not calendar.is_working_day(D("2026-10-11"))

    def test_start_day_never_counts(self, calendar: WorkingDayCalendar) -> None:
        # Monday 2026-03-02 is a working day; 1 working day later is Tuesday.
        assert calendar.add_working_days(D("2026-03-02"), 1).due == D("2026-03-03")

    def test_zero_days_is_start(self, calendar: WorkingDayCalendar) -> None:
        assert calendar.add_working_days(D("2026-02-15"), 0) == Deadline(D("2026-02-15"), ())

    def test_negative_rejected(self, calendar: WorkingDayCalendar) -> None:
        with pytest.raises(ValueError, match="non-negative"):
            calendar.add_working_days(D("2026-02-13"), -1)

    def test_datetime_rejected(self, calendar: WorkingDayCalendar) -> None:
        with pytest.raises(TypeError):
            calendar.add_working_days(datetime(2026, 2, 13, 9, 0), 5)
        with pytest.raises(TypeError):
            calendar.is_working_day(datetime(2026, 2, 14))


class TestFallback:
    def test_package_has_no_2027(self) -> None:
        assert package_year_calendar(2027) is None
        assert package_year_calendar(2026) is not None

    def test_uncovered_year_is_monday_to_friday_minus_fixed_date_holidays(
        self, calendar: WorkingDayCalendar
    ) -> None:
        assert not calendar.covers(2027)
        assert not calendar.is_working_day(D("2027-01-01"))  # Friday, New Year's Day
        assert not calendar.is_working_day(D("2027-01-02"))
        assert calendar.is_working_day(D("2027-01-04"))
        assert not calendar.is_working_day(D("2027-10-01"))  # Friday, National Day
        assert calendar.is_working_day(D("2027-10-04"))  # its notice may say otherwise
        # Lunar holidays need the year's notice: Monday 8 Feb 2027 (Spring Festival) counts.
        assert calendar.is_working_day(D("2027-02-08"))

    def test_count_inside_covered_year_is_official(self, calendar: WorkingDayCalendar) -> None:
        assert calendar.add_working_days(D("2026-12-24"), 5) == Deadline(D("2026-12-31"), ())

    def test_r12_count_into_uncovered_year_skips_new_years_day_and_is_flagged(
        self, calendar: WorkingDayCalendar
    ) -> None:
        deadline = calendar.add_working_days(D("2026-12-24"), 10)
        assert deadline == Deadline(D("2027-01-08"), (2027,))
        assert not deadline.official

    def test_empty_calendar_flags_every_year_crossed(self) -> None:
        deadline = WorkingDayCalendar({}).add_working_days(D("2025-12-30"), 3)
        assert deadline == Deadline(D("2026-01-05"), (2025, 2026))  # 1 Jan 2026 is off


class TestStatutoryFixedHolidays:
    """全国年节及纪念日放假办法 (revised 2024, in force 2025): the holidays on fixed dates."""

    def test_2025_revision(self) -> None:
        # Spring Festival, Qingming, Dragon Boat and Mid-Autumn are lunar: not guessed.
        fixed = ((1, 1), (5, 1), (5, 2), (10, 1), (10, 2), (10, 3))
        for year in (2025, 2027, 2040):
            assert statutory_fixed_holidays(year) == {date(year, m, d) for m, d in fixed}

    def test_earlier_revisions(self) -> None:
        assert D("2024-05-02") not in statutory_fixed_holidays(2024)  # Labour Day one day
        assert D("2024-05-01") in statutory_fixed_holidays(2024)
        assert D("2007-05-03") in statutory_fixed_holidays(2007)  # 1999: 1-3 May

    @pytest.mark.parametrize("year", range(2004, 2027))
    def test_official_data_agrees_with_the_regulation(self, year: int) -> None:
        official = package_year_calendar(year)
        assert official is not None
        calendar = WorkingDayCalendar({year: official})
        for day in statutory_fixed_holidays(year):
            assert not calendar.is_working_day(day), day

    @pytest.mark.parametrize(
        ("start", "days", "due"),
        [
            ("2026-12-28", 5, "2027-01-05"),  # R13: 29-31 Dec, (1 Jan), 4-5 Jan
            ("2026-12-31", 1, "2027-01-04"),
            ("2027-09-30", 1, "2027-10-04"),  # National Day, Friday 1 Oct
            ("2027-04-29", 3, "2027-05-04"),  # Labour Day falls on the weekend in 2027
        ],
    )
    def test_r13_fallback_deadlines_skip_fixed_date_holidays(
        self, calendar: WorkingDayCalendar, start: str, days: int, due: str
    ) -> None:
        assert calendar.add_working_days(D(start), days) == Deadline(D(due), (2027,))


@pytest.mark.parametrize(
    ("accepted_on", "transfer_out_due", "total_due"),
    [
        ("2026-12-18", "2027-01-04", "2027-01-11"),
        ("2026-12-21", "2027-01-05", "2027-01-12"),
        ("2026-12-24", "2027-01-08", "2027-01-15"),
        ("2026-12-31", "2027-01-15", "2027-01-22"),
    ],
)
def test_r12_r14_deadlines_of_cases_accepted_late_december_2026(
    accepted_on: str, transfer_out_due: str, total_due: str
) -> None:
    # Today's data: the package's 2026, nothing for 2027 (every new case's deadlines).
    calendar = build_calendar([2026, 2027])
    plan = compute_transfer_out_deadlines(D(accepted_on), CaseLimits(), calendar)
    assert plan.transfer_out_due == Deadline(D(transfer_out_due), (2027,))  # R12
    assert plan.total_due == Deadline(D(total_due), (2027,))  # R14
    assert D("2027-01-01") not in {plan.transfer_out_due.due, plan.total_due.due}
    assert calendar.working_days_between(D(accepted_on), D(total_due)) == 15


class TestWorkingDaysBetween:
    def test_example(self, calendar: WorkingDayCalendar) -> None:
        assert calendar.working_days_between(D("2026-02-13"), D("2026-02-27")) == 5
        assert calendar.working_days_between(D("2026-02-13"), D("2026-02-23")) == 1

    def test_not_after_start_is_zero(self, calendar: WorkingDayCalendar) -> None:
        assert calendar.working_days_between(D("2026-02-13"), D("2026-02-13")) == 0
        assert calendar.working_days_between(D("2026-02-13"), D("2026-01-01")) == 0

    def test_subtract(self, calendar: WorkingDayCalendar) -> None:
        assert calendar.subtract_working_days(D("2026-02-27"), 2) == D("2026-02-25")
        assert calendar.subtract_working_days(D("2026-02-24"), 1) == D("2026-02-14")
        assert calendar.subtract_working_days(D("2026-02-24"), 0) == D("2026-02-24")


dates_2004_2028 = st.dates(min_value=date(2004, 1, 1), max_value=date(2028, 6, 30))


@given(start=dates_2004_2028, n=st.integers(min_value=0, max_value=40))
def test_r12_add_working_days_lands_on_nth_working_day(
    calendar: WorkingDayCalendar, start: date, n: int
) -> None:
    deadline = calendar.add_working_days(start, n)
    assert calendar.working_days_between(start, deadline.due) == n
    if n >= 1:
        assert calendar.is_working_day(deadline.due)
        assert calendar.working_days_between(start, deadline.due - timedelta(days=1)) == n - 1
    crossed = {(start + timedelta(days=i)).year for i in range(1, (deadline.due - start).days + 1)}
    assert deadline.fallback_years == tuple(sorted(y for y in crossed if not calendar.covers(y)))


@given(start=dates_2004_2028, n=st.integers(min_value=0, max_value=40))
def test_subtract_inverts_add(calendar: WorkingDayCalendar, start: date, n: int) -> None:
    due = calendar.add_working_days(start, n).due
    if n >= 1:
        back = calendar.subtract_working_days(due, n)
        assert back <= start
        assert calendar.working_days_between(back, start) <= 1


@given(st.dates(min_value=date(2004, 1, 1), max_value=date(2026, 12, 31)))
def test_agrees_with_chinesecalendar_for_covered_years(
    calendar: WorkingDayCalendar, day: date
) -> None:
    assert calendar.is_working_day(day) == chinese_calendar.is_workday(day)


class TestJson:
    def test_round_trip_plain_json(self, calendar: WorkingDayCalendar) -> None:
        data = json.loads(json.dumps(calendar.to_json()))
        restored = WorkingDayCalendar.from_json(data)
        assert restored == calendar
        assert restored.add_working_days(D("2026-02-13"), 5) == Deadline(D("2026-02-27"), ())
        assert restored.versions() == calendar.versions()

    def test_dates_are_iso_strings(self, calendar: WorkingDayCalendar) -> None:
        year = calendar.to_json()["years"][-1]
        assert year["year"] == 2026
        assert "2026-02-16" in year["holidays"]
        assert "2026-02-14" in year["makeup_workdays"]

    def test_deadline_round_trip(self) -> None:
        deadline = Deadline(D("2027-01-07"), (2027,))
        assert Deadline.from_json(json.loads(json.dumps(deadline.to_json()))) == deadline

    def test_year_twice_rejected(self, calendar: WorkingDayCalendar) -> None:
        data = calendar.to_json()
        data["years"].append(data["years"][0])
        with pytest.raises(CalendarDataError, match="twice"):
            WorkingDayCalendar.from_json(data)


class TestBuildCalendar:
    def test_package_years_covered(self) -> None:
        calendar = build_calendar([2025, 2026, 2027])
        assert calendar.covers(2025)
        assert calendar.covers(2026)
        assert not calendar.covers(2027)

    def test_repository_calendar_dir_loads(self) -> None:
        calendar = build_calendar([2026], REPO_CALENDAR_DIR)
        assert calendar.covers(2026)

    def test_data_file_adds_year(self, tmp_path: Path) -> None:
        write(tmp_path, "2027.json", year_file(2027))
        calendar = build_calendar([2026, 2027], tmp_path)
        assert calendar.covers(2027)
        assert not calendar.is_working_day(D("2027-01-01"))
        assert calendar.add_working_days(D("2026-12-24"), 10).fallback_years == ()
        year = calendar.year(2027)
        assert year is not None
        assert year.version == "test-1"

    def test_data_file_overrides_package_year(self, tmp_path: Path) -> None:
        write(tmp_path, "2026.json", year_file(2026, {"holidays": ["2026-03-02"]}))
        calendar = build_calendar([2026], tmp_path)
        assert not calendar.is_working_day(D("2026-03-02"))
        assert calendar.is_working_day(D("2026-02-16"))  # the package's year was replaced
        assert calendar.versions() == {2026: "test-1"}

    @pytest.mark.parametrize(
        ("overrides", "problem"),
        [
            ({"holidays": ["2026-12-31"]}, "outside 2027"),
            ({"holidays": ["2027-01-04"], "makeup_workdays": ["2027-01-04"]}, "both"),
            ({"holidays": ["2027-01-02"]}, "Monday-Friday"),  # a Saturday
            ({"makeup_workdays": ["2027-01-05"]}, "Saturday/Sunday"),  # a Tuesday
            ({"holidays": ["2027-02-30"]}, "not a real date"),
            ({"holidays": ["20270104"]}, "YYYY-MM-DD"),
            ({"holidays": ["2027-01-04", "2027-01-04"]}, "twice"),
            ({"holidays": "2027-01-04"}, "list"),
            ({"year": "2027"}, "integer"),
            ({"year": 2028, "holidays": []}, "file name says 2027"),
            ({"source": ""}, "source is empty"),
            ({"makeup_day": []}, "unknown keys"),
        ],
    )
    def test_invalid_data_file_names_file_and_problem(
        self, tmp_path: Path, overrides: dict[str, Any], problem: str
    ) -> None:
        write(tmp_path, "2027.json", year_file(2027, overrides))
        with pytest.raises(CalendarDataError, match=problem) as info:
            build_calendar([2026], tmp_path)
        assert info.value.origin == "2027.json"
        assert "2027.json" in str(info.value)

    def test_missing_key(self, tmp_path: Path) -> None:
        data = year_file(2027)
        del data["makeup_workdays"]
        path = write(tmp_path, "2027.json", data)
        with pytest.raises(CalendarDataError, match="missing keys: makeup_workdays"):
            load_year_calendar(path)

    def test_not_json(self, tmp_path: Path) -> None:
        write(tmp_path, "2027.json", "{oops")
        with pytest.raises(CalendarDataError, match=r"2027\.json: not valid JSON"):
            build_calendar([], tmp_path)

    def test_misnamed_file_is_an_error(self, tmp_path: Path) -> None:
        write(tmp_path, "2027-draft.json", year_file(2027))
        with pytest.raises(CalendarDataError, match=r"2027-draft\.json"):
            build_calendar([], tmp_path)

    def test_missing_directory(self, tmp_path: Path) -> None:
        with pytest.raises(CalendarDataError, match="not found"):
            build_calendar([], tmp_path / "nope")

    def test_year_calendar_validates_directly(self) -> None:
        with pytest.raises(CalendarDataError, match="Monday-Friday"):
            YearCalendar(2026, frozenset({D("2026-02-14")}), frozenset(), "s", "v")
        with pytest.raises(CalendarDataError, match="dates"):
            YearCalendar(2026, frozenset({datetime(2026, 2, 16)}), frozenset(), "s", "v")

    def test_mapping_key_must_match_year(self) -> None:
        year = YearCalendar(2026, frozenset(), frozenset(), "s", "v")
        with pytest.raises(CalendarDataError):
            WorkingDayCalendar({2025: year})


class TestCalendarLoadedLater:
    """A year loaded while a case is open: CaseFlow.refresh_calendar adds it (with_years)
    and records calendar_loaded_decision."""

    def test_with_years_adds_the_year_and_keeps_the_others(
        self, calendar: WorkingDayCalendar
    ) -> None:
        loaded = YearCalendar.from_json(year_file(2027, {"holidays": ["2027-01-01", "2027-01-04"]}))
        refreshed = calendar.with_years([loaded])
        assert refreshed.covers(2027)
        assert refreshed.year(2026) == calendar.year(2026)
        assert not calendar.covers(2027)  # the case's earlier calendar is unchanged
        assert refreshed.add_working_days(D("2026-12-28"), 5) == Deadline(D("2027-01-06"), ())
        assert calendar.add_working_days(D("2026-12-28"), 5) == Deadline(D("2027-01-05"), (2027,))

    def test_r13_calendar_loaded_decision_is_bilingual(self) -> None:
        decision = calendar_loaded_decision(
            rule="R13", years={2027: "2027-notice"}, policy_version="v"
        )
        assert (decision.rule, decision.policy_version) == ("R13", "v")
        assert decision.outcome == "official calendar loaded: 2027"
        assert decision.explanation_en == (
            "The official working-day calendar for 2027 (version 2027-notice) has been "
            "loaded: deadlines computed from now on follow it; deadlines already set stay "
            "as they are (R13)."
        )
        assert decision.explanation_zh == (
            "2027年官方工作日日历已载入：此后计算的期限按该日历计算，此前已确定的期限保持不变（R13）。"
        )
        # Wholly Chinese: the version label (Latin letters) stays out of the Chinese text.
        assert not any(c.isascii() and c.isalpha() for c in decision.explanation_zh[:-5])

    def test_r13_fallback_deadline_decision_names_the_fixed_date_holidays(self) -> None:
        decision = deadline_decision(
            rule="R13",
            start=D("2026-12-28"),
            limit_days=5,
            deadline=Deadline(D("2027-01-05"), (2027,)),
            policy_version="v",
        )
        assert "less the fixed-date public holidays" in decision.explanation_en
        assert "扣除固定日期的法定节假日" in decision.explanation_zh
