"""The emitting agency's part of the audit trust: sign each AuditRecord as it is published,
linked to the agency's own previous record of the case, and sign checkpoints of its
chains' heads from its own timeline (``python -m services.audit checkpoint``).

Runs inside an agency deployment (its timeline table, its region keys); the audit
process itself never signs anything.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Literal, Protocol

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from contracts.audit_trust import (
    AuditCheckpoint,
    ByteSigner,
    expected_prev_hash,
    sign_checkpoint,
    sign_record,
)
from contracts.documents import AuditRecord
from contracts.keyring import KeyCustodyError
from services.common.db import session_scope
from services.common.tables import CaseEventRow

log = logging.getLogger("medtransfer.audit.emitter")

Side = Literal["incoming", "outgoing"]

# A subject that is not a case names its region: ENROLMENT-620800-17.
_SUBJECT_REGION = re.compile(r"^[A-Z]+-(\d{6})-")
_REGION_CACHE_SIZE = 10_000


class AuditTimeline(Protocol):
    """The agency's own timeline: ``services.common.repository.CaseRepository``."""

    engine: Engine

    def case_regions(self, case_id: str) -> tuple[str, str] | None: ...


class ServingSigner(ByteSigner, Protocol):
    @property
    def served(self) -> frozenset[str]: ...


def timeline_record(row: CaseEventRow, side: Side) -> AuditRecord:
    """The AuditRecord of a timeline row, as ``CaseRepository`` builds it for publishing
    (unsigned: only its content digest is used here)."""
    occurred = row.occurred_at if row.occurred_at.tzinfo else row.occurred_at.replace(tzinfo=UTC)
    return AuditRecord(
        case_id=row.case_id,
        side=side,
        sequence=row.sequence,
        event=row.event,
        status=row.status,
        occurred_at=occurred,
        detail=dict(row.detail or {}),
        rule=row.rule,
    )


class AuditRecordSigner:
    """Signs the records one agency side publishes (``KafkaDocumentPublisher``)."""

    def __init__(self, signer: ServingSigner, timeline: AuditTimeline) -> None:
        self._signer = signer
        self._timeline = timeline
        self._regions: dict[str, str] = {}

    async def sign(self, record: AuditRecord) -> AuditRecord:
        if record.signature is not None:
            return record
        return await asyncio.to_thread(self.sign_now, record, datetime.now(UTC))

    def sign_now(self, record: AuditRecord, at: datetime) -> AuditRecord:
        region = self.region_of(record.case_id, record.side)
        prev_hash = self.prev_hash(record.case_id, record.side, record.sequence)
        if prev_hash is None:
            # Sequences are assigned max + 1 and timeline rows are never deleted, so this
            # is a damaged timeline; the record goes out unlinked and verify names it.
            log.error(
                "audit record %s/%s/%s: predecessor not in the timeline, published unlinked",
                record.case_id,
                record.side,
                record.sequence,
            )
        return sign_record(self._signer, record, region=region, prev_hash=prev_hash, at=at)

    def region_of(self, case_id: str, side: str) -> str:
        """The case's region on this side (the outgoing region of an outgoing case)."""
        cached = self._regions.get(case_id)
        if cached is not None:
            return cached
        regions = self._timeline.case_regions(case_id)
        subject = _SUBJECT_REGION.match(case_id)
        if regions is not None:
            region = regions[0] if side == "outgoing" else regions[1]
        elif subject is not None:
            region = subject.group(1)
        elif len(self._signer.served) == 1:
            (region,) = self._signer.served
        else:
            raise KeyCustodyError(f"cannot tell which served region case {case_id} belongs to")
        if len(self._regions) >= _REGION_CACHE_SIZE:
            self._regions.clear()
        self._regions[case_id] = region
        return region

    def prev_hash(self, case_id: str, side: Side, sequence: int) -> str | None:
        if sequence == 1:
            return expected_prev_hash(None, 1)
        row = self._row(case_id, sequence - 1)
        return expected_prev_hash(timeline_record(row, side) if row else None, sequence)

    def _row(self, case_id: str, sequence: int) -> CaseEventRow | None:
        with session_scope(self._timeline.engine) as session:
            return session.exec(
                select(CaseEventRow).where(
                    CaseEventRow.case_id == case_id, CaseEventRow.sequence == sequence
                )
            ).first()

    def checkpoints(
        self, side: Side, case_id: str | None, at: datetime
    ) -> Iterator[AuditCheckpoint | KeyCustodyError]:
        """A signed checkpoint of each chain of this side's timeline (or of one case): its
        last sequence and that record's digest. A chain this deployment cannot sign for
        yields the KeyCustodyError instead."""
        heads = select(CaseEventRow.case_id, func.max(col(CaseEventRow.sequence))).group_by(
            col(CaseEventRow.case_id)
        )
        if case_id is not None:
            heads = heads.where(CaseEventRow.case_id == case_id)
        with session_scope(self._timeline.engine) as session:
            found = sorted(session.exec(heads.order_by(col(CaseEventRow.case_id))).all())
        for case, last in found:
            row = self._row(case, last)
            assert row is not None
            try:
                yield sign_checkpoint(
                    self._signer,
                    side=side,
                    region=self.region_of(case, side),
                    case_id=case,
                    last_sequence=last,
                    head_hash=timeline_record(row, side).content_digest(),
                    at=at,
                )
            except KeyCustodyError as exc:
                yield exc
