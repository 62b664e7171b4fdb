"""Operator command: add a pooling region to the registry without a code change.

    python -m services.common.regions_admin add --code 620500 --name 天水市 --name-en Tianshui
        [--province 62] [--connected-since 2023-06-01] [--by NAME] [--note TEXT]
        [--overlay FILE] [--registry FILE]
    python -m services.common.regions_admin list [--overlay FILE] [--registry FILE]

``add`` checks the region against the registry in force (the shipped
``data/regions.json`` plus every region added before): six digits, the province prefix
(``--province``, when given, must be the code's first two digits, and the province must
be registered), not already registered, a Chinese and an English name. It then appends
one line to the operator's overlay (``MEDTRANSFER_REGION_OVERLAY_FILE``): the region, who
added it (``--by``, default the login name), when (UTC) and why (``--note``). The overlay
is append-only: it is at once the services' source of the added regions and the journal
of who added what. The services read it at start (services/common/keys.py
``load_registry``), so a running service sees the region after its next restart.

``list`` prints the regions in force, the added ones with who added them and when.
"""

from __future__ import annotations

import argparse
import fcntl
import getpass
import json
import os
import re
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from domain.regions import (
    Region,
    RegionDataError,
    RegionRegistry,
    apply_overlay,
    load_region_registry,
    new_region_problems,
    overlay_entry,
)
from services.common.config import Settings

# Who added a region: a login or staff name, one line, no control characters.
_OPERATOR = re.compile(r"[\w.@-]{1,64}")
NOTE_MAX_CHARS = 200


@dataclass(frozen=True)
class Added:
    """A region of the overlay with its journal entry."""

    region: Region
    at: str
    by: str
    note: str


def journal(overlay: Path) -> list[Added]:
    """The overlay's entries in order (each line already checked by ``apply_overlay``)."""
    if not overlay.exists():
        return []
    entries: list[Added] = []
    for line in overlay.read_text(encoding="utf-8").splitlines():
        if line.strip():
            entry: dict[str, Any] = json.loads(line)
            entries.append(
                Added(
                    region=Region.from_json(entry["region"]),
                    at=entry["at"],
                    by=entry["by"],
                    note=entry.get("note", ""),
                )
            )
    return entries


def add(
    region: Region,
    *,
    by: str,
    note: str,
    overlay: Path,
    registry_file: Path,
    now: datetime | None = None,
) -> str:
    """Check ``region`` against the registry in force and append it to the overlay.

    Raises ``RegionDataError`` with every reason; nothing is written then. The check and
    the append hold the overlay's lock, so two operators adding at once cannot both add
    the same code.
    """
    if not _OPERATOR.fullmatch(by):
        raise RegionDataError("--by names the operator: letters, digits, . @ _ - (at most 64)")
    if len(note) > NOTE_MAX_CHARS or any(ord(c) < 32 for c in note):
        raise RegionDataError(f"--note is one line of at most {NOTE_MAX_CHARS} characters")
    overlay.parent.mkdir(parents=True, exist_ok=True)
    with overlay.open("a+", encoding="utf-8") as file:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX)  # released when the file closes
        file.seek(0)
        text = file.read()
        current = apply_overlay(load_region_registry(registry_file), text, origin=overlay.name)
        problems = new_region_problems(current, region)
        if problems:
            raise RegionDataError("; ".join(problems))
        entry = overlay_entry(region, at=now or datetime.now(UTC), by=by, note=note)
        line = json.dumps(entry, ensure_ascii=False, sort_keys=True)
        # Append mode writes at the end whatever was read; a hand-edited last line without
        # its newline keeps its own line.
        file.write(("\n" if text and not text.endswith("\n") else "") + line + "\n")
        file.flush()
        os.fsync(file.fileno())
    province = current.province(region.province_code)
    province_name = f" {province.name}" if province else ""
    return (
        f"added {region.code} {region.name} ({region.name_en}, province "
        f"{region.province_code}{province_name}) to {overlay} by {by}; the services read it "
        "at their next start"
    )


def listing(registry: RegionRegistry, added: list[Added]) -> str:
    by_code = {entry.region.code: entry for entry in added}
    lines = []
    for region in registry:
        since = region.connected_since.isoformat() if region.connected_since else "not connected"
        entry = by_code.get(region.code)
        source = "shipped" if entry is None else f"added by {entry.by} at {entry.at}"
        lines.append(
            f"{region.code} {region.name} ({region.name_en or '-'}), connected {since}; {source}"
        )
    return "\n".join(lines)


def _region(args: argparse.Namespace) -> Region:
    code = args.code
    province = args.province if args.province is not None else code[:2]
    if province != code[:2]:
        raise RegionDataError(
            f"the province prefix {province} is not the code's first two digits {code[:2]}"
        )
    return Region(
        code=code,
        name=args.name.strip(),
        province_code=province,
        connected_since=args.connected_since,
        public_key=None,
        name_en=args.name_en.strip(),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.common.regions_admin",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_cmd = sub.add_parser("add", help="check a region and append it to the overlay")
    add_cmd.add_argument("--code", required=True, help="six-digit division code (行政区划代码)")
    add_cmd.add_argument("--name", required=True, help="Chinese name, e.g. 天水市")
    add_cmd.add_argument("--name-en", required=True, help="English name, e.g. Tianshui")
    add_cmd.add_argument("--province", default=None, help="two-digit province (check only)")
    add_cmd.add_argument(
        "--connected-since",
        type=date.fromisoformat,
        default=None,
        help="go-live day on the national platform (R23); unset = not connected",
    )
    add_cmd.add_argument("--by", default=None, help="who adds it (default: the login name)")
    add_cmd.add_argument("--note", default="", help="why, e.g. the notice that created it")
    list_cmd = sub.add_parser("list", help="the regions in force, and who added which")
    for cmd in (add_cmd, list_cmd):
        cmd.add_argument(
            "--overlay",
            type=Path,
            default=None,
            help="default: MEDTRANSFER_REGION_OVERLAY_FILE or var/local/regions/overlay.jsonl",
        )
        cmd.add_argument(
            "--registry",
            type=Path,
            default=None,
            help="default: MEDTRANSFER_REGION_REGISTRY_FILE or data/regions.json",
        )
    args = parser.parse_args(argv)
    settings = Settings()
    overlay: Path = args.overlay or settings.region_overlay_file
    registry_file: Path = args.registry or settings.region_registry_file
    try:
        if args.command == "add":
            by = args.by if args.by is not None else getpass.getuser()
            print(
                add(
                    _region(args),
                    by=by,
                    note=args.note,
                    overlay=overlay,
                    registry_file=registry_file,
                )
            )
        else:
            registry = load_region_registry(registry_file, overlay)
            print(listing(registry, journal(overlay)))
    except RegionDataError as exc:
        suffix = "; nothing was added" if args.command == "add" else ""
        print(f"error: {exc}{suffix}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
