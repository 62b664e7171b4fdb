"""HTTP pieces both services share: errors that never echo personal data, health,
the case views, region connectivity administration."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError, RPCStatusCode

from domain.articles import citation_en, citation_zh
from domain.calendar import WorkingDayCalendar
from services.common.auth import (
    AuthError,
    Principal,
    check_regions,
    require_every_region,
    require_party,
)
from services.common.repository import CaseRepository
from services.common.tables import CaseEventRow, CaseRow

if TYPE_CHECKING:
    from services.common.bootstrap import Service
    from services.common.inbound import InboundHandler


class ErrorReason(BaseModel):
    code: str
    rule: str | None = None
    message_en: str
    message_zh: str | None = None
    field: str | None = None


class ErrorBody(BaseModel):
    error: str
    reasons: list[ErrorReason]


def _invalid_request(exc: RequestValidationError) -> JSONResponse:
    if any(e.get("type") == "json_invalid" for e in exc.errors()):
        # Not JSON at all: no field is wrong (the error's "field" would be an offset).
        return problem(400, "MALFORMED_BODY", "the body is not UTF-8 JSON")
    # FastAPI's default body echoes the input (an ID number, a bank account): name the
    # field and the problem only.
    reasons = [
        ErrorReason(
            code="INVALID_FIELD",
            field=".".join(str(p) for p in e["loc"] if p != "body"),
            message_en=str(e["msg"]).split(", input")[0],
        )
        for e in exc.errors()
    ]
    body = ErrorBody(error="invalid request", reasons=reasons)
    return JSONResponse(status_code=422, content=body.model_dump(exclude_none=True))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _invalid_request(exc)

    @app.exception_handler(AuthError)
    async def _auth(_: Request, exc: AuthError) -> JSONResponse:
        return auth_error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Starlette's own errors (an unknown path, a body that is not UTF-8 JSON) get the
        # same body as ours instead of {"detail": ...}.
        code = HTTP_ERROR_CODES.get(exc.status_code, "HTTP_ERROR")
        body = ErrorBody(
            error=code.lower().replace("_", " "),
            reasons=[ErrorReason(code=code, message_en=str(exc.detail))],
        )
        return JSONResponse(
            status_code=exc.status_code,
            content=body.model_dump(exclude_none=True),
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RPCError)
    async def _workflow_unreachable(_: Request, exc: RPCError) -> JSONResponse:
        # A signal or start the workflow service refused: nothing was applied.
        if exc.status == RPCStatusCode.NOT_FOUND:
            return problem(409, "CASE_CLOSED", "the case's workflow has ended; nothing was applied")
        return problem(
            503,
            "WORKFLOW_UNAVAILABLE",
            "the workflow service did not answer; nothing was applied, try again",
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        body = ErrorBody(
            error="internal error",
            reasons=[
                ErrorReason(
                    code="INTERNAL",
                    message_en=f"unexpected {type(exc).__name__}; the request was not applied",
                )
            ],
        )
        return JSONResponse(status_code=500, content=body.model_dump(exclude_none=True))

    declare_error_responses(app)


HTTP_ERROR_CODES = {
    400: "MALFORMED_BODY",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


def auth_error_response(exc: AuthError) -> JSONResponse:
    detail: dict[str, object] = exc.detail if isinstance(exc.detail, dict) else {}
    body = ErrorBody(
        error=str(detail.get("message_en", "not allowed")),
        reasons=[
            ErrorReason(
                code=str(detail.get("code", "FORBIDDEN")),
                message_en=str(detail.get("message_en", "")),
            )
        ],
    )
    return JSONResponse(status_code=exc.status_code, content=body.model_dump(exclude_none=True))


_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
_ERROR_DESCRIPTIONS = {
    "400": "The body is not UTF-8 JSON (MALFORMED_BODY)",
    "401": "No API key, or an unknown one (CREDENTIALS_REQUIRED, CREDENTIALS_INVALID)",
    "403": (
        "The key lacks the role, the case is another agency's, or the action is the other "
        "party's (ROLE_REQUIRED, NOT_YOUR_REGION, NOT_YOUR_PARTY)"
    ),
    "404": "No such case or region",
    "409": "Not possible in the case's current state (or its workflow has ended)",
    "413": "The body is over 256 KiB (TOO_LARGE)",
    "422": "Invalid request: the fields and problems, never the submitted values",
    "503": "The workflow service did not answer; nothing was applied, try again",
}


def declare_error_responses(app: FastAPI) -> None:
    """Make the OpenAPI document say what every ``/v1`` operation answers when it fails,
    all in the one ErrorBody shape the handlers above render (FastAPI would otherwise
    document its own 422 body, which this API never sends)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        for path, item in document.get("paths", {}).items():
            if not path.startswith("/v1/"):
                continue
            for method, operation in item.items():
                statuses = ["401", "403", "422"]
                if "{" in path:
                    statuses.append("404")
                if "requestBody" in operation:
                    statuses += ["400", "413"]
                if method == "post":
                    statuses += ["409", "503"] if "{case_id}" in path else ["503"]
                responses = operation.setdefault("responses", {})
                for status in statuses:
                    declared = responses.get(status)
                    if declared is None or "HTTPValidationError" in str(declared):
                        responses[status] = {
                            "description": _ERROR_DESCRIPTIONS[status],
                            "content": {"application/json": {"schema": _ERROR_REF}},
                        }
        schemas = document.get("components", {}).get("schemas", {})
        if "HTTPValidationError" not in str(document.get("paths")):
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


class ApiProblem(AuthError):
    """Raised by shared helpers; rendered like every other error body."""


def owned_case(repository: CaseRepository, case_id: str, principal: Principal) -> CaseRow:
    """The case, if it exists and belongs to one of the caller's regions (else 404/403).
    Enough to read it; a route that acts on it then calls ``require_party`` with the
    region of the side it acts for."""
    row = repository.get_case(case_id)
    if row is None:
        raise ApiProblem(404, "CASE_NOT_FOUND", f"no case {case_id}")
    check_regions(principal, (row.from_region, row.to_region))
    return row


def problem_body(
    code: str, message_en: str, *, rule: str | None = None, message_zh: str | None = None
) -> ErrorBody:
    """The error body of one reason (a use case's answer before it is HTTP)."""
    return ErrorBody(
        error=message_en,
        reasons=[ErrorReason(code=code, rule=rule, message_en=message_en, message_zh=message_zh)],
    )


@dataclass(frozen=True)
class Refused:
    """A use case's answer when it does not act: the HTTP status, a code, why (never a
    person's data) and the rule; the route turns it into the error body."""

    status: int
    code: str
    message: str
    rule: str | None = None

    def response(self) -> JSONResponse:
        return problem(self.status, self.code, self.message, rule=self.rule)


def problem(
    status: int,
    code: str,
    message_en: str,
    *,
    rule: str | None = None,
    message_zh: str | None = None,
) -> JSONResponse:
    body = problem_body(code, message_en, rule=rule, message_zh=message_zh)
    return JSONResponse(status_code=status, content=body.model_dump(exclude_none=True))


class AwaitingOut(BaseModel):
    what: str
    from_party: str | None
    by: date | None


class TimelineEntry(BaseModel):
    sequence: int
    at: str
    event: str
    status: str
    rule: str | None
    detail: dict[str, Any]


class DecisionOut(BaseModel):
    """Why: the rule, the policy version it was decided under, one sentence each language."""

    rule: str | None
    # The source of the rule beside its id (domain/articles.py): the interim measures'
    # provision, e.g. "R12，依据《基本医疗保障关系转移接续暂行办法》关于转出办理时限的规定".
    citation_zh: str = ""
    citation_en: str = ""
    outcome: str
    policy_version: str
    explanation_en: str
    explanation_zh: str
    at: str


class CaseOut(BaseModel):
    case_id: str
    status: str
    status_since: str
    working_days_in_status: int
    from_region: str
    to_region: str
    from_scheme: str
    to_scheme: str
    person: str  # masked ID number
    awaiting: AwaitingOut | None
    deadlines: dict[str, Any]
    escalated: bool
    warnings: list[str]
    closed: bool
    policy_version: str | None = None
    decisions: list[DecisionOut] | None = None
    continuity: dict[str, Any] | None = Field(
        default=None,
        description="R24-R28: contribution months, deemed years, interruption, "
        "back-payment or waiting period, estimates in fen",
    )
    timeline: list[TimelineEntry] | None = None
    workflow_url: str | None = None
    stuck_reason: str | None = Field(
        default=None,
        description="Set while the case's workflow keeps failing (a step and an error type); "
        "it is on the operations page's stuck list",
    )
    exception_code: str | None = Field(
        default=None,
        description="An open clerk exception, e.g. DOCUMENT_AFTER_CLOSE or RESIDUAL_NOT_ALLOWED",
    )


def case_out(
    row: CaseRow,
    calendar: WorkingDayCalendar,
    today: date,
    events: list[CaseEventRow] | None = None,
    workflow_url: str | None = None,
) -> CaseOut:
    since = row.status_since.date()
    return CaseOut(
        case_id=row.case_id,
        status=row.status,
        status_since=row.status_since.isoformat(),
        working_days_in_status=calendar.working_days_between(since, today),
        from_region=row.from_region,
        to_region=row.to_region,
        from_scheme=row.from_scheme,
        to_scheme=row.to_scheme,
        person=row.id_masked,
        awaiting=AwaitingOut(
            what=row.awaiting_what, from_party=row.awaiting_from, by=row.awaiting_by
        )
        if row.awaiting_what
        else None,
        deadlines=row.deadlines,
        escalated=row.escalated,
        warnings=row.warnings,
        closed=row.terminal,
        policy_version=(row.facts or {}).get("policy_version"),
        stuck_reason=row.stuck_reason if row.stuck_since is not None else None,
        exception_code=row.exception_code,
        continuity=(row.facts or {}).get("continuity"),
        decisions=None
        if events is None
        else [_decision_out(e) for e in events if e.event == "decision"],
        timeline=None if events is None else [_timeline_entry(e) for e in events],
        workflow_url=workflow_url,
    )


def _decision_out(event: CaseEventRow) -> DecisionOut:
    return DecisionOut(
        rule=event.rule,
        citation_zh="" if event.rule is None else citation_zh(event.rule),
        citation_en="" if event.rule is None else citation_en(event.rule),
        outcome=str(event.detail.get("outcome", "")),
        policy_version=str(event.detail.get("policy_version", "")),
        explanation_en=str(event.detail.get("explanation_en", "")),
        explanation_zh=str(event.detail.get("explanation_zh", "")),
        at=event.occurred_at.isoformat(),
    )


def _timeline_entry(event: CaseEventRow) -> TimelineEntry:
    return TimelineEntry(
        sequence=event.sequence,
        at=event.occurred_at.isoformat(),
        event=event.event,
        status=event.status,
        rule=event.rule,
        detail=event.detail,
    )


class ConnectivityIn(BaseModel):
    connected: bool


def set_region_connectivity(
    service: Service, region: str, body: ConnectivityIn, principal: Principal
) -> JSONResponse:
    """R23: record that ``region`` went live on the platform (or dropped off); only an
    operator of that region may."""
    require_party(principal, region, "region")
    if service.registry.get(region) is None:
        return problem(404, "UNKNOWN_REGION", f"region {region} is not in the registry")
    service.connectivity.set_connected(region, body.connected)
    logging.getLogger(f"medtransfer.{service.side}").info(
        "region %s connectivity set to %s by %s", region, body.connected, principal.agency
    )
    return JSONResponse({"region": region, "connected": body.connected})


async def redrive_for(
    service: Service, handler: InboundHandler, principal: Principal
) -> JSONResponse:
    """Dead letters are the whole deployment's: an operator of every region it serves
    hands them to their cases again."""
    require_every_region(principal, service.served)
    counts = await handler.redrive()
    logging.getLogger(f"medtransfer.{service.side}").info(
        "dead letters re-driven by %s: %s", principal.agency, counts
    )
    return JSONResponse({"redriven": counts})
