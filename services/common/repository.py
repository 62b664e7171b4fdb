"""The SQL side of the shared tables: the case projection and its timeline, the inbox,
region connectivity and dead letters. Implements the CaseStore and Connectivity ports."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import String, Table, bindparam, cast, func, insert, update
from sqlalchemy import case as sa_case
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, or_, select

from contracts.documents import AuditRecord
from contracts.envelope import Envelope
from domain.regions import RegionRegistry
from services.common.db import serialise_on, session_scope
from services.common.tables import (
    CaseEventRow,
    CaseRow,
    DeadLetterRow,
    InboxRow,
    RegionStatusRow,
    SentDocumentRow,
    VerifiedDocumentRow,
)
from workflows.types import CaseEvent, Side

_EVENTS: Table = CaseEventRow.__table__  # type: ignore[attr-defined]
_CASES: Table = CaseRow.__table__  # type: ignore[attr-defined]
_LAST_SEQUENCE = sa_select(func.max(_EVENTS.c.sequence)).where(
    _EVENTS.c.case_id == bindparam("case_id")
)
_INSERT_EVENT = insert(_EVENTS)
_INBOX: Table = InboxRow.__table__  # type: ignore[attr-defined]
_SENT: Table = SentDocumentRow.__table__  # type: ignore[attr-defined]
_INBOX_ENTRY = sa_select(_INBOX).where(_INBOX.c.message_id == bindparam("message_id"))
_INSERT_INBOX = insert(_INBOX)
_CASE_REGIONS = sa_select(_CASES.c.from_region, _CASES.c.to_region).where(
    _CASES.c.case_id == bindparam("case_id")
)
_REGIONS: Table = RegionStatusRow.__table__  # type: ignore[attr-defined]
_REGION_OVERRIDE = sa_select(_REGIONS.c.connected).where(_REGIONS.c.region == bindparam("region"))
_CASE_FACTS = sa_select(_CASES.c.facts).where(_CASES.c.case_id == bindparam("case_id"))
# SET takes the columns named in the parameters; status_since moves only with the status
# (the right-hand side reads the row before the update). The updated_at guard keeps an
# older event arriving late from rolling the projection back.
_PROJECT_EVENT = (
    update(_CASES)
    .where(
        _CASES.c.case_id == bindparam("case"),
        _CASES.c.updated_at <= bindparam("occurred", type_=_CASES.c.updated_at.type),
    )
    .values(
        status_since=sa_case(
            (
                _CASES.c.status != bindparam("new_status"),
                bindparam("occurred", type_=_CASES.c.status_since.type),
            ),
            else_=_CASES.c.status_since,
        )
    )
)


def utcnow() -> datetime:
    return datetime.now(UTC)


class CaseRepository:
    def __init__(self, engine: Engine, side: Side) -> None:
        self.engine = engine
        self.side = side

    # --- CaseStore port --------------------------------------------------------------------
    def append_event(self, event: CaseEvent) -> AuditRecord | None:
        for _ in range(5):  # two workflows of one case may race for the next sequence
            try:
                return self._append_once(event)
            except IntegrityError:
                existing = self._event_by_key(event.event_key)
                if existing is not None:
                    # The record as it was written: a workflow task re-run after a worker
                    # died schedules the step again with a later workflow.now(), and the
                    # audit trail must get the record it may already hold, not a different
                    # one with the same sequence (the audit consumer refuses that).
                    return self._audit(existing, existing.sequence)
        raise RuntimeError("could not assign a timeline sequence")

    def _event_by_key(self, event_key: str) -> CaseEventRow | None:
        with session_scope(self.engine) as session:
            return session.exec(
                select(CaseEventRow).where(CaseEventRow.event_key == event_key)
            ).first()

    def _append_once(self, event: CaseEvent) -> AuditRecord:
        # No look-up by event_key first: a retried activity's insert violates its unique
        # key, and append_event answers with the row already there (one query less on
        # every event of every case). Prebuilt Core statements, not the ORM: this runs for
        # every event of every case, and building statements cost more than the SQL.
        with self.engine.begin() as connection:
            last = connection.execute(_LAST_SEQUENCE, {"case_id": event.case_id}).scalar()
            sequence = (last or 0) + 1
            connection.execute(
                _INSERT_EVENT,
                {
                    "case_id": event.case_id,
                    "sequence": sequence,
                    "event_key": event.event_key,
                    "event": event.event,
                    "status": event.status,
                    "occurred_at": event.occurred_at,
                    "rule": event.rule,
                    "detail": dict(event.detail),
                },
            )
            self._project(connection, event)
        return self._audit(event, sequence)

    def _project(self, connection: Connection, event: CaseEvent) -> None:
        """The event onto its case row, in one UPDATE. Outgoing rows are created by the
        request handler (see ensure_case): no row, nothing to project."""
        # In UTC like every stored time: SQLite compares the stored text.
        occurred = event.occurred_at.astimezone(UTC)
        values: dict[str, Any] = {
            "case": event.case_id,
            "occurred": occurred,
            "new_status": event.status,
            "status": event.status,
            "awaiting_what": event.awaiting.what if event.awaiting else None,
            "awaiting_from": event.awaiting.from_party if event.awaiting else None,
            "awaiting_by": event.awaiting.by if event.awaiting else None,
            "warnings": list(event.warnings),
            "updated_at": occurred,
        }
        if event.deadlines:
            values["deadlines"] = {k: v.isoformat() for k, v in event.deadlines.items()}
        if event.escalated is not None:
            values["escalated"] = event.escalated
        if event.facts:
            known = connection.execute(_CASE_FACTS, {"case_id": event.case_id}).scalar()
            values["facts"] = {**(known or {}), **event.facts}
        if event.terminal:
            values["terminal"], values["open_key"] = True, None
        connection.execute(_PROJECT_EVENT, values)

    def _audit(self, source: CaseEvent | CaseEventRow, sequence: int) -> AuditRecord:
        return AuditRecord(
            case_id=source.case_id,
            side=self.side,
            sequence=sequence,
            event=source.event,
            status=source.status,
            occurred_at=_aware(source.occurred_at),
            detail=dict(source.detail or {}),
            rule=source.rule,
        )

    def count_events(self, case_id: str, event: str) -> int:
        with session_scope(self.engine) as session:
            return session.exec(
                select(func.count())
                .select_from(CaseEventRow)
                .where(CaseEventRow.case_id == case_id, CaseEventRow.event == event)
            ).one()

    def note_attention(
        self,
        case_id: str,
        *,
        event_key: str,
        event: str,
        detail: dict[str, Any],
        values: dict[str, Any],
        rule: str | None = None,
    ) -> AuditRecord | None:
        """A fact about a case that its workflow cannot record itself (a document for a
        closed case, a workflow that keeps failing): one timeline event at the case's
        current status, and ``values`` set on the case row (stuck_*, exception_*), in one
        transaction. Idempotent by ``event_key``: None when it was noted already or the
        case is unknown here."""
        with session_scope(self.engine) as session:
            case = session.get(CaseRow, case_id)
            if case is None:
                return None
            for key, value in values.items():
                setattr(case, key, value)
            session.add(case)
            if session.exec(
                select(CaseEventRow).where(CaseEventRow.event_key == event_key)
            ).first():
                return None
            last = session.connection().execute(_LAST_SEQUENCE, {"case_id": case_id}).scalar()
            sequence = (last or 0) + 1
            row = CaseEventRow(
                case_id=case_id,
                sequence=sequence,
                event_key=event_key,
                event=event,
                status=case.status,
                occurred_at=utcnow(),
                rule=rule,
                detail=dict(detail),
            )
            session.add(row)
            session.flush()
            return self._audit(row, sequence)

    def append_record_event(
        self, subject: str, *, event: str, detail: dict[str, Any]
    ) -> AuditRecord:
        """An audited change of a record that is not a case (an enrolment edit): one
        event in the timeline table under ``subject`` (e.g. ``ENROLMENT-620800-17``, its
        own sequence and hash chain in the audit trail), returned for publishing."""
        for _ in range(5):
            try:
                with self.engine.begin() as connection:
                    last = connection.execute(_LAST_SEQUENCE, {"case_id": subject}).scalar()
                    sequence = (last or 0) + 1
                    occurred = utcnow()
                    connection.execute(
                        _INSERT_EVENT,
                        {
                            "case_id": subject,
                            "sequence": sequence,
                            "event_key": f"{subject}:{sequence}",
                            "event": event,
                            "status": "recorded",
                            "occurred_at": occurred,
                            "rule": None,
                            "detail": dict(detail),
                        },
                    )
                return AuditRecord(
                    case_id=subject,
                    side=self.side,
                    sequence=sequence,
                    event=event,
                    status="recorded",
                    occurred_at=occurred,
                    detail=dict(detail),
                )
            except IntegrityError:
                continue  # two edits raced for the sequence
        raise RuntimeError("could not assign a record sequence")

    # --- case rows ----------------------------------------------------------------------
    def case_regions(self, case_id: str) -> tuple[str, str] | None:
        """The case's (outgoing region, incoming region), or None for an unknown case."""
        # Two columns, not the row: every inbound document asks (the row holds the whole
        # application).
        with self.engine.connect() as connection:
            row = connection.execute(_CASE_REGIONS, {"case_id": case_id}).first()
        return None if row is None else (row.from_region, row.to_region)

    def get_case(self, case_id: str) -> CaseRow | None:
        with session_scope(self.engine) as session:
            return session.get(CaseRow, case_id)

    def find_open(self, open_key: str) -> CaseRow | None:
        with session_scope(self.engine) as session:
            return session.exec(select(CaseRow).where(CaseRow.open_key == open_key)).first()

    def open_case(self, row: CaseRow) -> CaseRow | None:
        """R5: insert a new open case unless the person has one for other regions (None).
        A second submission for the same regions gets the open case it duplicates. The
        check and the insert are one transaction, serialised per person, so two
        submissions at once (threads, API replicas) cannot both pass the check."""
        try:
            with session_scope(self.engine) as session:
                serialise_on(session, f"open-case:{row.person_key}")
                open_cases = session.exec(
                    select(CaseRow).where(
                        CaseRow.person_key == row.person_key, col(CaseRow.open_key).is_not(None)
                    )
                ).all()
                if any(case.open_key != row.open_key for case in open_cases):
                    return None
                if open_cases:
                    return open_cases[0]
                session.add(row)
            return row
        except IntegrityError:
            # The same open key inserted another way (not through here): its case.
            existing = self.find_open(row.open_key) if row.open_key is not None else None
            if existing is None:
                raise
            return existing

    def insert_case(self, row: CaseRow) -> CaseRow:
        """Insert a new case; when another open case holds the same open_key, return it."""
        try:
            with session_scope(self.engine) as session:
                session.add(row)
            return row
        except IntegrityError:
            if row.open_key is None:
                raise
            existing = self.find_open(row.open_key)
            if existing is None:
                raise
            return existing

    def events(self, case_id: str) -> Sequence[CaseEventRow]:
        with session_scope(self.engine) as session:
            return session.exec(
                select(CaseEventRow)
                .where(CaseEventRow.case_id == case_id)
                .order_by(col(CaseEventRow.sequence))
            ).all()

    def list_cases(
        self,
        *,
        status: str | None = None,
        region: str | None = None,
        escalated: bool | None = None,
        warning: str | None = None,
        visible_to: frozenset[str] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Sequence[CaseRow]:
        query = select(CaseRow)
        if status:
            query = query.where(CaseRow.status == status)
        if region:
            query = query.where((CaseRow.from_region == region) | (CaseRow.to_region == region))
        if escalated is not None:
            query = query.where(CaseRow.escalated == escalated)
        if visible_to is not None and "*" not in visible_to:
            regions = list(visible_to)
            query = query.where(
                col(CaseRow.from_region).in_(regions) | col(CaseRow.to_region).in_(regions)
            )
        if warning:
            # e.g. calendar-fallback-2027: deadlines counted Monday-Friday for want of data
            query = query.where(cast(CaseRow.warnings, String).contains(f'"{warning}"'))
        query = query.order_by(col(CaseRow.created_at).desc()).offset(offset).limit(limit)
        with session_scope(self.engine) as session:
            return session.exec(query).all()

    def needing_attention(
        self, *, visible_to: frozenset[str] | None = None, limit: int = 200
    ) -> Sequence[CaseRow]:
        """Open stuck cases and cases with an open clerk exception, oldest first, from a
        query of their own (not a slice of the newest cases): the ones that matter most
        never drop out of the list."""
        query = select(CaseRow).where(
            (col(CaseRow.stuck_since).is_not(None) & col(CaseRow.terminal).is_(False))
            | col(CaseRow.exception_code).is_not(None)
        )
        if visible_to is not None and "*" not in visible_to:
            regions = list(visible_to)
            query = query.where(
                col(CaseRow.from_region).in_(regions) | col(CaseRow.to_region).in_(regions)
            )
        query = query.order_by(col(CaseRow.updated_at)).limit(limit)
        with session_scope(self.engine) as session:
            return session.exec(query).all()

    def milestones(self, case_ids: Sequence[str], names: Sequence[str]) -> Sequence[CaseEventRow]:
        """The named events of many cases in one query (for service figures)."""
        if not case_ids:
            return []
        with session_scope(self.engine) as session:
            return session.exec(
                select(CaseEventRow)
                .where(col(CaseEventRow.case_id).in_(list(case_ids)))
                .where(col(CaseEventRow.event).in_(list(names)))
            ).all()

    # --- inbox ----------------------------------------------------------------------------
    def seen(self, message_id: str) -> bool:
        return self.received(message_id) is not None

    def record_verified(self, envelope: Envelope) -> None:
        """Note a document whose signature was verified (once per message id)."""
        try:
            with session_scope(self.engine) as session:
                if session.get(VerifiedDocumentRow, envelope.message_id) is None:
                    session.add(
                        VerifiedDocumentRow(
                            message_id=envelope.message_id,
                            case_id=envelope.case_id,
                            type=envelope.type,
                            from_region=envelope.from_region,
                            key_id=envelope.key_id or "",
                            # As validated (normalised), the form the activities compare.
                            payload_json=json.dumps(
                                envelope.document().model_dump(mode="json"), ensure_ascii=False
                            ),
                            verified_at=utcnow(),
                        )
                    )
        except IntegrityError:
            pass  # a concurrent delivery of the same message noted it first

    def has_verified(self, case_id: str, doc_type: str, fields: dict[str, Any]) -> bool:
        """Whether a verified document of that type of the case carries these fields."""
        with session_scope(self.engine) as session:
            rows = session.exec(
                select(VerifiedDocumentRow.payload_json).where(
                    VerifiedDocumentRow.case_id == case_id, VerifiedDocumentRow.type == doc_type
                )
            ).all()
        for text in rows:
            payload = json.loads(text)
            if all(payload.get(name) == value for name, value in fields.items()):
                return True
        return False

    def received(self, message_id: str) -> InboxRow | None:
        # Core, not the ORM: asked for every inbound document (make bench profiles).
        with self.engine.connect() as connection:
            row = connection.execute(_INBOX_ENTRY, {"message_id": message_id}).first()
        return None if row is None else InboxRow.model_validate(row._asdict())

    def remember(
        self,
        message_id: str,
        case_id: str,
        type_: str,
        from_region: str,
        outcome: str,
        digest: str | None = None,
    ) -> None:
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    _INSERT_INBOX,
                    {
                        "message_id": message_id,
                        "case_id": case_id,
                        "type": type_,
                        "from_region": from_region,
                        "received_at": utcnow(),
                        "outcome": outcome,
                        "digest": digest,
                    },
                )
        except IntegrityError:
            pass  # a concurrent redelivery recorded it first

    # --- documents sent, until their receipt -------------------------------------------
    def record_sent(self, envelope: Envelope) -> None:
        """A document was published: keep it until its receipt (idempotent; a retried
        delivery of the same message id counts as one more attempt)."""
        now = utcnow()
        with session_scope(self.engine) as session:
            row = session.get(SentDocumentRow, envelope.message_id)
            if row is None:
                session.add(
                    SentDocumentRow(
                        message_id=envelope.message_id,
                        case_id=envelope.case_id,
                        type=envelope.type,
                        to_region=envelope.to_region,
                        envelope=envelope.model_dump(mode="json"),
                        first_sent_at=now,
                        last_sent_at=now,
                    )
                )

    def receipt_received(self, message_id: str, *, case_id: str, from_region: str) -> None:
        """The receiver acknowledged our document: it is not sent again. Only a receipt on
        the document's own case, from the region it went to, counts; a NO_RECEIPT
        exception it cleared goes with it."""
        with session_scope(self.engine) as session:
            row = session.get(SentDocumentRow, message_id)
            if (
                row is None
                or row.receipt_at is not None
                or row.case_id != case_id
                or row.to_region != from_region
            ):
                return
            row.receipt_at = utcnow()
            session.add(row)
            if row.escalated_at is None:
                return
            session.flush()
            others = session.exec(
                select(SentDocumentRow).where(
                    SentDocumentRow.case_id == case_id,
                    col(SentDocumentRow.receipt_at).is_(None),
                    col(SentDocumentRow.escalated_at).is_not(None),
                )
            ).first()
            case = session.get(CaseRow, case_id)
            if others is None and case is not None and case.exception_code == "NO_RECEIPT":
                case.exception_code, case.exception_since = None, None
                session.add(case)

    def unacknowledged(self, sent_before: datetime, limit: int = 200) -> Sequence[SentDocumentRow]:
        with session_scope(self.engine) as session:
            return session.exec(
                select(SentDocumentRow)
                .where(
                    col(SentDocumentRow.receipt_at).is_(None),
                    col(SentDocumentRow.last_sent_at) < sent_before,
                )
                # Fresh documents first: long-failing ones (an hour between sends) must
                # not fill every batch and delay a new document's first resend.
                .order_by(col(SentDocumentRow.attempts), col(SentDocumentRow.last_sent_at))
                .limit(limit)
            ).all()

    def resent(self, message_id: str, *, escalated: bool = False) -> None:
        now = utcnow()
        values: dict[str, Any] = {
            "attempts": _SENT.c.attempts + 1,  # in SQL: two sweeping replicas add up
            "last_sent_at": now,
        }
        with self.engine.begin() as connection:
            connection.execute(
                update(_SENT).where(_SENT.c.message_id == message_id).values(**values)
            )
            if escalated:
                connection.execute(
                    update(_SENT)
                    .where(_SENT.c.message_id == message_id, _SENT.c.escalated_at.is_(None))
                    .values(escalated_at=now)
                )

    def inbox(self, case_id: str) -> Sequence[InboxRow]:
        with session_scope(self.engine) as session:
            return session.exec(select(InboxRow).where(InboxRow.case_id == case_id)).all()

    def dead_letter(
        self,
        *,
        reason: str,
        topic: str,
        message_id: str | None = None,
        case_id: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        raw_base64: str | None = None,
    ) -> None:
        with session_scope(self.engine) as session:
            session.add(
                DeadLetterRow(
                    message_id=message_id,
                    case_id=case_id,
                    reason=reason,
                    topic=topic,
                    partition=partition,
                    offset=offset,
                    received_at=utcnow(),
                    raw_base64=raw_base64,
                )
            )

    def redrivable(
        self, codes: Collection[str], received_after: datetime, limit: int = 200
    ) -> Sequence[DeadLetterRow]:
        """Dead letters whose cause can clear, not yet acted on, oldest first."""
        with session_scope(self.engine) as session:
            rows = session.exec(
                select(DeadLetterRow)
                .where(
                    col(DeadLetterRow.raw_base64).is_not(None),
                    col(DeadLetterRow.received_at) > received_after,
                    or_(
                        col(DeadLetterRow.redrive_outcome).is_(None),
                        col(DeadLetterRow.redrive_outcome).in_(codes),
                    ),
                )
                .order_by(col(DeadLetterRow.id))
            ).all()
        return [r for r in rows if r.reason.split(":", 1)[0] in codes][:limit]

    def redriven(self, dead_letter_id: int, outcome: str) -> None:
        with session_scope(self.engine) as session:
            row = session.get(DeadLetterRow, dead_letter_id)
            if row is not None:
                row.redriven_at, row.redrive_outcome = utcnow(), outcome
                session.add(row)

    def dead_letters(self) -> Sequence[DeadLetterRow]:
        with session_scope(self.engine) as session:
            return session.exec(select(DeadLetterRow).order_by(col(DeadLetterRow.id))).all()


class RegionConnectivity:
    """R23: whether a region is connected, as the registry says, overridden by operators
    (a region going live, or an outage) through the admin API."""

    def __init__(self, engine: Engine, registry: RegionRegistry) -> None:
        self.engine = engine
        self.registry = registry

    def is_connected(self, region: str, on: date) -> bool:
        # Core, not the ORM: every delivery of every document asks.
        with self.engine.connect() as connection:
            override = connection.execute(_REGION_OVERRIDE, {"region": region}).scalar()
        if override is not None:
            return bool(override)
        return self.registry.is_connected(region, on)

    def set_connected(self, region: str, connected: bool) -> None:
        with session_scope(self.engine) as session:
            row = session.get(RegionStatusRow, region) or RegionStatusRow(
                region=region, connected=connected, changed_at=utcnow()
            )
            row.connected, row.changed_at = connected, utcnow()
            session.add(row)


def _aware(value: datetime) -> datetime:
    # SQLite returns naive datetimes; everything we store is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)
