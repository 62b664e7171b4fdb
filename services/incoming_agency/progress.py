"""The person's and the employer's own view of a case (R17), without an integrator's API
key: found by the case number and the access secret given once at acceptance, or by the
ID number and the name; answered masked (masked ID number, no name, no bank account),
Chinese first. The lookup and the rendering are plain functions and classes, so they are
tested without HTTP; services/incoming_agency/public.py puts them on the web.

A lookup that matches nothing, whatever the reason (no such case, a wrong secret, a wrong
name, an ID number without cases here), is one and the same "no case matches": a caller
cannot tell which ID numbers have cases.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from html import escape
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from domain.guidance import (
    AgencyNames,
    StatusGuidance,
    refusal_guidance,
    status_guidance,
    step_text,
)
from domain.identity import fingerprint
from domain.regions import RegionRegistry
from domain.vocabulary import StopAnswerCode
from services.common.db import session_scope
from services.common.repository import CaseRepository, utcnow
from services.common.tables import CaseEventRow, CaseRow
from services.incoming_agency.tables import CaseAccessRow
from workflows.clock import CHINA_TZ

# Crockford's base32: no I, L, O or U, so a secret read off paper is typed right.
SECRET_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
SECRET_GROUPS, SECRET_GROUP_LENGTH = 4, 4  # 16 characters, 80 random bits
_SECRET_READS_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})
# The most cases one ID-number lookup lists (a person's cases at this agency, newest first).
MAX_CASES_PER_PERSON = 10
# Events whose detail carries the outgoing agency's refusal codes (workflows/incoming/).
REFUSAL_EVENTS = ("transfer_refused", "transfer_refused_correctable", "correction_window_expired")
STOP_EVENTS = ("withdrawal_requested", "withdrawal_refused", "application_withdrawn")
_NAME_DOTS = str.maketrans({c: "·" for c in "•‧・･.．∙⋅"})


# --- the access secret ----------------------------------------------------------------------
def new_access_secret() -> str:
    """A fresh secret as the person reads it: ``7K3M-Q9XD-...`` (80 random bits)."""
    groups = (
        "".join(secrets.choice(SECRET_ALPHABET) for _ in range(SECRET_GROUP_LENGTH))
        for _ in range(SECRET_GROUPS)
    )
    return "-".join(groups)


def normalised_secret(text: str) -> str:
    """A typed secret in canonical form: no spaces or dashes, upper case, and the letters
    people take for digits read as those digits."""
    folded = unicodedata.normalize("NFKC", text).upper().translate(_SECRET_READS_AS)
    return "".join(c for c in folded if c in SECRET_ALPHABET)


def secret_hash(case_id: str, secret: str) -> str:
    """SHA-256 of the secret bound to its case: a stored hash opens no other case. (The
    secret is 80 random bits, so a fast hash suffices; nothing to stretch.)"""
    data = f"medtransfer-progress-secret\x00{case_id}\x00{normalised_secret(secret)}"
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


_NO_HASH = secret_hash("", "no case has this secret")


def normalised_name(name: str) -> str:
    """A name as typed, compared: NFKC (full-width letters), no whitespace, one middle dot
    for the several in use (维吾尔族 names: 买买提·艾力), case folded."""
    text = unicodedata.normalize("NFKC", name).translate(_NAME_DOTS)
    # Control and format characters (NUL, zero-width) are no part of a name.
    text = "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cf"))
    return "".join(text.split()).casefold()


def names_match(recorded: str, typed: str) -> bool:
    """A blank recorded name matches nothing, not even a typed blank (or NUL)."""
    expected = normalised_name(recorded)
    same = hmac.compare_digest(expected.encode("utf-8"), normalised_name(typed).encode("utf-8"))
    return same and bool(expected)


class ProgressRecords:
    """The incoming agency's records behind the public progress lookup: the hashed access
    secrets (table case_access) and a person's cases by the ID-number fingerprint."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def issue_secret(self, case_id: str) -> str | None:
        """A new case's access secret, returned once and kept only as its hash; None when
        one was issued already (a resubmission of an open case gets none: the first
        answer had it)."""
        secret = new_access_secret()
        row = CaseAccessRow(
            case_id=case_id, secret_hash=secret_hash(case_id, secret), issued_at=utcnow()
        )
        try:
            with session_scope(self.engine) as session:
                if session.get(CaseAccessRow, case_id) is not None:
                    return None
                session.add(row)
        except IntegrityError:
            return None  # a concurrent resubmission issued it first
        return secret

    def secret_matches(self, case_id: str, secret: str) -> bool:
        """Compared in constant time; an unknown case compares against a dummy hash, so
        it takes as long as a wrong secret."""
        with session_scope(self.engine) as session:
            row = session.get(CaseAccessRow, case_id)
        expected = row.secret_hash if row is not None else _NO_HASH
        same = hmac.compare_digest(expected, secret_hash(case_id, secret))
        return same and row is not None

    def cases_of_person(self, person_key: str) -> Sequence[CaseRow]:
        with session_scope(self.engine) as session:
            return session.exec(
                select(CaseRow)
                .where(CaseRow.person_key == person_key)
                .order_by(col(CaseRow.created_at).desc())
                .limit(MAX_CASES_PER_PERSON)
            ).all()


# --- the answer -----------------------------------------------------------------------------
class StepOut(BaseModel):
    on: date = Field(description="The day (China time)")
    step_zh: str
    step_en: str


class ReasonOut(BaseModel):
    """A refusal reason with what to do for that very reason (domain/guidance.py)."""

    code: str
    why_zh: str
    todo_zh: str
    why_en: str
    todo_en: str


class CaseProgressOut(BaseModel):
    """One case as the person reads it: Chinese first, no name, ID number masked."""

    case_id: str
    person: str = Field(description="The masked ID number")
    status: str = Field(description="The status code, for machines")
    closed: bool
    status_zh: str
    awaiting_zh: str = Field(description="What is awaited; empty when nothing is")
    awaiting_from_zh: str = Field(description="From whom: an agency by its region's name")
    awaiting_by: date | None = Field(description="By when (the deadline)")
    awaiting_by_zh: str
    reasons: list[ReasonOut]
    you_can_zh: list[str]
    notes_zh: list[str]
    steps: list[StepOut]
    status_en: str
    awaiting_en: str
    awaiting_from_en: str
    you_can_en: list[str]
    notes_en: list[str]


class ProgressAnswer(BaseModel):
    """The cases found (R17): one for a case number and secret, a person's cases at this
    agency (newest first, at most ten) for an ID number and name."""

    cases: list[CaseProgressOut] = Field(min_length=1)


def date_zh(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def _latest(events: Sequence[CaseEventRow], names: Iterable[str]) -> CaseEventRow | None:
    wanted = set(names)
    return next((e for e in reversed(events) if e.event in wanted), None)


def refusal_codes(row: CaseRow, events: Sequence[CaseEventRow]) -> list[str]:
    """The reason codes a person has to act on: the outgoing agency's refusal while the
    case is refused, and its refusal of a withdrawal asked for (R16)."""
    codes: list[str] = []
    if row.status in ("refused", "refused_correctable"):
        refused = _latest(events, REFUSAL_EVENTS)
        if refused is not None:
            codes += [c for c in str((refused.detail or {}).get("codes", "")).split(",") if c]
    stop = _latest(events, STOP_EVENTS)
    if stop is not None and stop.event == "withdrawal_refused":
        codes.append(
            str((stop.detail or {}).get("reason_code") or StopAnswerCode.TOO_LATE_TRANSFERRED_OUT)
        )
    return list(dict.fromkeys(codes))


def _day(at: datetime) -> date:
    # SQLite gives naive datetimes back; every stored time is UTC.
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return aware.astimezone(CHINA_TZ).date()


def person_view(
    row: CaseRow, events: Sequence[CaseEventRow], registry: RegionRegistry
) -> CaseProgressOut:
    """R17: status in plain words, what is awaited from whom by when, the reasons with
    what to do for each, what the person can do, and the steps so far."""
    names = AgencyNames(registry, row.from_region, row.to_region)
    guidance = status_guidance(row.status)
    closed = row.terminal or guidance.party == "nobody"
    awaiting_by: date | None = None
    if not closed:
        due = (row.deadlines or {}).get(guidance.deadline or "")
        awaiting_by = row.awaiting_by or (date.fromisoformat(due) if isinstance(due, str) else None)
    party_zh, party_en = names.party(guidance)
    reasons = [
        ReasonOut(
            code=code,
            why_zh=names.zh(g.why_zh),
            todo_zh=names.zh(g.todo_zh),
            why_en=names.en(g.why_en),
            todo_en=names.en(g.todo_en),
        )
        for code in refusal_codes(row, events)
        for g in (refusal_guidance(code),)
    ]
    you_can_zh, you_can_en = _you_can(row, guidance, awaiting_by, closed)
    notes_zh, notes_en = _notes(row, closed)
    steps = [
        StepOut(
            on=_day(e.occurred_at),
            step_zh=names.zh(text.label_zh, str((e.detail or {}).get("region") or "")),
            step_en=names.en(text.label_en, str((e.detail or {}).get("region") or "")),
        )
        for e in events
        for text in (step_text(e.event),)
        if text is not None
    ]
    return CaseProgressOut(
        case_id=row.case_id,
        person=row.id_masked,
        status=row.status,
        closed=closed,
        status_zh=guidance.label_zh,
        awaiting_zh=names.zh(guidance.awaiting_zh),
        awaiting_from_zh=party_zh,
        awaiting_by=awaiting_by,
        awaiting_by_zh=date_zh(awaiting_by) if awaiting_by else "",
        reasons=reasons,
        you_can_zh=you_can_zh,
        notes_zh=notes_zh,
        steps=steps,
        status_en=guidance.label_en,
        awaiting_en=names.en(guidance.awaiting_en),
        awaiting_from_en=party_en,
        you_can_en=you_can_en,
        notes_en=notes_en,
    )


def _you_can(
    row: CaseRow, guidance: StatusGuidance, by: date | None, closed: bool
) -> tuple[list[str], list[str]]:
    zh: list[str] = []
    en: list[str] = []
    if row.status == "refused_correctable":
        until_zh = f"在{date_zh(by)}前" if by else "在补正期限内"
        until_en = f"by {by.isoformat()}" if by else "within the correction period"
        zh.append(
            f"请{until_zh}按上述办法处理，并通过原申请渠道（网上平台或经办窗口）提交补正；"
            "逾期未补正的，本次申请终止。"
        )
        en.append(
            f"Do what is said above and send a correction {until_en} through the channel you "
            "applied by (online or at the counter); without one the application ends."
        )
    elif row.status == "refused":
        zh.append("按上述办法处理后，可以重新申请。")
        en.append("Once the above is done, you may apply again.")
    if guidance.withdrawable and not closed and not (row.facts or {}).get("stop"):
        zh.append("转出地办理转出之前，可以通过原申请渠道撤回申请。")
        en.append("Before the transfer-out, you may withdraw through the channel you applied by.")
    application: dict[str, Any] = row.application or {}
    if (
        row.status == "waiting_region_connection"
        and row.from_scheme == "employee"
        and not application.get("bank_account")
    ):
        # R19/R23: the balance can be paid to the person's own account instead.
        zh.append(
            "转出地长期未接入平台的，个人账户余额可以支付至本人银行账户，可通过原申请渠道提供。"
        )
        en.append(
            "If the region stays unconnected, the balance can be paid to your own bank "
            "account: give one through the channel you applied by."
        )
    return zh, en


def _notes(row: CaseRow, closed: bool) -> tuple[list[str], list[str]]:
    zh: list[str] = []
    en: list[str] = []
    if row.escalated and not closed:
        zh.append("本案已超过办理时限或需要人工处理，已提交经办人员督办。")
        en.append("The case is past a limit or needs a clerk: it has been escalated.")
    for warning in row.warnings or []:
        year = warning.removeprefix("calendar-fallback-")
        if year != warning and year.isdigit():
            zh.append(
                f"{year}年节假日安排尚未公布，期限暂按周一至周五（扣除固定日期的法定节假日）"
                "计算，公布后可能调整。"
            )
            en.append(
                f"The {year} holiday calendar is not yet published: the deadlines are counted "
                "Monday to Friday without the fixed-date holidays and may move."
            )
    return zh, en


class ProgressLookup:
    """The two ways in (R17); each answers None for "no case matches", whatever failed."""

    def __init__(
        self, repository: CaseRepository, records: ProgressRecords, registry: RegionRegistry
    ) -> None:
        self.repository = repository
        self.records = records
        self.registry = registry

    def by_case(self, case_id: str, secret: str) -> ProgressAnswer | None:
        case_id = case_id.strip().upper()
        if not self.records.secret_matches(case_id, secret):
            return None
        row = self.repository.get_case(case_id)
        return None if row is None else self._answer([row])

    def by_person(self, id_number: str, name: str) -> ProgressAnswer | None:
        """Both must match: the ID number by its fingerprint (the case row's person_key),
        the name as recorded in the application, compared normalised."""
        rows = self.records.cases_of_person(fingerprint(id_number))
        matching = [r for r in rows if names_match(_applicant_name(r), name)]
        return self._answer(matching) if matching else None

    def _answer(self, rows: Sequence[CaseRow]) -> ProgressAnswer:
        return ProgressAnswer(
            cases=[person_view(r, self.repository.events(r.case_id), self.registry) for r in rows]
        )


def _applicant_name(row: CaseRow) -> str:
    person = (row.application or {}).get("person") or {}
    name = person.get("name") if isinstance(person, dict) else None
    # A case without a recorded name (the contract lets a blank one in) matches no typed
    # name: names_match refuses an empty recorded name.
    return name if isinstance(name, str) else ""


# --- the HTML page ----------------------------------------------------------------------------
class Html(str):
    """Markup that is already safe; every other value put into a template is escaped."""


def html(template: str, **values: object) -> Html:
    """``template`` (a constant of this module) with its fields filled in, autoescaped."""
    return Html(
        template.format(
            **{k: v if isinstance(v, Html) else escape(str(v)) for k, v in values.items()}
        )
    )


def joined(parts: Iterable[Html]) -> Html:
    return Html("".join(parts))


PAGE_TITLE_ZH, PAGE_TITLE_EN = "医保关系转移接续办理进度查询", "Transfer progress"
STYLE = """body{font-family:sans-serif;margin:1.5em auto;max-width:46em;color:#222;
padding:0 1em}.en{color:#666;font-size:.9em}label{display:block;margin:.5em 0}
input{font-size:1em;padding:.25em;width:100%;max-width:24em}section{margin:1.5em 0}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:left;vertical-align:top}.case{border:1px solid #99c;padding:.5em 1em;
margin:1em 0}.todo{background:#fff6e0}"""
# No script, no asset from elsewhere: inline styles only, forms to this page only.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def page(body: Html) -> str:
    return html(
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<title>{zh} {en}</title><style>{style}</style></head><body>"
        "<h1>{zh} <span class='en' lang='en'>{en}</span></h1>{body}"
        "<p><a href='/public/progress'>重新查询 <span class='en' lang='en'>New query</span></a>"
        "</p></body></html>",
        zh=PAGE_TITLE_ZH,
        en=PAGE_TITLE_EN,
        style=Html(STYLE),
        body=body,
    )


def bilingual(zh: str, en: str) -> Html:
    return html("{zh} <span class='en' lang='en'>{en}</span>", zh=zh, en=en)


def form_page() -> str:
    """The two ways in, as POST forms (nothing secret ever goes into a URL)."""
    return page(
        html(
            "<section><h2>{by_case}</h2>"
            "<form method='post' action='/public/progress' autocomplete='off'>"
            "<input type='hidden' name='by' value='case'>"
            "<label>{case_id}<input name='case_id' required maxlength='40'></label>"
            "<label>{secret}<input name='secret' type='password' required maxlength='64'>"
            "</label><button type='submit'>{look_up}</button></form></section>"
            "<section><h2>{by_person}</h2>"
            "<form method='post' action='/public/progress' autocomplete='off'>"
            "<input type='hidden' name='by' value='person'>"
            "<label>{id_number}<input name='id_number' required maxlength='40'></label>"
            "<label>{name}<input name='name' required maxlength='100'></label>"
            "<button type='submit'>{look_up}</button></form></section>"
            "<p>{hint}</p>",
            by_case=bilingual("按案件编号和查询码查询", "By case number and access code"),
            case_id=bilingual("案件编号", "Case number"),
            secret=bilingual("查询码（受理时提供）", "Access code (given at acceptance)"),
            by_person=bilingual("按身份证号码和姓名查询", "By ID number and name"),
            id_number=bilingual("公民身份号码", "Resident ID number"),
            name=bilingual("姓名", "Name"),
            look_up=bilingual("查询", "Look up"),
            hint=bilingual(
                "参保人本人或用人单位均可查询。",
                "The insured person or the employer may look a case up.",
            ),
        )
    )


def not_found_page() -> str:
    return page(html("<p>{text}</p>", text=bilingual(*NO_MATCH)))


def cross_site_page() -> str:
    return page(html("<p>{text}</p>", text=bilingual(*CROSS_SITE)))


CROSS_SITE = (
    "请在本站的查询页面上提交查询。",
    "Send the query from this site's own page.",
)


def throttled_page(wait: int) -> str:
    return page(
        html(
            "<p>{text}</p>",
            text=bilingual(
                f"查询次数过多，请{wait}秒后再试。", f"Too many queries: try again in {wait} s."
            ),
        )
    )


NO_MATCH = (
    "未查询到符合条件的转移接续申请，请核对所填信息后再试。",
    "No case matches these details; check them and try again.",
)


def _list(items_zh: Sequence[str], items_en: Sequence[str], css: str = "") -> Html:
    return joined(
        html("<li class='{css}'>{text}</li>", css=css, text=bilingual(zh, en))
        for zh, en in zip(items_zh, items_en, strict=True)
    )


def _facts_table(case: CaseProgressOut) -> Html:
    rows = [
        (bilingual("案件编号", "Case number"), Html(escape(case.case_id))),
        (bilingual("参保人", "Person"), Html(escape(case.person))),
        (bilingual("当前状态", "Status"), bilingual(case.status_zh, case.status_en)),
    ]
    if case.awaiting_zh:
        rows.append(
            (bilingual("等待事项", "Awaiting"), bilingual(case.awaiting_zh, case.awaiting_en))
        )
    if case.awaiting_from_zh:
        rows.append(
            (
                bilingual("办理方", "From whom"),
                bilingual(case.awaiting_from_zh, case.awaiting_from_en),
            )
        )
    if case.awaiting_by:
        rows.append(
            (
                bilingual("办理期限", "By"),
                bilingual(case.awaiting_by_zh, case.awaiting_by.isoformat()),
            )
        )
    return joined(html("<tr><th>{k}</th><td>{v}</td></tr>", k=k, v=v) for k, v in rows)


def _section(title_zh: str, title_en: str, items: Html) -> Html:
    return html("<h3>{t}</h3><ul>{items}</ul>", t=bilingual(title_zh, title_en), items=items)


def _case_html(case: CaseProgressOut) -> Html:
    reasons = joined(
        html(
            "<li class='todo'><b>{why}</b><br>{todo}</li>",
            why=bilingual(r.why_zh, r.why_en),
            todo=bilingual(r.todo_zh, r.todo_en),
        )
        for r in case.reasons
    )
    steps = joined(
        html(
            "<tr><td>{on}</td><td>{step}</td></tr>",
            on=date_zh(s.on),
            step=bilingual(s.step_zh, s.step_en),
        )
        for s in case.steps
    )
    return html(
        "<div class='case'><table>{table}</table>{reasons}{you_can}{notes}"
        "<h3>{steps_title}</h3><table>{steps}</table></div>",
        table=_facts_table(case),
        reasons=_section("原因及办理方法", "Reasons and what to do", reasons)
        if case.reasons
        else Html(""),
        you_can=_section("您可以", "You can", _list(case.you_can_zh, case.you_can_en))
        if case.you_can_zh
        else Html(""),
        notes=_section("提示", "Notes", _list(case.notes_zh, case.notes_en))
        if case.notes_zh
        else Html(""),
        steps_title=bilingual("办理进度", "Steps so far"),
        steps=steps,
    )


def answer_page(answer: ProgressAnswer) -> str:
    return page(joined(_case_html(c) for c in answer.cases))
