"""The audit process's own store: every AuditRecord once, chained per case and side.

Design, for records that arrive out of order (a retried activity published sequence 3
before its sequence 2 got through): a record is stored as it comes. Its link
(``prev_hash``, ``hash``) is written in the same transaction when its predecessor is
already linked (sequence 1 links to the genesis hash); otherwise both stay NULL and the
row waits. Whenever a row gets linked, the rows after it that were waiting are linked in
that transaction too (``_link_successors``), so at every commit exactly the rows whose
predecessors are all present are linked, and the chain order is the sequence order, not
the arrival order. ``relink`` walks a whole chain and fills in whatever is still waiting
behind a complete prefix; append already does this, so ``relink`` is only a repair step.
A stored hash is never recomputed: that would launder an altered record.

The same record again (a redelivery, a retried publish, also one signed again later or
with a newer key) is ignored; a different record with a stored sequence is kept in
``audit_conflict`` and reported by ``verify``. Messages that are not valid AuditRecords go
to ``audit_rejected`` with the reason, the offset and the digest of the bytes, never the
bytes themselves (they may hold personal data).

A store opened with the public-key registry (``keys``) is the emitters' witness, not their
proxy: ``append`` refuses (``RecordRefused``) a record whose signature does not verify with
its region's registered key, or that names another region than its chain's, so a forged
record never enters a chain; the consumer puts it in ``audit_rejected``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import Column, Text, UniqueConstraint, func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from contracts.audit_trust import AuditCheckpoint, PublicKeys, record_problem
from contracts.documents import AuditRecord
from services.audit.chain import (
    GENESIS_HASH,
    ConflictEntry,
    Problem,
    TrailEntry,
    canonical_json,
    link_hash,
    verify_chain,
)
from services.common.db import make_engine, session_scope
from services.common.logging import scrub
from services.common.migrate import VERSIONS_DIR, History
from services.common.migrate import upgrade as migrate_database

AppendOutcome = Literal["appended", "duplicate", "conflict"]


class RecordRefused(Exception):
    """A record the store does not take into a chain; ``reason`` starts with its code
    (SIGNATURE_INVALID, REGION_MISMATCH) and names no value of the record."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AuditEntryRow(SQLModel, table=True):
    """One record of a case's chain; (case_id, side, sequence) is unique."""

    __tablename__ = "audit_entry"
    __table_args__ = (UniqueConstraint("case_id", "side", "sequence"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(index=True)
    side: str
    sequence: int
    record_json: str = Field(sa_column=Column(Text, nullable=False))
    prev_hash: str | None = None
    hash: str | None = None
    received_at: datetime


class AuditConflictRow(SQLModel, table=True):
    """A record whose sequence was already taken by a different record."""

    __tablename__ = "audit_conflict"
    __table_args__ = (UniqueConstraint("case_id", "side", "sequence", "record_sha256"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(index=True)
    side: str
    sequence: int
    record_json: str = Field(sa_column=Column(Text, nullable=False))
    record_sha256: str
    received_at: datetime


class AuditRejectedRow(SQLModel, table=True):
    """A message on the audit topic that is not a valid AuditRecord."""

    __tablename__ = "audit_rejected"

    id: int | None = Field(default=None, primary_key=True)
    reason: str
    topic: str
    partition: int | None = None
    offset: int | None = None
    kafka_key: str | None = None
    raw_sha256: str
    raw_size: int
    received_at: datetime


AUDIT_TABLES: list[type[SQLModel]] = [AuditEntryRow, AuditConflictRow, AuditRejectedRow]
# The audit database's own migration history (services/common/migrate.py runs it).
AUDIT_HISTORY = History("audit", VERSIONS_DIR / "audit", tuple(AUDIT_TABLES))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _unsigned_view(record: AuditRecord) -> str:
    # What makes two deliveries the same record: all but the signature (a retried
    # publish is signed again, maybe later or with a rotated key).
    content = record.model_copy(update={"signature": None})
    return canonical_json(content)


class AuditStore:
    """``keys``: the public-key registry that every appended record's signature must
    verify with (None: records are taken unchecked, and ``verify`` checks only the
    store's own hash chain, as before records were signed)."""

    def __init__(self, engine: Engine, keys: PublicKeys | None = None) -> None:
        self.engine = engine
        self.keys = keys

    @classmethod
    def open(cls, url: str, keys: PublicKeys | None = None) -> AuditStore:
        engine = make_engine(url)
        migrate_database(engine, AUDIT_HISTORY)
        return cls(engine, keys)

    # --- writing --------------------------------------------------------------------------
    def append(self, record: AuditRecord) -> AppendOutcome:
        """Store ``record`` once and link it into its chain when its predecessor is linked.

        Raises ``RecordRefused`` when the store has ``keys`` and the record's signature
        does not verify, or the record names another region than its chain's first one.
        """
        if self.keys is not None:
            problem = record_problem(record, self.keys, datetime.now(UTC))
            if problem:
                raise RecordRefused(f"SIGNATURE_INVALID: {problem}")
        record_json = canonical_json(record)
        for attempt in range(3):
            try:
                with session_scope(self.engine) as session:
                    return self._append(session, record, record_json)
            except IntegrityError:
                # Another consumer stored the same key between our look and our insert
                # (a rebalance); the next attempt sees its row.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _append(self, session: Session, record: AuditRecord, record_json: str) -> AppendOutcome:
        now = datetime.now(UTC)
        if self.keys is not None:
            self._check_region(session, record)
        existing = self._row(session, record.case_id, record.side, record.sequence)
        if existing is not None:
            if existing.record_json == record_json or _same_record(existing.record_json, record):
                return "duplicate"
            digest = _sha256(record_json.encode("utf-8"))
            known = session.exec(
                select(AuditConflictRow).where(
                    AuditConflictRow.case_id == record.case_id,
                    AuditConflictRow.side == record.side,
                    AuditConflictRow.sequence == record.sequence,
                    AuditConflictRow.record_sha256 == digest,
                )
            ).first()
            if known is None:
                session.add(
                    AuditConflictRow(
                        case_id=record.case_id,
                        side=record.side,
                        sequence=record.sequence,
                        record_json=record_json,
                        record_sha256=digest,
                        received_at=now,
                    )
                )
            return "conflict"
        if record.sequence == 1:
            prev_hash: str | None = GENESIS_HASH
        else:
            before = self._row(session, record.case_id, record.side, record.sequence - 1)
            prev_hash = before.hash if before is not None else None
        row = AuditEntryRow(
            case_id=record.case_id,
            side=record.side,
            sequence=record.sequence,
            record_json=record_json,
            prev_hash=prev_hash,
            hash=link_hash(prev_hash, record_json) if prev_hash is not None else None,
            received_at=now,
        )
        session.add(row)
        if row.hash is not None:
            self._link_successors(session, row)
        return "appended"

    def _check_region(self, session: Session, record: AuditRecord) -> None:
        first = session.exec(
            select(AuditEntryRow.record_json)
            .where(AuditEntryRow.case_id == record.case_id, AuditEntryRow.side == record.side)
            .order_by(col(AuditEntryRow.sequence))
            .limit(1)
        ).first()
        if first is None:
            return
        try:
            region = AuditRecord.model_validate_json(first).region
        except ValueError:
            return  # an unreadable stored record: verify reports it
        if region is not None and region != record.region:
            raise RecordRefused(
                f"REGION_MISMATCH: region {record.region} signed a record of a {record.side} "
                f"chain of region {region}"
            )

    def _link_successors(self, session: Session, linked: AuditEntryRow) -> int:
        count = 0
        previous = linked
        while True:
            following = self._row(session, previous.case_id, previous.side, previous.sequence + 1)
            if following is None or following.hash is not None or previous.hash is None:
                return count
            following.prev_hash = previous.hash
            following.hash = link_hash(previous.hash, following.record_json)
            session.add(following)
            previous, count = following, count + 1

    def relink(self, case_id: str, side: str) -> int:
        """Link every row of the chain whose predecessors are all present and which is
        still waiting; returns how many were linked. Never touches a stored hash."""
        with session_scope(self.engine) as session:
            rows = session.exec(
                select(AuditEntryRow)
                .where(AuditEntryRow.case_id == case_id, AuditEntryRow.side == side)
                .order_by(col(AuditEntryRow.sequence))
            ).all()
            count, prev_hash = 0, GENESIS_HASH
            for expected, row in enumerate(rows, start=1):
                if row.sequence != expected:
                    break
                if row.hash is None:
                    row.prev_hash, row.hash = prev_hash, link_hash(prev_hash, row.record_json)
                    session.add(row)
                    count += 1
                prev_hash = row.hash
            return count

    def reject(
        self,
        *,
        reason: str,
        topic: str,
        raw: bytes,
        partition: int | None = None,
        offset: int | None = None,
        key: bytes | None = None,
    ) -> None:
        with session_scope(self.engine) as session:
            session.add(
                AuditRejectedRow(
                    reason=reason,
                    topic=topic,
                    partition=partition,
                    offset=offset,
                    # The key is the case id; scrubbed in case a producer keyed by person.
                    kafka_key=scrub(key.decode("utf-8", errors="replace"))[:200]
                    if key is not None
                    else None,
                    raw_sha256=_sha256(raw),
                    raw_size=len(raw),
                    received_at=datetime.now(UTC),
                )
            )

    # --- reading --------------------------------------------------------------------------
    @staticmethod
    def _row(session: Session, case_id: str, side: str, sequence: int) -> AuditEntryRow | None:
        return session.exec(
            select(AuditEntryRow).where(
                AuditEntryRow.case_id == case_id,
                AuditEntryRow.side == side,
                AuditEntryRow.sequence == sequence,
            )
        ).first()

    def entries(self, case_id: str | None = None) -> list[TrailEntry]:
        """The stored trail (of one case, or all), ordered by case, side, sequence."""
        query = select(AuditEntryRow)
        if case_id is not None:
            query = query.where(AuditEntryRow.case_id == case_id)
        query = query.order_by(
            col(AuditEntryRow.case_id), col(AuditEntryRow.side), col(AuditEntryRow.sequence)
        )
        with session_scope(self.engine) as session:
            return [
                TrailEntry(
                    case_id=r.case_id,
                    side=r.side,
                    sequence=r.sequence,
                    record_json=r.record_json,
                    prev_hash=r.prev_hash,
                    hash=r.hash,
                    received_at=_aware(r.received_at),
                )
                for r in session.exec(query).all()
            ]

    def conflicts(self, case_id: str | None = None) -> list[ConflictEntry]:
        query = select(AuditConflictRow)
        if case_id is not None:
            query = query.where(AuditConflictRow.case_id == case_id)
        query = query.order_by(
            col(AuditConflictRow.case_id),
            col(AuditConflictRow.side),
            col(AuditConflictRow.sequence),
            col(AuditConflictRow.id),
        )
        with session_scope(self.engine) as session:
            return [
                ConflictEntry(
                    case_id=r.case_id,
                    side=r.side,
                    sequence=r.sequence,
                    record_json=r.record_json,
                    received_at=_aware(r.received_at),
                )
                for r in session.exec(query).all()
            ]

    def rejected(self) -> list[AuditRejectedRow]:
        with session_scope(self.engine) as session:
            return list(
                session.exec(select(AuditRejectedRow).order_by(col(AuditRejectedRow.id))).all()
            )

    def case_ids(self) -> list[str]:
        with session_scope(self.engine) as session:
            entry_ids = session.exec(select(AuditEntryRow.case_id).distinct()).all()
            conflict_ids = session.exec(select(AuditConflictRow.case_id).distinct()).all()
        return sorted({*entry_ids, *conflict_ids})

    def count(self, case_id: str) -> int:
        with session_scope(self.engine) as session:
            query = select(func.count(col(AuditEntryRow.id))).where(
                AuditEntryRow.case_id == case_id
            )
            return int(session.exec(query).one())

    def verify(
        self, case_id: str | None = None, checkpoints: Sequence[AuditCheckpoint] = ()
    ) -> list[Problem]:
        """Verify one case, or every case one at a time (memory bounded by one case),
        with the store's ``keys`` and against ``checkpoints`` (every case they name is
        verified, stored or not: a case the store lost entirely is ``truncated``)."""
        problems: list[Problem] = []
        now = datetime.now(UTC)
        cases = [case_id] if case_id is not None else self.case_ids()
        if case_id is None:
            cases = sorted({*cases, *(c.case_id for c in checkpoints)})
        for case in cases:
            problems.extend(
                verify_chain(
                    self.entries(case),
                    self.conflicts(case),
                    keys=self.keys,
                    checkpoints=[c for c in checkpoints if c.case_id == case],
                    now=now,
                )
            )
        return problems


def _same_record(stored_json: str, record: AuditRecord) -> bool:
    try:
        stored = AuditRecord.model_validate_json(stored_json)
    except ValueError:
        return False
    return _unsigned_view(stored) == _unsigned_view(record)
