"""The operations page of the incoming agency, server-side HTML: where every case stands,
what is at risk or overdue, the escalation queue with clerk actions, region connectivity,
per-region service figures, and one page per case. Clerks sign in with their API key,
checked once: the browser then holds a server-side session's id (services/ops/sessions.py),
every form posts the session's CSRF token, and failed sign-ins are rate-limited. Every
action goes through the same authenticated, audited path as the HTTP API, and only for
the cases whose incoming region the clerk's key holds."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from html import escape
from typing import Any, Protocol
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from domain.articles import citation_zh
from domain.calendar import WorkingDayCalendar
from domain.guidance import AgencyNames, step_text
from domain.vocabulary import ClerkActionName
from services.common.auth import AuthError, Principal
from services.common.bootstrap import Service
from services.common.tables import CaseEventRow, CaseRow
from services.common.throttle import LoginThrottle, client_address
from services.ops.sessions import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    LOGIN_COOKIE_SECONDS,
    SESSION_COOKIE,
    TOKEN_MIN_LENGTH,
    OpsSession,
    OpsSessions,
    new_token,
    same_token,
)

LEGACY_KEY_COOKIE = "mt_key"  # the raw API key earlier versions kept: cleared at sign-in
AT_RISK_WORKING_DAYS = 2
# The clerk actions with a button on the case page -> its label (clerk_actions.py).
SCHEMES = ("employee", "resident")


class ClerkAct(Protocol):
    """The incoming API's ``perform_action``: checked, signalled, recorded with the clerk;
    ``labels`` names the actions the page offers as buttons."""

    @property
    def labels(self) -> Mapping[str, str]: ...

    async def __call__(
        self,
        case_id: str,
        principal: Principal,
        action: str,
        reason: str,
        correction: Mapping[str, Any] | None = None,
    ) -> tuple[int, str]: ...


STYLE = """body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;
margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}.overdue{color:#b00}.risk{color:#a60}form{display:inline}
.flash{background:#eef;padding:.5em;border:1px solid #99c}"""


def page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html lang='zh'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1>{body}</body></html>",
        status_code=status_code,
        # Pages carry a CSRF token and case data: neither goes into a cache.
        headers={"Cache-Control": "no-store"},
    )


def csrf_input(session: OpsSession) -> str:
    """The hidden field every POST form of the page carries."""
    return f"<input type='hidden' name='{CSRF_FIELD}' value='{escape(session.csrf_token)}'>"


def signed_in(session: OpsSession, today: date) -> str:
    return (
        f"<div>Signed in as {escape(session.principal.agency)} · {today.isoformat()} "
        "<form id='sign-out-form' method='post' action='/ops/logout'>"
        f"{csrf_input(session)}<button id='sign-out' type='submit'>Sign out 退出</button>"
        "</form></div>"
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], table_id: str) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table id='{table_id}'><tr>{head}</tr>{body}</table>"


def case_link(row: CaseRow) -> str:
    return f"<a class='case' href='/ops/cases/{quote(row.case_id)}'>{escape(row.case_id)}</a>"


def earliest_due(row: CaseRow) -> date | None:
    dues = [date.fromisoformat(v) for v in (row.deadlines or {}).values() if isinstance(v, str)]
    if row.awaiting_by:
        dues.append(row.awaiting_by)
    return min(dues) if dues else None


def classify(row: CaseRow, today: date, calendar: WorkingDayCalendar) -> str:
    """'overdue' (a limit passed or escalated), 'at_risk' (due within 2 working days)."""
    if row.terminal:
        return "closed"
    due = row.awaiting_by or earliest_due(row)
    if row.escalated or (due is not None and due < today):
        return "overdue"
    if due is not None and calendar.working_days_between(today, due) <= AT_RISK_WORKING_DAYS:
        return "at_risk"
    return "on_time"


# stage: (from event, to event, limit in working days or None)
STAGES = {
    "transfer-out (R12)": ("application_accepted", "information_sheet_received", 10),
    "transfer-in (R13)": ("information_sheet_received", "transfer_in_completed", 5),
    "balance": ("transfer_in_completed", "case_completed", None),
    "whole case (R14)": ("application_accepted", "case_completed", 15),
}


def service_figures(
    service: Service, rows: Sequence[CaseRow], calendar: WorkingDayCalendar
) -> list[list[str]]:
    """Per incoming region and stage, like a public transfer index: working days per stage
    of completed cases (median, 90th percentile) and the share within the stage's limit."""
    completed = {r.case_id: r for r in rows if r.status == "completed"}
    names = sorted({name for pair in STAGES.values() for name in pair[:2]})
    when: dict[tuple[str, str], date] = {}
    for event in service.repository.milestones(list(completed), names):
        when.setdefault((event.case_id, event.event), event.occurred_at.date())
    days: dict[tuple[str, str], list[int]] = defaultdict(list)
    for case_id, row in completed.items():
        for stage, (start, end, _limit) in STAGES.items():
            if (case_id, start) in when and (case_id, end) in when:
                days[(row.to_region, stage)].append(
                    calendar.working_days_between(when[(case_id, start)], when[(case_id, end)])
                )
    figures = []
    for (region, stage), values in sorted(days.items()):
        values.sort()
        p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
        limit = STAGES[stage][2]
        within = "-" if limit is None else f"{sum(v <= limit for v in values) / len(values):.0%}"
        figures.append(
            [
                escape(region),
                escape(stage),
                str(len(values)),
                f"{statistics.median(values):g}",
                str(p90),
                within,
            ]
        )
    return figures


def correction_form(row: CaseRow, session: OpsSession) -> str:
    """Accept a corrected document after a soft refusal (R5-R8): the fields the correction
    API takes. The clerk types the ID number from the document (the page never shows it
    in full; it must be the case's person's); a name or reason left blank keeps the one on
    file, as does the bank account."""
    application = row.application or {}

    def scheme(field: str, current: str) -> str:
        options = "".join(
            f"<option value='{s}'{' selected' if s == current else ''}>{s}</option>"
            for s in SCHEMES
        )
        return f"<select id='correction-{field}' name='{field}'>{options}</select>"

    def text(field: str, label: str, **extra: str) -> str:
        attributes = "".join(f" {k}='{v}'" for k, v in extra.items())
        return (
            f"<tr><td><label for='correction-{field}'>{escape(label)}</label></td>"
            f"<td><input id='correction-{field}' name='{field}' autocomplete='off'{attributes}>"
            "</td></tr>"
        )

    retiree = " checked" if application.get("resettled_retiree") else ""
    return (
        f"<form id='correction' method='post' "
        f"action='/ops/cases/{quote(row.case_id)}/actions/accept-correction'>"
        + csrf_input(session)
        + "<h3>Accept a corrected document 受理补正材料</h3><table id='correction-fields'>"
        + text("id_number", "ID number on the document 证件号码", required="required")
        + text("name", "name 姓名 (blank: unchanged)")
        + f"<tr><td>from scheme 转出险种</td><td>{scheme('from_scheme', row.from_scheme)}</td></tr>"
        + f"<tr><td>to scheme 转入险种</td><td>{scheme('to_scheme', row.to_scheme)}</td></tr>"
        + text("application_reason", "reason for the transfer 转移原因 (blank: unchanged)")
        + "<tr><td>resettled retiree 异地安置退休人员 (R21)</td><td><input type='checkbox' "
        f"id='correction-resettled_retiree' name='resettled_retiree' value='1'{retiree}></td></tr>"
        + text("bank_name", "bank 开户行 (blank: account on file)")
        + text("account_number", "account number 银行账号")
        + text("account_holder", "account holder 户名")
        + "</table><input id='reason-accept-correction' name='reason' placeholder='note 备注'> "
        "<button id='action-accept-correction' type='submit'>"
        "Accept corrected document 受理补正</button></form>"
    )


def refused(status: int, message: str) -> HTMLResponse:
    return page(
        "Not allowed 无权操作",
        f"<p class='flash' id='flash'>{escape(message)}</p><p><a href='/ops'>← all cases</a></p>",
        status_code=status,
    )


def _listing(rows: Sequence[CaseRow], classes: Mapping[str, str], kind: str) -> list[list[str]]:
    return [
        [
            case_link(r),
            escape(r.status),
            f"{escape(r.from_region)} → {escape(r.to_region)}",
            escape(r.awaiting_what or ""),
            escape(str(r.awaiting_by or earliest_due(r) or "")),
        ]
        for r in rows
        if classes[r.case_id] == kind
    ]


def _escalations(rows: Sequence[CaseRow]) -> list[list[str]]:
    return [
        [
            case_link(r),
            escape(r.status),
            escape(r.awaiting_what or ""),
            f"<a href='/ops/cases/{quote(r.case_id)}'>act 处理</a>",
        ]
        for r in rows
        if r.escalated and not r.terminal
    ]


def _attention(rows: Iterable[CaseRow]) -> list[list[str]]:
    return [
        [
            case_link(r),
            escape(r.status),
            escape(r.stuck_reason or ""),
            escape(r.exception_code or ""),
            escape(str((r.stuck_since or r.exception_since or r.updated_at).date())),
        ]
        for r in rows
    ]


def _corrections(rows: Sequence[CaseRow]) -> list[list[str]]:
    return [
        [
            case_link(r),
            f"{escape(r.from_region)} → {escape(r.to_region)}",
            escape(str(r.awaiting_by or "")),
        ]
        for r in rows
        if r.status == "refused_correctable"
    ]


def _regions(service: Service, today: date) -> list[list[str]]:
    return [
        [
            escape(g.code),
            escape(g.name),
            "connected 已接入"
            if service.connectivity.is_connected(g.code, today)
            else "<b class='overdue'>not connected 未接入</b>",
        ]
        for g in service.registry.regions()
    ]


def _facts(
    service: Service, row: CaseRow, calendar: WorkingDayCalendar, today: date
) -> list[list[str]]:
    return [
        ["status 状态", f"<span id='status'>{escape(row.status)}</span>"],
        [
            "working days in status 本状态工作日",
            str(calendar.working_days_between(row.status_since.date(), today)),
        ],
        [
            "awaiting 等待",
            escape(
                f"{row.awaiting_what or '-'} ({row.awaiting_from or '-'}) by {row.awaiting_by or '-'}"
            ),
        ],
        [
            "deadlines 时限",
            escape(", ".join(f"{k} {v}" for k, v in (row.deadlines or {}).items())),
        ],
        ["escalated 已升级", "yes 是" if row.escalated else "no 否"],
        ["person 参保人", escape(row.id_masked)],
        [
            "workflow",
            f"<a href='{escape(service.workflow_url('incoming-' + row.case_id))}'>Temporal UI</a>",
        ],
    ]


def _decisions(events: Sequence[CaseEventRow]) -> list[list[str]]:
    return [
        [
            escape(citation_zh(e.rule) if e.rule else ""),
            escape(str(e.detail.get("explanation_zh", ""))),
            escape(str(e.detail.get("explanation_en", ""))),
            escape(str(e.detail.get("policy_version", ""))),
        ]
        for e in events
        if e.event == "decision"
    ]


def _timeline(names: AgencyNames, events: Sequence[CaseEventRow]) -> list[list[str]]:
    return [
        [
            str(e.sequence),
            escape(e.occurred_at.isoformat(timespec="seconds")),
            escape(_event_zh(names, e.event, e.detail)),
            escape(e.status),
            escape(e.rule or ""),
        ]
        for e in events
        if e.event != "decision"
    ]


def _action_forms(row: CaseRow, session: OpsSession, labels: Mapping[str, str]) -> str:
    """The case page's actions: a button per clerk action, the correction form after a
    soft refusal, or a note when the actions are the other party's."""
    if not session.principal.holds(row.to_region):
        # The outgoing region's clerk reads the case; acting is the incoming agency's.
        return (
            f"<p id='not-your-party'>Actions on this case are the incoming agency's "
            f"(region {escape(row.to_region)}) 此案件由转入地经办机构办理</p>"
        )
    forms = (
        ""
        if row.terminal
        else "".join(
            f"<form method='post' action='/ops/cases/{quote(row.case_id)}/actions/{name}'>"
            + csrf_input(session)
            + f"<input name='reason' placeholder='reason 原因' id='reason-{name}'>"
            f"<button id='action-{name}' type='submit'>{escape(label)}</button></form><br>"
            for name, label in labels.items()
        )
    )
    if row.status == "refused_correctable":
        forms = correction_form(row, session) + forms
    return forms


@dataclass(frozen=True)
class OpsPages:
    """The page's routes (create_ops_router puts them on a router)."""

    service: Service
    act: ClerkAct
    sessions: OpsSessions
    throttle: LoginThrottle

    def session_of(self, request: Request) -> OpsSession | None:
        return self.sessions.get(request.cookies.get(SESSION_COOKIE))

    async def posted(self, request: Request) -> tuple[OpsSession, FormData] | Response:
        """The session and form of a POST, or the answer refusing it: no live session
        (to the sign-in form), or a missing or wrong CSRF token (403)."""
        session = self.session_of(request)
        if session is None:
            return to_login()
        form = await request.form()
        if not same_token(session.csrf_token, form.get(CSRF_FIELD)):
            return refused(403, "the form's CSRF token is missing or wrong: reload the page")
        return session, form

    async def login_form(self, request: Request, error: str = "") -> HTMLResponse:
        note = f"<p class='flash'>{escape(error)}</p>" if error else ""
        # Sign-in has no session yet: its CSRF token is a cookie the form repeats.
        token = request.cookies.get(LOGIN_COOKIE) or ""
        if len(token) < TOKEN_MIN_LENGTH:
            token = new_token()
        response = page(
            "Sign in 登录",
            note + "<form method='post' action='/ops/login'>"
            f"<input type='hidden' name='{CSRF_FIELD}' value='{escape(token)}'>"
            "<label>API key <input id='key' name='key' type='password' autocomplete='off'>"
            "</label> <button id='sign-in' type='submit'>Sign in</button></form>",
        )
        response.set_cookie(
            LOGIN_COOKIE,
            token,
            max_age=LOGIN_COOKIE_SECONDS,
            path="/ops/login",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def login(self, request: Request) -> Response:
        client = client_address(request)
        wait = self.throttle.attempt(client)
        if wait is not None:
            throttled = refused(429, f"too many failed sign-ins: try again in {wait} seconds")
            throttled.headers["Retry-After"] = str(wait)
            return throttled
        form = await request.form()
        if not same_token(request.cookies.get(LOGIN_COOKIE) or "", form.get(CSRF_FIELD)):
            return refused(403, "the sign-in form's CSRF token is missing or wrong: reload it")
        try:
            principal = self.service.auth.principal(field(form, "key") or None)
        except AuthError:
            return RedirectResponse("/ops/login?error=unknown+key", status_code=303)
        if not principal.roles & {"clerk", "operator"}:
            return RedirectResponse("/ops/login?error=a+clerk+role+is+needed", status_code=303)
        self.throttle.succeeded(client)
        session_id, _ = self.sessions.start(principal)
        response = RedirectResponse("/ops", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            session_id,
            max_age=int(self.sessions.absolute_seconds),
            path="/ops",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        response.delete_cookie(LOGIN_COOKIE, path="/ops/login")
        if LEGACY_KEY_COOKIE in request.cookies:
            response.delete_cookie(LEGACY_KEY_COOKIE)
        return response

    async def logout(self, request: Request) -> Response:
        checked = await self.posted(request)
        if isinstance(checked, Response):
            return checked
        self.sessions.end(request.cookies.get(SESSION_COOKIE))
        response = to_login()
        response.delete_cookie(SESSION_COOKIE, path="/ops")
        return response

    def overview(self, request: Request) -> Response:
        service = self.service
        session = self.session_of(request)
        if session is None:
            return to_login()
        principal = session.principal
        today = service.today()
        calendar = service.calendar(today)
        rows = service.repository.list_cases(limit=2000, visible_to=principal.regions)
        by_status = Counter(r.status for r in rows)
        by_region = Counter(r.to_region for r in rows if not r.terminal)
        classes = {r.case_id: classify(r, today, calendar) for r in rows}
        attention = service.repository.needing_attention(visible_to=principal.regions)
        body = (
            signed_in(session, today)
            + "<h2>Overdue 已超期</h2>"
            + table(
                ["case", "status", "regions", "awaiting", "due"],
                _listing(rows, classes, "overdue"),
                "overdue",
            )
            + "<h2>At risk (due within 2 working days) 临期</h2>"
            + table(
                ["case", "status", "regions", "awaiting", "due"],
                _listing(rows, classes, "at_risk"),
                "at-risk",
            )
            + "<h2>Stuck cases and clerk exceptions 卡住与异常</h2>"
            + table(
                ["case", "status", "stuck", "exception", "since"], _attention(attention), "stuck"
            )
            + "<h2>Escalation queue 待处理</h2>"
            + table(["case", "status", "awaiting", ""], _escalations(rows), "escalations")
            + "<h2>Soft refusals awaiting a correction 待补正 (R5-R8)</h2>"
            + table(["case", "regions", "correctable until"], _corrections(rows), "corrections")
            + "<h2>Cases by status 按状态</h2>"
            + table(
                ["status", "cases"],
                [[escape(s), str(n)] for s, n in sorted(by_status.items())],
                "by-status",
            )
            + "<h2>Open cases by incoming region 按转入地</h2>"
            + table(
                ["region", "open"],
                [[escape(g), str(n)] for g, n in sorted(by_region.items())],
                "by-region",
            )
            + "<h2>Service figures 办理时效</h2>"
            + table(
                ["incoming region", "stage", "cases", "median working days", "p90", "within limit"],
                service_figures(service, rows, calendar),
                "figures",
            )
            + "<h2>Region connectivity 平台接入</h2>"
            + table(["region", "name", "platform"], _regions(service, today), "regions")
        )
        return page("Transfers — operations 转移接续运行监控", body)

    def case_page(self, case_id: str, request: Request, flash: str = "") -> Response:
        service = self.service
        session = self.session_of(request)
        if session is None:
            return to_login()
        principal = session.principal
        row = service.repository.get_case(case_id)
        if row is None or not principal.may_see(row.from_region, row.to_region):
            return page("Not found", f"<p>No case {escape(case_id)} for you.</p>")
        today = service.today()
        calendar = service.calendar(today)
        events = service.repository.events(case_id)
        forms = _action_forms(row, session, self.act.labels)
        note = f"<p class='flash' id='flash'>{escape(flash)}</p>" if flash else ""
        body = (
            note
            + signed_in(session, today)
            + "<p><a href='/ops'>← all cases</a></p>"
            + table(["", ""], _facts(service, row, calendar, today), "facts")
            + "<h2>Actions 操作</h2>"
            + forms
            + "<h2>Decisions 决定及依据</h2>"
            + table(["rule", "中文", "English", "policy"], _decisions(events), "decisions")
            + "<h2>Timeline 办理记录</h2>"
            + table(
                ["#", "at", "event", "status", "rule"],
                _timeline(AgencyNames(service.registry, row.from_region, row.to_region), events),
                "timeline",
            )
        )
        return page(f"Case {case_id}", body)

    async def acted(
        self,
        case_id: str,
        principal: Principal,
        action: str,
        reason: str,
        correction: Mapping[str, Any] | None = None,
    ) -> Response:
        try:
            _status, message = await self.act(
                case_id, principal, action, reason, correction=correction
            )
        except AuthError as exc:  # another agency's case, or not this side's action
            detail: dict[str, Any] = exc.detail if isinstance(exc.detail, dict) else {}
            return refused(exc.status_code, str(detail.get("message_en", "not allowed")))
        # The message names fields at most, never their values: it goes into the URL.
        return RedirectResponse(
            f"/ops/cases/{quote(case_id)}?flash={quote(message)}", status_code=303
        )

    async def accept_correction(self, case_id: str, request: Request) -> Response:
        checked = await self.posted(request)
        if isinstance(checked, Response):
            return checked
        session, form = checked
        account = {k: field(form, k) for k in ("bank_name", "account_number", "account_holder")}
        correction = {
            "id_number": field(form, "id_number"),
            "name": field(form, "name"),
            "from_scheme": field(form, "from_scheme"),
            "to_scheme": field(form, "to_scheme"),
            "reason": field(form, "application_reason"),
            "resettled_retiree": bool(field(form, "resettled_retiree")),
            "bank_account": account if account["account_number"] else None,
        }
        return await self.acted(
            case_id,
            session.principal,
            ClerkActionName.ACCEPT_CORRECTION,
            field(form, "reason"),
            correction=correction,
        )

    async def case_action(self, case_id: str, action: str, request: Request) -> Response:
        checked = await self.posted(request)
        if isinstance(checked, Response):
            return checked
        session, form = checked
        if action not in self.act.labels:
            return RedirectResponse(
                f"/ops/cases/{quote(case_id)}?flash=unknown+action", status_code=303
            )
        reason = form.get("reason")
        return await self.acted(
            case_id, session.principal, action, reason if isinstance(reason, str) else ""
        )


def to_login() -> RedirectResponse:
    return RedirectResponse("/ops/login", status_code=303)


def field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def create_ops_router(
    service: Service,
    act: ClerkAct,
    sessions: OpsSessions | None = None,
    throttle: LoginThrottle | None = None,
) -> APIRouter:
    """The page's routes. Reading takes a session of a clerk or operator key; every POST
    also takes the session's CSRF token (403 without it), and a case action is the
    incoming agency's: the key must hold the case's to_region (403 NOT_YOUR_PARTY). The
    pages that only read are plain functions: their SQL runs in FastAPI's thread pool."""
    pages = OpsPages(
        service,
        act,
        sessions if sessions is not None else OpsSessions(),
        throttle if throttle is not None else LoginThrottle(),
    )
    router = APIRouter(include_in_schema=False)
    router.add_api_route("/ops/login", pages.login_form, methods=["GET"])
    router.add_api_route("/ops/login", pages.login, methods=["POST"])
    router.add_api_route("/ops/logout", pages.logout, methods=["POST"])
    router.add_api_route("/ops", pages.overview, methods=["GET"])
    router.add_api_route("/ops/cases/{case_id}", pages.case_page, methods=["GET"])
    # Before the generic action route, which would take "accept-correction" as {action}.
    router.add_api_route(
        "/ops/cases/{case_id}/actions/accept-correction", pages.accept_correction, methods=["POST"]
    )
    router.add_api_route(
        "/ops/cases/{case_id}/actions/{action}", pages.case_action, methods=["POST"]
    )
    return router


def _event_zh(names: AgencyNames, event: str, detail: Mapping[str, Any] | None) -> str:
    """A timeline event as the clerk reads it: the step in Chinese, the event id beside it."""
    step = step_text(event)
    if step is None:
        return event
    region = str((detail or {}).get("region") or "")
    return f"{names.zh(step.label_zh, region)} ({event})"
