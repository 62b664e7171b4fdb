"""The audit trail's hash chain, pure: canonical form of a record, the link hash, and the
verification of a stored trail.

One chain per case and side: ``hash_n = sha256_hex(prev_hash_n + record_json_n)`` with
``prev_hash_1 = GENESIS_HASH`` and ``prev_hash_n = hash_(n-1)``. A stored record changed
after the fact no longer matches its hash (``hash_mismatch``); a record changed together
with its hash no longer matches the next row's ``prev_hash`` (``broken_link``). Only the
newest row of a chain can be rewritten together with its hash unnoticed, which is why an
export carries each chain's head hash: a copy of it held elsewhere pins the whole trail.

That chain is the store's own. With the public-key registry (``keys``) verification also
checks what the emitting agencies vouch for (contracts/audit_trust.py): each record's
signature, its ``prev_hash`` link to the emitter's previous record, one region per chain,
and the chain against the emitters' signed checkpoints, so the store's operator cannot
rewrite, forge, drop or truncate unnoticed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import groupby
from typing import Literal

from pydantic import ValidationError

from contracts.audit_trust import (
    AuditCheckpoint,
    PublicKeys,
    archived_problem,
    checkpoint_problem,
    expected_prev_hash,
)
from contracts.documents import AuditRecord

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of the first record of every chain."""

ProblemKind = Literal[
    "gap",
    "hash_mismatch",
    "broken_link",
    "duplicate_conflict",
    "key_mismatch",
    "unsigned",
    "signature_invalid",
    "region_mismatch",
    "link_mismatch",
    "truncated",
    "checkpoint_mismatch",
    "checkpoint_invalid",
]


def canonical_json(record: AuditRecord) -> str:
    """The exact text that is hashed and stored: sorted keys, no whitespace, UTF-8 (no
    ``\\u`` escapes), ``occurred_at`` in UTC, so the same record always gives the same text."""
    normalised = record.model_copy(update={"occurred_at": record.occurred_at.astimezone(UTC)})
    return json.dumps(
        normalised.model_dump(mode="json"),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


def link_hash(prev_hash: str, record_json: str) -> str:
    """sha256 hex of the previous link's hash followed by the record's canonical JSON."""
    return hashlib.sha256((prev_hash + record_json).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TrailEntry:
    """One stored record of a chain. ``prev_hash``/``hash`` are None while the record
    waits for a predecessor that has not arrived yet (see ``services.audit.store``)."""

    case_id: str
    side: str
    sequence: int
    record_json: str
    prev_hash: str | None
    hash: str | None
    received_at: datetime | None = None


@dataclass(frozen=True)
class ConflictEntry:
    """A record that arrived with the sequence of a stored one but different content."""

    case_id: str
    side: str
    sequence: int
    record_json: str
    received_at: datetime | None = None


@dataclass(frozen=True)
class Problem:
    """One finding of the verification, naming the case, side and sequence it concerns."""

    case_id: str
    side: str
    sequence: int
    kind: ProblemKind
    detail: str = ""

    def __str__(self) -> str:
        text = f"{self.kind}: case {self.case_id} side {self.side} sequence {self.sequence}"
        return f"{text}: {self.detail}" if self.detail else text

    def to_json(self) -> dict[str, str | int]:
        return {
            "case_id": self.case_id,
            "side": self.side,
            "sequence": self.sequence,
            "kind": self.kind,
            "detail": self.detail,
        }


def verify_chain(
    entries: Iterable[TrailEntry],
    conflicts: Iterable[ConflictEntry] = (),
    *,
    keys: PublicKeys | None = None,
    checkpoints: Iterable[AuditCheckpoint] = (),
    now: datetime | None = None,
) -> list[Problem]:
    """Check every (case_id, side) chain in ``entries`` and report what is wrong.

    * ``gap``: sequence n is missing below the highest one received (a trailing loss is
      seen only against a checkpoint: ``truncated``);
    * ``hash_mismatch``: a row's hash is not sha256(prev_hash + record_json), so the stored
      record (or its hash) was altered;
    * ``broken_link``: a row's prev_hash is not the previous row's hash, or a row whose
      predecessors are all present was never linked;
    * ``key_mismatch``: record_json is not a record of the row's case, side and sequence;
    * ``duplicate_conflict``: the same sequence arrived twice with different content;
    * ``link_mismatch``: the record's own ``prev_hash`` (set and signed by its emitter) is
      not the digest of the stored predecessor, or a signed record carries none.

    With ``keys`` (public keys only) also:

    * ``unsigned``: a record without a signature (one stored before records were signed);
    * ``signature_invalid``: the signature does not verify with the registered key of the
      record's region (the record was altered, forged, or its key is revoked);
    * ``region_mismatch``: a record of the chain names another region than the chain's
      first record;
    * against each checkpoint of the chain (its signature verified first, else
      ``checkpoint_invalid``): ``truncated`` when the stored chain ends before the
      checkpoint's last sequence, ``checkpoint_mismatch`` when the stored record at that
      sequence is not the one the checkpoint names.

    Problems come sorted by case, side, sequence.
    """
    points = list(checkpoints)
    if points and keys is None:
        raise ValueError("checking checkpoints needs the public-key registry")
    at = now or datetime.now(UTC)
    chains = _chains(entries)
    problems = [p for chain in chains.values() for p in _verify_one(chain, keys, at)]
    for point in points:
        assert keys is not None
        problems.extend(
            _verify_checkpoint(point, chains.get((point.case_id, point.side), []), keys, at)
        )
    problems.extend(_conflict_problem(c) for c in conflicts)
    return sorted(problems, key=lambda p: (p.case_id, p.side, p.sequence, p.kind))


def _chains(entries: Iterable[TrailEntry]) -> dict[tuple[str, str], list[TrailEntry]]:
    """The entries of each (case_id, side) chain, in sequence order."""
    ordered = sorted(entries, key=lambda e: (e.case_id, e.side, e.sequence))
    return {key: list(chain) for key, chain in groupby(ordered, key=lambda e: (e.case_id, e.side))}


def _conflict_problem(conflict: ConflictEntry) -> Problem:
    return Problem(
        conflict.case_id,
        conflict.side,
        conflict.sequence,
        "duplicate_conflict",
        f"a different record with this sequence arrived (sha256 {_digest(conflict.record_json)})",
    )


def _verify_one(chain: list[TrailEntry], keys: PublicKeys | None, now: datetime) -> list[Problem]:
    problems = _verify_store_links(chain)
    region: str | None = None
    previous: tuple[int, AuditRecord | None] = (0, None)
    for entry in chain:
        if entry.sequence == previous[0]:
            continue
        record = _parse(entry)
        if record is None:
            previous = (entry.sequence, None)
            continue
        before = previous[1] if previous[0] == entry.sequence - 1 else None
        link = _link_problem(record, before)
        if link:
            problems.append(_problem(entry, "link_mismatch", link))
        if keys is not None:
            signature = archived_problem(record, keys, now)
            if record.signature is None:
                problems.append(_problem(entry, "unsigned", "no emitter signature"))
            elif signature:
                problems.append(_problem(entry, "signature_invalid", signature))
            region = region or record.region
            if record.region is not None and record.region != region:
                problems.append(
                    _problem(
                        entry,
                        "region_mismatch",
                        f"names region {record.region}, the chain's is {region}",
                    )
                )
        previous = (entry.sequence, record)
    return problems


def _link_problem(record: AuditRecord, before: AuditRecord | None) -> str | None:
    if record.prev_hash is None:
        return "signed without a prev_hash" if record.signature is not None else None
    expected = expected_prev_hash(before, record.sequence)
    if expected is None or record.prev_hash == expected:
        return None  # the predecessor is missing: a gap, reported as such
    target = "the genesis hash" if record.sequence == 1 else f"sequence {record.sequence - 1}"
    return (
        f"prev_hash {_short(record.prev_hash)} is not the digest of {target} ({_short(expected)})"
    )


def _verify_checkpoint(
    point: AuditCheckpoint, chain: list[TrailEntry], keys: PublicKeys, now: datetime
) -> list[Problem]:
    def problem(sequence: int, kind: ProblemKind, detail: str) -> Problem:
        return Problem(point.case_id, point.side, sequence, kind, detail)

    signed_at = point.signature.signed_at.isoformat() if point.signature else "never"
    invalid = checkpoint_problem(point, keys, now)
    if invalid:
        return [problem(point.last_sequence, "checkpoint_invalid", invalid)]
    stored = {e.sequence: e for e in chain}
    highest = max(stored, default=0)
    if highest < point.last_sequence:
        missing = (
            f"{highest + 1}..{point.last_sequence}"
            if highest + 1 < point.last_sequence
            else str(point.last_sequence)
        )
        return [
            problem(
                highest + 1,
                "truncated",
                f"sequence {missing} missing: region {point.region}'s checkpoint signed at "
                f"{signed_at} says the chain has {point.last_sequence} records",
            )
        ]
    head = stored.get(point.last_sequence)
    record = _parse(head) if head is not None else None
    if record is None:
        return []  # a gap or an unreadable record, reported by the chain check
    if record.content_digest() != point.head_hash or record.region != point.region:
        return [
            problem(
                point.last_sequence,
                "checkpoint_mismatch",
                f"stored record is not the one region {point.region}'s checkpoint signed at "
                f"{signed_at} names (digest {_short(point.head_hash)})",
            )
        ]
    return []


def _verify_store_links(chain: list[TrailEntry]) -> list[Problem]:
    problems: list[Problem] = []
    previous: TrailEntry | None = None
    expected_prev: str | None = GENESIS_HASH
    # True while every sequence from 1 up to the current row is present: only then must
    # the row be linked (the store links a record as soon as its predecessor is linked).
    complete = True
    for entry in chain:
        if previous is not None and entry.sequence == previous.sequence:
            if entry.record_json != previous.record_json:
                problems.append(
                    _problem(entry, "duplicate_conflict", "two stored rows hold different records")
                )
            continue
        expected_seq = previous.sequence + 1 if previous else 1
        if entry.sequence > expected_seq:
            for missing in range(expected_seq, entry.sequence):
                problems.append(
                    Problem(entry.case_id, entry.side, missing, "gap", "record missing")
                )
            complete = False
        key_problem = _key_problem(entry)
        if key_problem:
            problems.append(_problem(entry, "key_mismatch", key_problem))
        if complete and entry.prev_hash != expected_prev:
            link = (
                f"prev_hash {_short(entry.prev_hash)} is not the hash of sequence "
                f"{entry.sequence - 1} ({_short(expected_prev)})"
                if entry.sequence > 1
                else f"prev_hash {_short(entry.prev_hash)} is not the genesis hash"
            )
            problems.append(_problem(entry, "broken_link", link))
        elif complete and entry.hash is None:
            problems.append(
                _problem(entry, "broken_link", "not linked although every predecessor is present")
            )
        if entry.hash is not None:
            recomputed = link_hash(entry.prev_hash or "", entry.record_json)
            if entry.prev_hash is None or recomputed != entry.hash:
                altered = (
                    f"stored record altered: hash {_short(entry.hash)}, "
                    f"recomputed {_short(recomputed)}"
                )
                problems.append(_problem(entry, "hash_mismatch", altered))
        previous, expected_prev = entry, entry.hash
    return problems


def _problem(entry: TrailEntry, kind: ProblemKind, detail: str) -> Problem:
    return Problem(entry.case_id, entry.side, entry.sequence, kind, detail)


def _parse(entry: TrailEntry) -> AuditRecord | None:
    """The stored record when it is a valid record of the row's key (else key_mismatch)."""
    try:
        record = AuditRecord.model_validate_json(entry.record_json)
    except ValidationError:
        return None
    if (record.case_id, record.side, record.sequence) != (
        entry.case_id,
        entry.side,
        entry.sequence,
    ):
        return None
    return record


def _key_problem(entry: TrailEntry) -> str | None:
    try:
        record = AuditRecord.model_validate_json(entry.record_json)
    except ValidationError:
        return "stored record_json is not a valid AuditRecord"
    key = (record.case_id, record.side, record.sequence)
    if key != (entry.case_id, entry.side, entry.sequence):
        return f"stored record is {key[1]} sequence {key[2]} of case {key[0]}"
    return None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _short(value: str | None) -> str:
    return "none" if value is None else value[:16]
