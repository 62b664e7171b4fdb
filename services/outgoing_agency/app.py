"""The outgoing agency's process: HTTP API for its clerks and integrators, and the Kafka
entry point for platform documents addressed to the regions it serves. The routes only
translate HTTP to the use cases (enrolments.py, cases.py) and back; the inbox is
inbox.py's."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import JSONResponse

from services.common.api import ErrorBody, Refused
from services.common.app_factory import build_agency_app
from services.common.auth import Principal
from services.common.bootstrap import Service, build_service
from services.outgoing_agency.cases import (
    LateContributionIn,
    OutgoingWorkflows,
    PostLateContribution,
    RetryIn,
    RetryStep,
)
from services.outgoing_agency.certificates import create_certificate_router
from services.outgoing_agency.enrolments import EnrolmentIn, EnrolmentOut, RecordEnrolment
from services.outgoing_agency.inbox import OutgoingInbox, ReceiveTransferRequest
from services.outgoing_agency.tables import OUTGOING_TABLES
from workflows.outgoing.workflows import outgoing_workflow_id


def create_outgoing_router(
    record_enrolment: RecordEnrolment,
    retry: RetryStep,
    post_late_contribution: PostLateContribution,
    a_clerk: Any,
    an_operator: Any,
) -> APIRouter:
    """Who acts for which side (docs/authorisation.md): every route that changes a case or
    a record here is the outgoing agency's and needs the case's from_region (or the
    record's region); reading takes either."""
    router = APIRouter()

    @router.put("/v1/enrolments", response_model=EnrolmentOut)
    async def put_enrolment(
        body: EnrolmentIn, principal: Principal = an_operator
    ) -> EnrolmentOut | JSONResponse:
        outcome = await record_enrolment(body, principal)
        return outcome.response() if isinstance(outcome, Refused) else outcome

    @router.post(
        "/v1/cases/{case_id}/actions/retry-step",
        status_code=202,
        responses={409: {"model": ErrorBody}},
    )
    async def retry_step(
        case_id: str, body: RetryIn, principal: Principal = a_clerk
    ) -> JSONResponse:
        """Re-run a step the case was escalated for (STEP_FAILED: the records refused the
        transfer-out and nothing was debited), after checking the record."""
        refused = await retry(case_id, principal, body.reason)
        if refused is not None:
            return refused.response()
        return JSONResponse(status_code=202, content={"case_id": case_id, "action": "retry-step"})

    @router.post("/v1/cases/{case_id}/late-contributions", status_code=202)
    async def late_contribution(
        case_id: str,
        body: LateContributionIn,
        principal: Principal = an_operator,
    ) -> JSONResponse:
        outcome = await post_late_contribution(case_id, principal, body)
        if isinstance(outcome, Refused):
            return outcome.response()
        return JSONResponse(status_code=202, content={"remittance_id": outcome})

    return router


def create_app(service: Service | None = None) -> FastAPI:
    service = service or build_service("outgoing", OUTGOING_TABLES)
    # The Temporal client is the agency app's, connected when the app starts.
    workflows = OutgoingWorkflows(
        lambda: agency.temporal(), service.settings.task_queue("outgoing")
    )
    inbox = OutgoingInbox(ReceiveTransferRequest(service, workflows), workflows)
    agency = build_agency_app(
        service,
        title="Outgoing agency (转出地经办机构) API",
        description="Enrolment records, transfer-out cases and their timelines.",
        route=inbox.route,
        workflow_id=outgoing_workflow_id,
    )
    publish_audit = agency.publisher.publish_audit if agency.publisher is not None else None
    router = create_outgoing_router(
        RecordEnrolment(service, publish_audit),
        RetryStep(service.repository, workflows),
        PostLateContribution(service.repository, workflows),
        agency.a_clerk,
        Depends(service.auth.require("operator")),
    )
    agency.app.include_router(router)
    # R10/R23: the insurance certificate of a case gone by the offline channel, printed.
    agency.app.include_router(create_certificate_router(service, agency))
    return agency.app
