"""One case's audit trail as JSON or CSV, for a dispute between the two agencies.

Both carry every stored record exactly as it was hashed (``record_json``) with its
``prev_hash`` and ``hash``, so anyone can recompute the chain without this code:
``hash = sha256_hex(prev_hash + record_json)``, the first ``prev_hash`` being 64 zeros.
Rows are ordered by side, then sequence; conflicting duplicates follow as their own rows.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from services.audit.chain import GENESIS_HASH, ConflictEntry, Problem, TrailEntry

CSV_COLUMNS = (
    "kind",
    "case_id",
    "side",
    "sequence",
    "event",
    "status",
    "occurred_at",
    "rule",
    "prev_hash",
    "hash",
    "received_at",
    "record_json",
)

CHAIN_RULE = (
    f"hash = sha256_hex(prev_hash + record_json); prev_hash of sequence 1 = {GENESIS_HASH}; "
    "one chain per case and side"
)
SIGNATURE_RULE = (
    "each record carries region, prev_hash (sha256 of the RFC 8785 bytes of the emitter's "
    "previous record's content) and the emitter's Ed25519 signature over the RFC 8785 bytes "
    "of the record without signature.value; docs/audit-trust.md"
)


def _ordered(entries: Sequence[TrailEntry]) -> list[TrailEntry]:
    return sorted(entries, key=lambda e: (e.side, e.sequence))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _record(record_json: str) -> dict[str, Any]:
    try:
        parsed = json.loads(record_json)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def trail_json(
    case_id: str,
    entries: Sequence[TrailEntry],
    conflicts: Sequence[ConflictEntry],
    problems: Sequence[Problem],
    exported_at: datetime,
) -> str:
    """The trail as one JSON document: entries, conflicts, each chain's head and the
    verification result at export time."""
    ordered = _ordered(entries)
    heads: dict[str, dict[str, Any]] = {}
    for e in ordered:  # by side, then sequence: the last one of a side is its head
        heads[e.side] = {"sequence": e.sequence, "hash": e.hash}
    document = {
        "case_id": case_id,
        "exported_at": exported_at.isoformat(),
        "chain": CHAIN_RULE,
        "signatures": SIGNATURE_RULE,
        "verified": not problems,
        "problems": [p.to_json() for p in problems],
        "heads": heads,
        "entries": [
            {
                "side": e.side,
                "sequence": e.sequence,
                "prev_hash": e.prev_hash,
                "hash": e.hash,
                "received_at": _iso(e.received_at),
                "record_json": e.record_json,
                "record": _record(e.record_json),
            }
            for e in ordered
        ],
        "conflicts": [
            {
                "side": c.side,
                "sequence": c.sequence,
                "received_at": _iso(c.received_at),
                "record_json": c.record_json,
                "record": _record(c.record_json),
            }
            for c in sorted(conflicts, key=lambda c: (c.side, c.sequence))
        ],
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def trail_csv(
    case_id: str, entries: Sequence[TrailEntry], conflicts: Sequence[ConflictEntry]
) -> str:
    """The trail as CSV, one row per stored record (``kind`` entry) and per conflicting
    duplicate (``kind`` conflict, without hashes: it is not part of the chain)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    rows: list[tuple[str, TrailEntry | ConflictEntry]] = [
        *(("entry", e) for e in _ordered(entries)),
        *(("conflict", c) for c in sorted(conflicts, key=lambda c: (c.side, c.sequence))),
    ]
    for kind, item in rows:
        record = _record(item.record_json)
        writer.writerow(
            {
                "kind": kind,
                "case_id": case_id,
                "side": item.side,
                "sequence": item.sequence,
                "event": record.get("event", ""),
                "status": record.get("status", ""),
                "occurred_at": record.get("occurred_at", ""),
                "rule": record.get("rule") or "",
                "prev_hash": getattr(item, "prev_hash", None) or "",
                "hash": getattr(item, "hash", None) or "",
                "received_at": _iso(item.received_at) or "",
                "record_json": item.record_json,
            }
        )
    return out.getvalue()
