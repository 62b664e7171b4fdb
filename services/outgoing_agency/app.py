"""The outgoing agency's process: HTTP API for its clerks and integrators, and the Kafka
entry point for platform documents addressed to the regions it serves."""

from __future__ import annotations

import contextlib
import logging
from datetime import date, datetime

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import update
from sqlmodel import col, select
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from contracts.documents import MAX_FEN, FreeText, TransferRequested
from contracts.envelope import Envelope
from domain.continuity import last_paid_month_problem
from domain.identity import fingerprint, is_valid_resident_id, mask_id, normalize_resident_id
from domain.matching import main_remittance_id
from domain.vocabulary import OutgoingStatus
from services.common.api import (
    ErrorBody,
    owned_case,
    problem,
)
from services.common.app_factory import build_agency_app
from services.common.auth import Principal, require_party
from services.common.bootstrap import Service, build_service
from services.common.db import session_scope
from services.common.inbound import signal
from services.common.repository import utcnow
from services.common.tables import CaseRow
from services.outgoing_agency.certificates import create_certificate_router
from services.outgoing_agency.tables import OUTGOING_TABLES, EnrolmentRow
from workflows.clock import CHINA_TZ
from workflows.outgoing.types import OutgoingCaseInput, ResidualInput, StopAnswerInput
from workflows.outgoing.workflows import (
    OutgoingCaseWorkflow,
    OutgoingResidualWorkflow,
    OutgoingStopAnswerWorkflow,
    outgoing_residual_workflow_id,
    outgoing_stop_answer_workflow_id,
    outgoing_workflow_id,
    residual_remittance_id,
)
from workflows.types import ClerkAction

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


class RetryIn(BaseModel):
    reason: FreeText = ""


class LateContributionIn(BaseModel):
    contribution_id: str = Field(pattern=r"^[A-Za-z0-9-]{1,40}$")
    amount_fen: int = Field(gt=0, le=MAX_FEN)


class EnrolmentInTransfer(Exception):
    """The record is claimed by an open case or transferred out: it is not edited."""


def upsert_enrolment(service: Service, body: EnrolmentIn) -> EnrolmentRow:
    """Insert or update a record; an update is conditional on no case holding the record
    (R5/R16: the balance a case checked is the balance it debits), so a check claiming it
    at the same moment wins or loses as a whole (EnrolmentInTransfer)."""
    id_number = normalize_resident_id(body.id_number)
    values = body.model_dump() | {"id_number": id_number}
    with session_scope(service.engine) as session:
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


def create_app(service: Service | None = None) -> FastAPI:  # noqa: C901 (issue 15: split)
    service = service or build_service("outgoing", OUTGOING_TABLES)
    settings = service.settings

    async def route(envelope: Envelope) -> str:
        """Hand a verified platform document to its case workflow (the Kafka entry point
        in services/common/app_factory.py calls this)."""
        client = temporal()
        if envelope.type == "Receipt":
            return "receipt"
        if envelope.type == "TransferRequested":
            record_case(service, envelope)
            try:
                await client.start_workflow(
                    OutgoingCaseWorkflow.run,
                    OutgoingCaseInput(case_id=envelope.case_id, region=envelope.to_region),
                    id=outgoing_workflow_id(envelope.case_id),
                    task_queue=settings.task_queue("outgoing"),
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    start_signal="document",
                    start_signal_args=[envelope],
                )
            except WorkflowAlreadyStartedError:
                return "late_after_close"
            return "started"
        if envelope.type == "WithdrawalRequested":
            outcome = await signal(
                client.get_workflow_handle(outgoing_workflow_id(envelope.case_id)), envelope
            )
            if outcome != "late_after_close":
                return outcome
            # The case closed meanwhile: still answered, from the records.
            with contextlib.suppress(WorkflowAlreadyStartedError):
                await client.start_workflow(
                    OutgoingStopAnswerWorkflow.run,
                    StopAnswerInput(envelope=envelope, region=envelope.to_region),
                    id=outgoing_stop_answer_workflow_id(envelope.message_id),
                    task_queue=settings.task_queue("outgoing"),
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                )
            return "answered_after_close"
        remittance_id = getattr(envelope.document(), "remittance_id", None)
        if remittance_id and remittance_id != main_remittance_id(envelope.case_id):
            return await signal(
                client.get_workflow_handle(outgoing_residual_workflow_id(remittance_id)), envelope
            )
        return await signal(
            client.get_workflow_handle(outgoing_workflow_id(envelope.case_id)), envelope
        )

    agency = build_agency_app(
        service,
        title="Outgoing agency (转出地经办机构) API",
        description="Enrolment records, transfer-out cases and their timelines.",
        route=route,
        workflow_id=outgoing_workflow_id,
    )
    app, temporal = agency.app, agency.temporal
    a_clerk = agency.a_clerk
    an_operator = Depends(service.auth.require("operator"))

    # Who acts for which side (docs/authorisation.md): every route that changes a case or
    # a record here is the outgoing agency's and needs the case's from_region (or the
    # record's region); reading takes either.
    @app.put("/v1/enrolments", response_model=EnrolmentOut)
    async def put_enrolment(
        body: EnrolmentIn, principal: Principal = an_operator
    ) -> EnrolmentOut | JSONResponse:
        # A record's region is the outgoing region of every case that will check it.
        require_party(principal, body.region, "outgoing")
        if not is_valid_resident_id(body.id_number):
            return problem(
                422, "INVALID_ID_NUMBER", "the ID number's check digit is wrong", rule="R9"
            )
        if body.region not in service.served:
            return problem(422, "NOT_OUR_REGION", f"region {body.region} is not served here")
        try:
            row = upsert_enrolment(service, body)
        except EnrolmentInTransfer:
            return problem(
                409,
                "ENROLMENT_IN_TRANSFER",
                "the enrolment is being transferred out or was transferred out; it is not edited",
                rule="R16",
            )
        assert row.id is not None
        log.info("enrolment record %s upserted by %s", row.id, principal.agency)
        # On the audit trail: who changed which record to what (money and status, never
        # the person's data), a chain of its own per record.
        record = service.repository.append_record_event(
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
        if agency.publisher is not None:
            await agency.publisher.publish_audit(record)
        return EnrolmentOut(
            record_id=row.id,
            person=mask_id(row.id_number),
            region=row.region,
            status=row.status,
            balance_fen=row.balance_fen,
        )

    @app.post(
        "/v1/cases/{case_id}/actions/retry-step",
        status_code=202,
        responses={409: {"model": ErrorBody}},
    )
    async def retry_step(
        case_id: str, body: RetryIn, principal: Principal = a_clerk
    ) -> JSONResponse:
        """Re-run a step the case was escalated for (STEP_FAILED: the records refused the
        transfer-out and nothing was debited), after checking the record."""
        row = owned_case(service.repository, case_id, principal)
        require_party(principal, row.from_region, "outgoing")
        if row.terminal or not row.escalated:
            return problem(409, "NOT_APPLICABLE", "the case has no failed step to retry")
        await (
            temporal()
            .get_workflow_handle(outgoing_workflow_id(case_id))
            .signal("retry_step", ClerkAction(clerk=principal.agency, reason=body.reason))
        )
        log.info("clerk action retry-step on case %s by %s", case_id, principal.agency)
        return JSONResponse(status_code=202, content={"case_id": case_id, "action": "retry-step"})

    @app.post("/v1/cases/{case_id}/late-contributions", status_code=202)
    async def late_contribution(
        case_id: str,
        body: LateContributionIn,
        principal: Principal = an_operator,
    ) -> JSONResponse:
        row = owned_case(service.repository, case_id, principal)
        require_party(principal, row.from_region, "outgoing")
        if row.status != "completed":
            # R16: a residual follows a balance the incoming agency has confirmed credited;
            # before that it could meet a case whose own balance is still unsettled.
            return problem(
                409,
                "NOT_SETTLED_YET",
                "the case's balance is not confirmed credited yet; post it once it completes",
                rule="R16",
            )
        if (row.application or {}).get("balance_action") != "remit":
            # R16 with R19-R22: a residual follows only a balance that was remitted (not
            # one paid to the bank, kept usable under R20, or bound for a resident scheme).
            return problem(
                409,
                "RESIDUAL_NOT_ALLOWED",
                "this case's balance was not remitted, so no residual follows it",
                rule="R16",
            )
        remittance_id = residual_remittance_id(case_id, body.contribution_id)
        try:
            await temporal().start_workflow(
                OutgoingResidualWorkflow.run,
                ResidualInput(
                    case_id=case_id,
                    contribution_id=body.contribution_id,
                    amount_fen=body.amount_fen,
                    region=row.from_region,
                    to_region=row.to_region,
                ),
                id=outgoing_residual_workflow_id(remittance_id),
                task_queue=settings.task_queue("outgoing"),
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            pass  # the same contribution posted twice: one residual remittance
        return JSONResponse(status_code=202, content={"remittance_id": remittance_id})

    # R10/R23: the insurance certificate of a case gone by the offline channel, printed.
    app.include_router(create_certificate_router(service, agency))
    return app


def record_case(service: Service, envelope: Envelope) -> None:
    """The outgoing view of a case, created (or refreshed by a correction) on request."""
    request = envelope.document_as(TransferRequested)
    now = utcnow()
    with session_scope(service.engine) as session:
        row = session.get(CaseRow, envelope.case_id)
        if row is None:
            row = CaseRow(
                case_id=envelope.case_id,
                status=OutgoingStatus.RECEIVED.value,
                status_since=now,
                from_region=request.from_region,
                to_region=request.to_region,
                from_scheme=request.from_scheme,
                to_scheme=request.to_scheme,
                person_key=fingerprint(request.person.id_number),
                id_masked=mask_id(request.person.id_number),
                created_at=now,
                updated_at=now,
            )
        row.application = {**row.application, **request.model_dump(mode="json")}
        session.add(row)
