"""Operator command: load a newly published year of the official working-day calendar.

    python -m services.common.calendar_admin load FILE [--calendar-dir DIR]
    python -m services.common.calendar_admin show YEAR [--calendar-dir DIR]

``load`` validates the file (named <year>.json; every date of that year, no date both a
holiday and a make-up working day, holidays on weekdays, make-up days on weekends) and
installs it into the calendar directory the services read. Running services pick it up
for every case that starts afterwards, without a redeploy; cases that already counted a
deadline Monday-Friday keep it and carry the warning ``calendar-fallback-<year>``
(``GET /v1/cases?warning=calendar-fallback-<year>`` lists them for a clerk).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from domain.calendar import CalendarDataError, build_calendar, load_year_calendar
from services.common.config import Settings


def load(source: Path, calendar_dir: Path) -> str:
    year_calendar = load_year_calendar(source)  # raises CalendarDataError with the reason
    calendar_dir.mkdir(parents=True, exist_ok=True)
    target = calendar_dir / f"{year_calendar.year}.json"
    # Write beside the target and rename: a service never reads half a file.
    with tempfile.NamedTemporaryFile("wb", dir=calendar_dir, delete=False, suffix=".tmp") as tmp:
        tmp.write(source.read_bytes())
    os.replace(tmp.name, target)
    return (
        f"installed {target} ({year_calendar.source}, version {year_calendar.version}): "
        f"{len(year_calendar.holidays)} holidays, {len(year_calendar.makeup_workdays)} "
        f"make-up working days"
    )


def show(year: int, calendar_dir: Path) -> str:
    calendar = build_calendar([year], calendar_dir)
    if not calendar.covers(year):
        return f"{year}: no official data; deadlines in {year} are counted Monday-Friday"
    data = calendar.year(year)
    assert data is not None
    return (
        f"{year}: {data.source} version {data.version}; holidays "
        f"{', '.join(d.isoformat() for d in sorted(data.holidays))}; make-up working days "
        f"{', '.join(d.isoformat() for d in sorted(data.makeup_workdays))}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.common.calendar_admin",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    load_cmd = sub.add_parser("load", help="validate and install <year>.json")
    load_cmd.add_argument("file", type=Path)
    show_cmd = sub.add_parser("show", help="what the services will use for a year")
    show_cmd.add_argument("year", type=int)
    for cmd in (load_cmd, show_cmd):
        cmd.add_argument(
            "--calendar-dir",
            type=Path,
            default=None,
            help="default: MEDTRANSFER_CALENDAR_DIR or data/calendar",
        )
    args = parser.parse_args(argv)
    calendar_dir = args.calendar_dir or Settings().calendar_dir
    try:
        if args.command == "load":
            if not args.file.exists():
                print(f"error: {args.file} does not exist", file=sys.stderr)
                return 2
            print(load(args.file, calendar_dir))
        else:
            print(show(args.year, calendar_dir))
    except CalendarDataError as exc:
        print(f"error: {exc}; nothing was installed", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
