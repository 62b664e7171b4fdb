"""The incoming agency's process: the HTTP API integrators submit applications to, and the
Kafka entry point for platform documents coming back from outgoing agencies."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date
from typing import Annotated, Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from contracts.documents import (
    MAX_FREE_TEXT,
    BalanceRemitted,
    BankAccount,
    FreeText,
    PersonIdentity,
    TransferRequested,
)
from contracts.envelope import Envelope
from domain.identity import (
    fingerprint,
    normalize_resident_id,
    personal_data_in_text,
)
from domain.vocabulary import ClerkActionName
from services.common.api import (
    ErrorBody,
    owned_case,
    problem,
)
from services.common.app_factory import build_agency_app
from services.common.auth import Principal, require_party
from services.common.bootstrap import Service, build_service
from services.common.inbound import HELD, signal
from services.common.tables import CaseRow
from services.common.throttle import LoginThrottle
from services.incoming_agency.applications import (
    ApplicationIn,
    Rejected,
    SubmitApplication,
    SubmitOut,
    case_input,
)
from services.incoming_agency.certificates import create_certificate_router
from services.incoming_agency.progress import ProgressRecords
from services.incoming_agency.public import create_public_router
from services.incoming_agency.records import IncomingRecordsSql
from services.incoming_agency.tables import INCOMING_TABLES
from services.ops.dashboard import create_ops_router
from services.ops.sessions import OpsSessions
from workflows.incoming.types import (
    CorrectionSignal,
    IncomingResidualInput,
    MismatchResolution,
    WithdrawSignal,
)
from workflows.incoming.workflows import (
    IncomingCaseWorkflow,
    IncomingResidualWorkflow,
    incoming_residual_workflow_id,
    incoming_workflow_id,
)
from workflows.types import ClerkAction

log = logging.getLogger("medtransfer.incoming")

OPEN_FOR_WITHDRAWAL = {
    "submitted",
    "waiting_region_connection",
    "awaiting_transfer_out",
    "refused_correctable",
}


class ProgressOut(BaseModel):
    """Where my transfer is (R17), for the person and the employer: Chinese first."""

    case_id: str
    status: str
    holder_zh: str
    holder_en: str
    awaiting_zh: str
    awaiting_en: str
    awaiting_by: date | None
    predicted_completion: date | None
    you_can_zh: list[str]
    you_can_en: list[str]


OUTGOING_HOLDS = {
    "submitted",
    "waiting_region_connection",
    "awaiting_transfer_out",
    "withdrawal_requested",  # the outgoing agency answers the withdrawal
}
INCOMING_HOLDS = {"transfer_in", "awaiting_balance", "balance_mismatch", "exception"}


def progress_of(row: CaseRow) -> ProgressOut:
    if row.status in OUTGOING_HOLDS:
        holder = (
            f"转出地经办机构（{row.from_region}）",
            f"the outgoing agency ({row.from_region})",
        )
    elif row.status in INCOMING_HOLDS:
        holder = (f"转入地经办机构（{row.to_region}）", f"the incoming agency ({row.to_region})")
    elif row.status == "refused_correctable":
        holder = ("申请人（需补正）", "you: the application needs a correction")
    elif row.status == "offline_certificate_issued":  # R10/R23
        holder = (
            "参保人（请持参保凭证和身份证到转入地经办机构办理）",
            "you: bring the insurance certificate and your ID card to the incoming agency",
        )
    else:
        holder = ("已办结", "nobody: the case is closed")
    can_zh: list[str] = []
    can_en: list[str] = []
    if row.status == "refused_correctable":
        can_zh.append(f"在{row.awaiting_by}前按不予办理原因补正申请（如补缴欠费）")
        can_en.append(f"correct the application by {row.awaiting_by} (e.g. pay the arrears)")
    if row.status in OUTGOING_HOLDS and not (row.application or {}).get("bank_account"):
        can_zh.append("提供本人银行账户，余额无法直接划转时可支付至该账户（R19）")
        can_en.append(
            "give your own bank account, so the balance can be paid there if it cannot be remitted (R19)"
        )
    if row.status in OPEN_FOR_WITHDRAWAL:
        can_zh.append("在转出前撤回申请")
        can_en.append("withdraw the application before transfer-out")
    due = (row.deadlines or {}).get("total_due")
    return ProgressOut(
        case_id=row.case_id,
        status=row.status,
        holder_zh=holder[0],
        holder_en=holder[1],
        awaiting_zh=(row.awaiting_what and f"等待：{row.awaiting_what}（{row.awaiting_from}）")
        or "无",
        awaiting_en=(
            row.awaiting_what and f"waiting for {row.awaiting_what} from {row.awaiting_from}"
        )
        or "nothing",
        awaiting_by=row.awaiting_by,
        predicted_completion=None if row.terminal or not due else date.fromisoformat(due),
        you_can_zh=can_zh,
        you_can_en=can_en,
    )


def retry_statuses(row: CaseRow) -> set[str]:
    """Where a clerk's retry of a step applies: a held sheet (``exception``), or any open
    escalated case (a step failed and waits; the workflow ignores a retry nothing awaits)."""
    if row.terminal:
        return set()
    return {"exception", row.status} if row.escalated else {"exception"}


def stop_refusal(row: CaseRow, allowed: set[str]) -> tuple[str, str] | None:
    """Why a withdrawal, cancellation or offline switch is not asked for (again): one
    stop per case is pursued, and one the outgoing agency refused stays refused."""
    stop = (row.facts or {}).get("stop")
    if stop == "refused":
        return (
            "TOO_LATE_TO_WITHDRAW",
            "the outgoing agency has transferred the case out; it goes on to its credit",
        )
    if stop == "requested" or row.status == "withdrawal_requested":
        return "STOP_ALREADY_REQUESTED", "a withdrawal of this case awaits the outgoing agency"
    if row.status not in allowed:
        return "TOO_LATE_TO_WITHDRAW", f"a case in status {row.status} can no longer be withdrawn"
    return None


class ActionIn(BaseModel):
    reason: FreeText = ""


class WithdrawIn(BaseModel):
    reason: Annotated[FreeText, Field(min_length=1)]


def free_text_problem(text: str) -> str | None:
    """Why a typed reason is refused (the operations page's forms are not pydantic
    bodies): checked before anything is signalled or written."""
    if len(text) > MAX_FREE_TEXT:
        return f"the reason is longer than {MAX_FREE_TEXT} characters"
    if personal_data_in_text(text):
        return "the reason must not carry an ID, phone or account number"
    return None


CORRECTION_KEEPS_CASE = "a correction keeps the person (same ID number) and the regions"


def corrected_request(row: CaseRow, body: ApplicationIn) -> TransferRequested | None:
    """The corrected contact letter on the same case after a soft refusal, or None when
    the correction would change the person or the regions (that is a new application)."""
    if (
        fingerprint(body.person.id_number) != row.person_key
        or body.from_region != row.from_region
        or body.to_region != row.to_region
    ):
        return None
    original = TransferRequested.model_validate(row.application)
    return original.model_copy(
        update={
            "person": PersonIdentity(
                id_number=normalize_resident_id(body.person.id_number), name=body.person.name
            ),
            "from_scheme": body.from_scheme,
            "to_scheme": body.to_scheme,
            "reason": body.reason,
            "resettled_retiree": body.resettled_retiree,
            "bank_account": BankAccount(**body.bank_account.model_dump())
            if body.bank_account
            else original.bank_account,
        }
    )


def correction_from_form(row: CaseRow, fields: Mapping[str, Any]) -> ApplicationIn:
    """The correction API's body from the operations page's form: the regions are the
    case's, and a name or application reason left blank keeps the one on file. The clerk
    types the ID number from the corrected document, which must be the case's person's.
    Raises ValidationError like the API would."""
    original = TransferRequested.model_validate(row.application)
    return ApplicationIn.model_validate(
        {
            "person": {
                "id_number": fields.get("id_number") or "",
                "name": fields.get("name") or original.person.name,
            },
            "from_region": row.from_region,
            "to_region": row.to_region,
            "from_scheme": fields.get("from_scheme") or original.from_scheme,
            "to_scheme": fields.get("to_scheme") or original.to_scheme,
            "reason": fields.get("reason") or original.reason,
            "resettled_retiree": bool(fields.get("resettled_retiree")),
            "bank_account": fields.get("bank_account"),
        }
    )


def create_app(service: Service | None = None) -> FastAPI:  # noqa: C901 (issue 15: split)
    service = service or build_service("incoming", INCOMING_TABLES)
    settings = service.settings
    records = IncomingRecordsSql(service.engine)
    progress_records = ProgressRecords(service.engine)

    async def route(envelope: Envelope) -> str:
        """Hand a verified platform document to its case workflow (the Kafka entry point
        in services/common/app_factory.py calls this)."""
        client = temporal()
        if envelope.type == "Receipt":
            return "receipt"
        if envelope.type == "BalanceRemitted" and envelope.document_as(BalanceRemitted).residual:
            remitted = envelope.document_as(BalanceRemitted)
            if not records.residual_allowed(envelope.case_id):
                # R16: a residual follows only a balance remitted and credited here.
                return f"{HELD}RESIDUAL_NOT_ALLOWED"
            try:
                await client.start_workflow(
                    IncomingResidualWorkflow.run,
                    IncomingResidualInput(envelope=envelope),
                    id=incoming_residual_workflow_id(remitted.remittance_id),
                    task_queue=settings.task_queue("incoming"),
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                )
            except WorkflowAlreadyStartedError:
                return "duplicate_residual"
            return "started"
        return await signal(
            client.get_workflow_handle(incoming_workflow_id(envelope.case_id)), envelope
        )

    agency = build_agency_app(
        service,
        title="Incoming agency (转入地经办机构) API",
        description="Submit and follow transfers of basic medical insurance between regions.",
        route=route,
        workflow_id=incoming_workflow_id,
    )
    app, temporal = agency.app, agency.temporal
    any_caller, a_clerk = agency.any_caller, agency.a_clerk

    # Who acts for which side (docs/authorisation.md): every route that changes a case
    # here is the incoming agency's and needs the case's to_region; reading takes either.
    async def start_case(row: CaseRow) -> None:
        try:
            await temporal().start_workflow(
                IncomingCaseWorkflow.run,
                case_input(row),
                id=incoming_workflow_id(row.case_id),
                task_queue=settings.task_queue("incoming"),
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            pass  # started by an earlier attempt of this same submission

    submit_application = SubmitApplication(service, start_case, progress_records)

    @app.post(
        "/v1/applications",
        status_code=201,
        response_model=SubmitOut,
        responses={
            200: {
                "model": SubmitOut,
                "description": "An open case for the same person "
                "and regions exists; it is returned",
            },
            422: {"model": ErrorBody},
            503: {"model": ErrorBody},
        },
    )
    async def submit(body: ApplicationIn, principal: Principal = any_caller) -> JSONResponse:
        """Accept an application (R11) and start its case; refusals come back as 422 with
        reason codes and the rule (R1, R3, ...), in Chinese and English."""
        require_party(principal, body.to_region, "incoming")
        outcome = await submit_application(body)
        if isinstance(outcome, Rejected):
            content = outcome.body.model_dump(exclude_none=True)
            return JSONResponse(status_code=outcome.status, content=content)
        out = SubmitOut(
            case_id=outcome.row.case_id,
            status=outcome.row.status,
            duplicate_of_open_case=outcome.duplicate,
            case_url=f"/v1/cases/{outcome.row.case_id}",
            access_secret=outcome.access_secret,
        )
        # The answer carries the access secret in clear (once): never kept by a cache.
        return JSONResponse(
            status_code=200 if outcome.duplicate else 201,
            content=out.model_dump(),
            headers={"Cache-Control": "no-store"},
        )

    @app.get("/v1/cases/{case_id}/progress", response_model=ProgressOut)
    async def progress(case_id: str, principal: Principal = any_caller) -> ProgressOut:
        """For the person and the employer (R17): who holds the case, what is awaited from
        whom by when, the predicted completion date, and what they can do."""
        return progress_of(owned_case(service.repository, case_id, principal))

    @app.post(
        "/v1/cases/{case_id}/withdraw", status_code=202, responses={409: {"model": ErrorBody}}
    )
    async def withdraw(
        case_id: str,
        body: WithdrawIn,
        principal: Principal = any_caller,
    ) -> JSONResponse:
        row = owned_case(service.repository, case_id, principal)
        require_party(principal, row.to_region, "incoming")
        refused = stop_refusal(row, OPEN_FOR_WITHDRAWAL)
        if refused is not None:
            return problem(409, refused[0], refused[1], rule="R16")
        await (
            temporal()
            .get_workflow_handle(incoming_workflow_id(case_id))
            .signal(IncomingCaseWorkflow.withdraw, WithdrawSignal(reason=body.reason))
        )
        # Answered by the outgoing agency: accepted before transfer-out (the case ends
        # "withdrawn"), or refused as too late (it goes on to its credit).
        return JSONResponse(
            status_code=202, content={"case_id": case_id, "withdrawal": "requested"}
        )

    @app.post(
        "/v1/cases/{case_id}/correction", status_code=202, responses={409: {"model": ErrorBody}}
    )
    async def correct(
        case_id: str,
        body: ApplicationIn,
        principal: Principal = any_caller,
    ) -> JSONResponse:
        """Correct a soft refusal on the same case (same person and regions); the caller
        is recorded with the correction."""
        row = owned_case(service.repository, case_id, principal)
        require_party(principal, row.to_region, "incoming")
        if row.status != "refused_correctable":
            return problem(
                409, "NOT_CORRECTABLE", f"a case in status {row.status} takes no correction"
            )
        corrected = corrected_request(row, body)
        if corrected is None:
            return problem(422, "CORRECTION_CHANGES_CASE", CORRECTION_KEEPS_CASE)
        await (
            temporal()
            .get_workflow_handle(incoming_workflow_id(case_id))
            .signal(
                IncomingCaseWorkflow.accept_correction,
                CorrectionSignal(request=corrected, submitted_by=principal.agency),
            )
        )
        return JSONResponse(status_code=202, content={"case_id": case_id, "correction": "sent"})

    @app.post(
        "/v1/cases/{case_id}/mismatch-resolution",
        status_code=202,
        responses={409: {"model": ErrorBody}},
    )
    async def resolve_mismatch(
        case_id: str,
        body: MismatchResolution,
        principal: Principal = a_clerk,
    ) -> JSONResponse:
        """A clerk's decision on an amount mismatch (R15); the clerk is the caller."""
        body = body.model_copy(update={"clerk": principal.agency})
        row = owned_case(service.repository, case_id, principal)
        require_party(principal, row.to_region, "incoming")
        if row.status != "balance_mismatch":
            return problem(
                409, "NO_MISMATCH", f"case {case_id} has no open amount mismatch", rule="R15"
            )
        await (
            temporal()
            .get_workflow_handle(incoming_workflow_id(case_id))
            .signal(IncomingCaseWorkflow.resolve_mismatch, body)
        )
        return JSONResponse(
            status_code=202, content={"case_id": case_id, "decision": body.decision}
        )

    async def perform_action(
        case_id: str,
        principal: Principal,
        action: str,
        reason: str,
        correction: Mapping[str, Any] | None = None,
    ) -> tuple[int, str]:
        """A clerk action by name, shared by the API and the operations page: checked
        against the case's state, signalled to its workflow, which records who and why.
        ``correction`` carries the corrected document's fields for accept-correction.
        Every one of these actions is the incoming agency's (AuthError otherwise)."""
        row = owned_case(service.repository, case_id, principal)
        require_party(principal, row.to_region, "incoming")
        text_problem = free_text_problem(reason)
        if text_problem is not None:
            return 422, text_problem
        clerk_action = ClerkAction(clerk=principal.agency, reason=reason)
        accepted: CorrectionSignal | None = None
        if action == ClerkActionName.ACCEPT_CORRECTION and row.status == "refused_correctable":
            try:
                corrected = corrected_request(row, correction_from_form(row, correction or {}))
            except ValidationError as exc:
                # Field names only: the values are the person's data.
                fields = ",".join(".".join(map(str, e["loc"])) for e in exc.errors()[:5])
                return 422, f"the corrected document is incomplete or invalid: {fields}"
            if corrected is None:
                return 422, CORRECTION_KEEPS_CASE
            accepted = CorrectionSignal(
                request=corrected, submitted_by=principal.agency, reason=reason
            )
        allowed, signal, payload = {
            ClerkActionName.RETRY_DELIVERY: (
                {"waiting_region_connection"},
                "retry_delivery",
                clerk_action,
            ),
            ClerkActionName.OFFLINE_CHANNEL: (
                {"waiting_region_connection", "awaiting_transfer_out"},
                "switch_offline",
                clerk_action,
            ),
            ClerkActionName.CANCEL: (
                OPEN_FOR_WITHDRAWAL,
                "withdraw",
                WithdrawSignal(reason=reason or "cancelled", clerk=principal.agency),
            ),
            ClerkActionName.CREDIT_RECEIVED: (
                {"balance_mismatch"},
                "resolve_mismatch",
                MismatchResolution(decision="credit_received", clerk=principal.agency, note=reason),
            ),
            ClerkActionName.RETURN_TO_SENDER: (
                {"balance_mismatch"},
                "resolve_mismatch",
                MismatchResolution(
                    decision="return_to_sender", clerk=principal.agency, note=reason
                ),
            ),
            # R5-R8: a soft refusal is corrected on the same case and the request sent again.
            ClerkActionName.ACCEPT_CORRECTION: (
                {"refused_correctable"},
                "accept_correction",
                accepted,
            ),
            # A step the case was escalated for (STEP_FAILED) or a held sheet, re-run.
            ClerkActionName.RETRY_STEP: (retry_statuses(row), "retry_step", clerk_action),
        }[ClerkActionName(action)]
        if row.status not in allowed:
            return 409, f"a case in status {row.status} does not take the action {action}"
        if signal in ("withdraw", "switch_offline"):
            refused = stop_refusal(row, allowed)
            if refused is not None:
                return 409, refused[1]
        await temporal().get_workflow_handle(incoming_workflow_id(case_id)).signal(signal, payload)
        log.info("clerk action %s on case %s by %s", action, case_id, principal.agency)
        return 202, f"{action} requested"

    async def clerk_action(
        case_id: str, principal: Principal, action: str, reason: str
    ) -> JSONResponse:
        status, message = await perform_action(case_id, principal, action, reason)
        if status != 202:
            return problem(status, "NOT_APPLICABLE", message)
        return JSONResponse(status_code=202, content={"case_id": case_id, "action": action})

    # The operations page's sign-in sessions and failed-login counts live in this process.
    app.state.ops_sessions, app.state.ops_throttle = OpsSessions(), LoginThrottle()
    app.include_router(
        create_ops_router(service, perform_action, app.state.ops_sessions, app.state.ops_throttle)
    )
    # R17: the person's and the employer's own view, without a key, throttled like sign-in.
    app.state.progress_throttle = LoginThrottle()
    app.include_router(create_public_router(service, progress_records, app.state.progress_throttle))

    @app.post(
        "/v1/cases/{case_id}/actions/retry-delivery",
        status_code=202,
        responses={409: {"model": ErrorBody}},
    )
    async def retry_delivery(
        case_id: str,
        body: ActionIn,
        principal: Principal = a_clerk,
    ) -> JSONResponse:
        """Re-check now whether a region that was not connected has gone live (R23)."""
        return await clerk_action(case_id, principal, ClerkActionName.RETRY_DELIVERY, body.reason)

    @app.post(
        "/v1/cases/{case_id}/actions/retry-step",
        status_code=202,
        responses={409: {"model": ErrorBody}},
    )
    async def retry_step(
        case_id: str,
        body: ActionIn,
        principal: Principal = a_clerk,
    ) -> JSONResponse:
        """Re-run a step the case was escalated for (STEP_FAILED), or let a held sheet go on
        after checking it with the outgoing agency (R13)."""
        return await clerk_action(case_id, principal, ClerkActionName.RETRY_STEP, body.reason)

    @app.post(
        "/v1/cases/{case_id}/actions/offline-channel",
        status_code=202,
        responses={409: {"model": ErrorBody}},
    )
    async def offline_channel(
        case_id: str,
        body: ActionIn,
        principal: Principal = a_clerk,
    ) -> JSONResponse:
        """Continue the case by the offline channel (R23, after an escalation)."""
        return await clerk_action(case_id, principal, ClerkActionName.OFFLINE_CHANNEL, body.reason)

    @app.post(
        "/v1/cases/{case_id}/actions/cancel", status_code=202, responses={409: {"model": ErrorBody}}
    )
    async def cancel(
        case_id: str,
        body: ActionIn,
        principal: Principal = a_clerk,
    ) -> JSONResponse:
        """Cancel a case before transfer-out, with a reason; the outgoing agency is told."""
        return await clerk_action(case_id, principal, ClerkActionName.CANCEL, body.reason)

    # R10/R23: the insurance certificate the person brings, loaded at the counter.
    app.include_router(create_certificate_router(service, agency))
    return app
