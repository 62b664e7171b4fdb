"""Operator command: load a newly published year of the official working-day calendar.

    python -m services.common.calendar_admin load FILE [--calendar-dir DIR]
    python -m services.common.calendar_admin show YEAR [--calendar-dir DIR]
    python -m services.common.calendar_admin configmap [--calendar-dir DIR] [--name NAME]

``load`` validates the file (named <year>.json; every date of that year, no date both a
holiday and a make-up working day, holidays on weekdays, make-up days on weekends) and
installs it into the calendar directory the services read (``MEDTRANSFER_CALENDAR_DIR``:
in production a volume or ConfigMap outside the image, deploy/production/README.md,
"Calendar"). Running services pick it up without a redeploy: for every case that starts
afterwards, and for every deadline an open case computes from then on (the case records
a decision saying the year's official calendar was loaded). Deadlines already counted
without the year's data keep their date and the warning ``calendar-fallback-<year>``
(``GET /v1/cases?warning=calendar-fallback-<year>`` lists them for a clerk).

``configmap`` prints the directory's years, validated, as the Kubernetes ConfigMap the
services mount (JSON, for ``kubectl apply -f -``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from domain.calendar import (
    CalendarDataError,
    build_calendar,
    load_calendar_dir,
    load_year_calendar,
)
from services.common.config import Settings

CONFIGMAP_NAME = "medtransfer-calendar"


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
        return (
            f"{year}: no official data; deadlines in {year} are counted Monday-Friday minus "
            "the fixed-date statutory holidays, and flagged"
        )
    data = calendar.year(year)
    assert data is not None
    return (
        f"{year}: {data.source} version {data.version}; holidays "
        f"{', '.join(d.isoformat() for d in sorted(data.holidays))}; make-up working days "
        f"{', '.join(d.isoformat() for d in sorted(data.makeup_workdays))}"
    )


def configmap(calendar_dir: Path, name: str = CONFIGMAP_NAME) -> str:
    """The ConfigMap holding every <year>.json of ``calendar_dir`` as it is on disk, after
    validating each (``CalendarDataError`` names the first bad file)."""
    years = load_calendar_dir(calendar_dir)
    data = {
        f"{year}.json": (calendar_dir / f"{year}.json").read_text(encoding="utf-8")
        for year in sorted(years)
    }
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/part-of": "medtransfer"},
        },
        "data": data,
    }
    return json.dumps(manifest, ensure_ascii=False, indent=2)


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
    map_cmd = sub.add_parser("configmap", help="the calendar directory as a ConfigMap (JSON)")
    map_cmd.add_argument("--name", default=CONFIGMAP_NAME)
    for cmd in (load_cmd, show_cmd, map_cmd):
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
        elif args.command == "configmap":
            print(configmap(calendar_dir, args.name))
        else:
            print(show(args.year, calendar_dir))
    except CalendarDataError as exc:
        print(f"error: {exc}; nothing was installed", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
