"""The record of the policy versions a deployment loaded (item 13: a version in force is
never edited).

Every load of the policy table is checked against the versions loaded before
(``domain.policy.check_in_force_unchanged``): a version already in force whose line now
differs, or is gone, refuses the table, naming the file, the line and the rule. The record
is a JSON file in the deployment's data directory, written atomically after each accepted
load; it is also kept in memory, so a process whose data directory cannot be written still
refuses an edit made while it runs (like the key registry's high-water mark).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from domain.policy import LoadedVersion, PolicyDataError, PolicyTable, check_in_force_unchanged

log = logging.getLogger("medtransfer.policy")

RECORD_FILE_NAME: Final = "policy-versions-loaded.json"
_FORMAT: Final = 1
_CHINA: Final = ZoneInfo("Asia/Shanghai")


def china_today() -> date:
    return datetime.now(_CHINA).date()


def read_record(path: Path) -> dict[str, LoadedVersion]:
    """The versions recorded in ``path`` (none when the file does not exist yet). A file
    that cannot be read or parsed raises PolicyDataError: without it, an edit of a version
    in force could not be told from the original."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"expected an object with format {_FORMAT}")
        versions = data.get("versions")
        if not isinstance(versions, dict):
            raise ValueError("versions must be an object")
        return {str(name): LoadedVersion.from_json(entry) for name, entry in versions.items()}
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise PolicyDataError(
            str(path), None, f"cannot read the record of loaded policy versions: {exc}"
        ) from exc


def write_record(path: Path, versions: Mapping[str, LoadedVersion]) -> None:
    """Write the record atomically (a reader never sees half a file)."""
    document = {
        "format": _FORMAT,
        "versions": {name: versions[name].to_json() for name in sorted(versions)},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class PolicyVersionRecord:
    """The versions loaded so far, in memory and in ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._loaded = read_record(self.path)

    def accept(self, table: PolicyTable, today: date | None = None) -> PolicyTable:
        """``table`` when no version in force changed since it was loaded (raises
        PolicyDataError otherwise); the record then holds ``table``'s versions."""
        on = china_today() if today is None else today
        # A file written by another process (the other side, the API beside the worker)
        # since this one read it counts too.
        recorded = {**self._loaded, **read_record(self.path)}
        kept = check_in_force_unchanged(table, recorded, on, record=str(self.path))
        self._loaded = kept
        if kept != recorded:
            try:
                write_record(self.path, kept)
            except OSError as exc:
                # Still refused in this process; only a restart could accept an edit.
                log.error("record of loaded policy versions not saved: %s", exc)
        return table
