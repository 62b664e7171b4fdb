"""The outgoing agency's enrolment records (R5-R9 are checked against them): the record an
operator puts, and the use case that records it (RecordEnrolment), audited. SQL runs off
the event loop (services/incoming_agency/cases.py says the rule)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime

from pydantic import BaseModel, Field, model_validator
from sqlalchemy import update
from sqlmodel import col, select

from contracts.documents import MAX_FEN, AuditRecord
from domain.continuity import last_paid_month_problem
from domain.identity import fingerprint, is_valid_resident_id, mask_id, normalize_resident_id
from services.common.api import Refused
from services.common.auth import Principal, require_party
from services.common.bootstrap import Service
from services.common.db import serialise_on, session_scope
from services.outgoing_agency.tables import EnrolmentRow
from workflows.clock import CHINA_TZ

log = logging.getLogger("medtransfer.outgoing")


class EnrolmentIn(BaseModel):
    """An enrolment record of a region this agency serves (upserted by ID number + region)."""

    id_number: str = Field(repr=False)
    name: str = Field(min_length=1, max_length=100, repr=False)
    region: str = Field(pattern=r"^\d{6}$")
    scheme: str = Field(pattern="^(employee|resident)$")
    status: str = Field(pattern="^(active|suspended)$")
    enrolled_since: date
    suspended_on: date | None = None
    arrears_fen: int = Field(default=0, ge=0, le=MAX_FEN)
    account_status: str = Field(default="normal", pattern="^(normal|frozen)$")
    balance_fen: int = Field(default=0, ge=0, le=MAX_FEN)
    contribution_months: int = Field(default=0, ge=0, le=1200)
    also_active_in: str | None = Field(default=None, pattern=r"^\d{6}$")
    retired: bool = Field(default=False, description="R21: the person draws a pension here")
    last_paid_month: date | None = Field(
        default=None,
        description="R25-R27: the last month contributed for, as its first day (YYYY-MM-01)",
    )

    @model_validator(mode="after")
    def _last_paid_month_fits(self) -> EnrolmentIn:
        today = datetime.now(CHINA_TZ).date()
        problem = last_paid_month_problem(
            self.last_paid_month, self.enrolled_since, self.suspended_on, today
        )
        if problem is not None:
            raise ValueError(problem)
        return self


class EnrolmentOut(BaseModel):
    record_id: int
    person: str
    region: str
    status: str
    balance_fen: int


class EnrolmentInTransfer(Exception):
    """The record is claimed by an open case or transferred out: it is not edited."""


def upsert_enrolment(service: Service, body: EnrolmentIn) -> EnrolmentRow:
    """Insert or update a record; an update is conditional on no case holding the record
    (R5/R16: the balance a case checked is the balance it debits), so a check claiming it
    at the same moment wins or loses as a whole (EnrolmentInTransfer)."""
    id_number = normalize_resident_id(body.id_number)
    values = body.model_dump() | {"id_number": id_number}
    with session_scope(service.engine) as session:
        # One person's record in one region is one row: two PUTs of a new record at once
        # (threads, API replicas) must not both find none and both insert it.
        serialise_on(session, f"enrolment:{fingerprint(id_number)}:{body.region}")
        row = session.exec(
            select(EnrolmentRow).where(
                EnrolmentRow.id_number == id_number, EnrolmentRow.region == body.region
            )
        ).first()
        if row is None:
            row = EnrolmentRow(**values)
            session.add(row)
            session.flush()
            session.refresh(row)
            return row
        if row.claimed_by_case is not None or row.transferred_case_id is not None:
            raise EnrolmentInTransfer
        edited = session.execute(
            update(EnrolmentRow)
            .where(
                col(EnrolmentRow.id) == row.id,
                col(EnrolmentRow.claimed_by_case).is_(None),
                col(EnrolmentRow.transferred_case_id).is_(None),
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if not edited.rowcount:  # type: ignore[attr-defined]
            raise EnrolmentInTransfer
        session.refresh(row)
        return row


@dataclass(frozen=True)
class RecordEnrolment:
    """An operator's record of a region this agency serves, inserted or updated while no
    case holds it (R16), and put on the audit trail: who changed which record to what
    (money and status, never the person's data), a chain of its own per record."""

    service: Service
    publish_audit: Callable[[AuditRecord], Awaitable[None]] | None  # the Kafka port

    async def __call__(self, body: EnrolmentIn, principal: Principal) -> EnrolmentOut | Refused:
        # A record's region is the outgoing region of every case that will check it.
        require_party(principal, body.region, "outgoing")
        if not is_valid_resident_id(body.id_number):
            return Refused(422, "INVALID_ID_NUMBER", "the ID number's check digit is wrong", "R9")
        if body.region not in self.service.served:
            return Refused(422, "NOT_OUR_REGION", f"region {body.region} is not served here")
        recorded = await asyncio.to_thread(self._record, body, principal)
        if isinstance(recorded, Refused):
            return recorded
        row, record = recorded
        if self.publish_audit is not None:
            await self.publish_audit(record)
        assert row.id is not None
        return EnrolmentOut(
            record_id=row.id,
            person=mask_id(row.id_number),
            region=row.region,
            status=row.status,
            balance_fen=row.balance_fen,
        )

    def _record(
        self, body: EnrolmentIn, principal: Principal
    ) -> tuple[EnrolmentRow, AuditRecord] | Refused:
        try:
            row = upsert_enrolment(self.service, body)
        except EnrolmentInTransfer:
            return Refused(
                409,
                "ENROLMENT_IN_TRANSFER",
                "the enrolment is being transferred out or was transferred out; it is not edited",
                "R16",
            )
        assert row.id is not None
        log.info("enrolment record %s upserted by %s", row.id, principal.agency)
        record = self.service.repository.append_record_event(
            f"ENROLMENT-{row.region}-{row.id}",
            event="enrolment_upserted",
            detail={
                "operator": principal.agency,
                "status": row.status,
                "balance_fen": row.balance_fen,
                "arrears_fen": row.arrears_fen,
                "account_status": row.account_status,
                "retired": row.retired,
                "contribution_months": row.contribution_months,
                "last_paid_month": None
                if row.last_paid_month is None
                else row.last_paid_month.isoformat(),
            },
        )
        return row, record
