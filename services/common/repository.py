"""The SQL side of the shared tables: the case projection and its timeline, the inbox,
region connectivity and dead letters. Implements the CaseStore and Connectivity ports."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import String, cast, func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from contracts.documents import AuditRecord
from domain.regions import RegionRegistry
from services.common.db import session_scope
from services.common.tables import (
    CaseEventRow,
    CaseRow,
    DeadLetterRow,
    InboxRow,
    RegionStatusRow,
)
from workflows.types import CaseEvent, Side


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
                    return self._audit(event, existing.sequence)
        raise RuntimeError("could not assign a timeline sequence")

    def _event_by_key(self, event_key: str) -> CaseEventRow | None:
        with session_scope(self.engine) as session:
            return session.exec(
                select(CaseEventRow).where(CaseEventRow.event_key == event_key)
            ).first()

    def _append_once(self, event: CaseEvent) -> AuditRecord:
        # No look-up by event_key first: a retried activity's insert violates its unique
        # key, and append_event answers with the row already there (one query less on
        # every event of every case).
        with session_scope(self.engine) as session:
            last = session.exec(
                select(func.max(CaseEventRow.sequence)).where(CaseEventRow.case_id == event.case_id)
            ).one()
            sequence = (last or 0) + 1
            detail: dict[str, Any] = dict(event.detail)
            session.add(
                CaseEventRow(
                    case_id=event.case_id,
                    sequence=sequence,
                    event_key=event.event_key,
                    event=event.event,
                    status=event.status,
                    occurred_at=event.occurred_at,
                    rule=event.rule,
                    detail=detail,
                )
            )
            self._project(session, event)
        return self._audit(event, sequence)

    def _project(self, session: Any, event: CaseEvent) -> None:
        row = session.get(CaseRow, event.case_id)
        if row is None:
            return  # outgoing rows are created by the request handler; see ensure_case
        if event.occurred_at < _aware(row.updated_at):
            return  # an older event arriving late must not roll the projection back
        if row.status != event.status:
            row.status, row.status_since = event.status, event.occurred_at
        row.awaiting_what = event.awaiting.what if event.awaiting else None
        row.awaiting_from = event.awaiting.from_party if event.awaiting else None
        row.awaiting_by = event.awaiting.by if event.awaiting else None
        if event.deadlines:
            row.deadlines = {k: v.isoformat() for k, v in event.deadlines.items()}
        if event.escalated is not None:
            row.escalated = event.escalated
        row.warnings = list(event.warnings)
        if event.facts:
            row.facts = {**(row.facts or {}), **event.facts}
        if event.terminal:
            row.terminal, row.open_key = True, None
        row.updated_at = event.occurred_at
        session.add(row)

    def _audit(self, event: CaseEvent, sequence: int) -> AuditRecord:
        return AuditRecord(
            case_id=event.case_id,
            side=event.side,
            sequence=sequence,
            event=event.event,
            status=event.status,
            occurred_at=event.occurred_at,
            detail=dict(event.detail),
            rule=event.rule,
        )

    # --- case rows ----------------------------------------------------------------------
    def case_regions(self, case_id: str) -> tuple[str, str] | None:
        """The case's (outgoing region, incoming region), or None for an unknown case."""
        row = self.get_case(case_id)
        return None if row is None else (row.from_region, row.to_region)

    def get_case(self, case_id: str) -> CaseRow | None:
        with session_scope(self.engine) as session:
            return session.get(CaseRow, case_id)

    def find_open(self, open_key: str) -> CaseRow | None:
        with session_scope(self.engine) as session:
            return session.exec(select(CaseRow).where(CaseRow.open_key == open_key)).first()

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

    def received(self, message_id: str) -> InboxRow | None:
        with session_scope(self.engine) as session:
            return session.get(InboxRow, message_id)

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
            with session_scope(self.engine) as session:
                session.add(
                    InboxRow(
                        message_id=message_id,
                        case_id=case_id,
                        type=type_,
                        from_region=from_region,
                        received_at=utcnow(),
                        outcome=outcome,
                        digest=digest,
                    )
                )
        except IntegrityError:
            pass  # a concurrent redelivery recorded it first

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
                )
            )

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
        with session_scope(self.engine) as session:
            override = session.get(RegionStatusRow, region)
        if override is not None:
            return override.connected
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
