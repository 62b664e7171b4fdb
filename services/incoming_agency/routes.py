"""The incoming agency's own /v1 routes: applications, the integrator's progress view (R17),
the person's and the clerk's commands on a case, and the clerk actions' routes. Each
translates HTTP to a use case (applications.py, cases.py, clerk_actions.py) and back.

Who acts for which side (docs/authorisation.md): every route that changes a case here is
the incoming agency's and needs the case's to_region; reading takes either."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from contracts.documents import FreeText
from domain.vocabulary import ClerkActionName
from services.common.api import ErrorBody, Refused, owned_case, problem
from services.common.auth import Principal, require_party
from services.common.bootstrap import Service
from services.common.tables import CaseRow
from services.incoming_agency.applications import (
    Accepted,
    ApplicationIn,
    Rejected,
    SubmitApplication,
    SubmitOut,
)
from services.incoming_agency.cases import (
    OPEN_FOR_WITHDRAWAL,
    CaseCommands,
    CorrectApplication,
    ResolveMismatch,
    Withdraw,
    WithdrawIn,
)
from services.incoming_agency.clerk_actions import CLERK_ACTIONS, PerformClerkAction
from workflows.incoming.types import MismatchResolution

CONFLICT: dict[int | str, dict[str, Any]] = {409: {"model": ErrorBody}}


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


def _holder(row: CaseRow) -> tuple[str, str]:
    if row.status in OUTGOING_HOLDS:
        return (
            f"转出地经办机构（{row.from_region}）",
            f"the outgoing agency ({row.from_region})",
        )
    if row.status in INCOMING_HOLDS:
        return (f"转入地经办机构（{row.to_region}）", f"the incoming agency ({row.to_region})")
    if row.status == "refused_correctable":
        return ("申请人（需补正）", "you: the application needs a correction")
    if row.status == "offline_certificate_issued":  # R10/R23
        return (
            "参保人（请持参保凭证和身份证到转入地经办机构办理）",
            "you: bring the insurance certificate and your ID card to the incoming agency",
        )
    return ("已办结", "nobody: the case is closed")


def progress_of(row: CaseRow) -> ProgressOut:
    holder = _holder(row)
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


class ActionIn(BaseModel):
    reason: FreeText = ""


def submitted_response(outcome: Accepted | Rejected) -> JSONResponse:
    """SubmitApplication's outcome as the API answers it."""
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


def create_application_router(
    service: Service, submit_application: SubmitApplication, any_caller: Any
) -> APIRouter:
    router = APIRouter()

    @router.post(
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
        return submitted_response(await submit_application(body))

    @router.get("/v1/cases/{case_id}/progress", response_model=ProgressOut)
    def progress(case_id: str, principal: Principal = any_caller) -> ProgressOut:
        """For the person and the employer (R17): who holds the case, what is awaited from
        whom by when, the predicted completion date, and what they can do."""
        return progress_of(owned_case(service.repository, case_id, principal))

    return router


def create_case_router(cases: CaseCommands, any_caller: Any, a_clerk: Any) -> APIRouter:
    """The person's (or integrator's) and the clerk's commands on a case."""
    router = APIRouter()

    @router.post("/v1/cases/{case_id}/withdraw", status_code=202, responses=CONFLICT)
    async def withdraw(
        case_id: str,
        body: WithdrawIn,
        principal: Principal = any_caller,
    ) -> JSONResponse:
        outcome = await cases(case_id, principal, Withdraw(body.reason))
        if isinstance(outcome, Refused):
            return outcome.response()
        return JSONResponse(
            status_code=202, content={"case_id": case_id, "withdrawal": "requested"}
        )

    @router.post("/v1/cases/{case_id}/correction", status_code=202, responses=CONFLICT)
    async def correct(
        case_id: str,
        body: ApplicationIn,
        principal: Principal = any_caller,
    ) -> JSONResponse:
        """Correct a soft refusal on the same case (same person and regions); the caller
        is recorded with the correction."""
        outcome = await cases(case_id, principal, CorrectApplication(body))
        if isinstance(outcome, Refused):
            return outcome.response()
        return JSONResponse(status_code=202, content={"case_id": case_id, "correction": "sent"})

    @router.post("/v1/cases/{case_id}/mismatch-resolution", status_code=202, responses=CONFLICT)
    async def resolve_mismatch(
        case_id: str,
        body: MismatchResolution,
        principal: Principal = a_clerk,
    ) -> JSONResponse:
        """A clerk's decision on an amount mismatch (R15); the clerk is the caller."""
        outcome = await cases(case_id, principal, ResolveMismatch(body))
        if isinstance(outcome, Refused):
            return outcome.response()
        return JSONResponse(
            status_code=202, content={"case_id": case_id, "decision": body.decision}
        )

    return router


def _clerk_action_route(
    action: ClerkActionName, perform: PerformClerkAction, a_clerk: Any
) -> Callable[..., Awaitable[JSONResponse]]:
    async def clerk_action(
        case_id: str, body: ActionIn, principal: Principal = a_clerk
    ) -> JSONResponse:
        status, message = await perform(case_id, principal, action, body.reason)
        if status != 202:
            return problem(status, "NOT_APPLICABLE", message)
        return JSONResponse(status_code=202, content={"case_id": case_id, "action": action})

    return clerk_action


def create_clerk_action_router(perform: PerformClerkAction, a_clerk: Any) -> APIRouter:
    """POST /v1/cases/{case_id}/actions/{action} for each clerk action with a route of its
    own (clerk_actions.CLERK_ACTIONS)."""
    router = APIRouter()
    for action, rule in CLERK_ACTIONS.items():
        if rule.api_doc is None:
            continue
        router.add_api_route(
            f"/v1/cases/{{case_id}}/actions/{action}",
            _clerk_action_route(action, perform, a_clerk),
            methods=["POST"],
            status_code=202,
            responses=CONFLICT,
            name=action.replace("-", "_"),
            description=rule.api_doc,
        )
    return router
