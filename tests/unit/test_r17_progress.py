"""R17: the person and the employer query progress themselves, without an integrator's
API key: by the case number and the access secret given once at acceptance, or by the ID
number and the name. The answer is masked and Chinese first; every failure is the same
"no case matches"; queries are throttled per address, counted before they are checked.

The lookup and the view run without HTTP first (ProgressLookup, person_view), then the
real incoming app in-process (SQLite, fake Temporal client) over its public routes.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from contracts.documents import BankAccount, PersonIdentity, TransferRequested
from domain.identity import mask_id, resident_id_check_char
from domain.vocabulary import RefusalCode
from services.incoming_agency.applications import new_case_row
from services.incoming_agency.progress import (
    ProgressLookup,
    ProgressRecords,
    normalised_secret,
    person_view,
    secret_hash,
)
from services.incoming_agency.tables import CaseAccessRow
from tests.support.inprocess import InProcessAgency, inprocess_app, without_broker
from workflows.types import Awaiting, CaseEvent

pytestmark = pytest.mark.unit

OUTGOING, INCOMING = "620800", "610100"  # 平凉市 -> 西安市
KEY = {"X-Api-Key": "demo-operator"}
NAME = "张三丰"
ACCOUNT = "6222020200112233445"
BY_CASE, BY_PERSON, PAGE = (
    "/public/progress/by-case",
    "/public/progress/by-person",
    "/public/progress",
)


def person_id() -> str:
    first17 = f"{OUTGOING}{random.randint(1965, 1999)}0{random.randint(1, 9)}1"
    first17 += f"{random.randint(0, 9)}{random.randint(0, 999):03d}"
    return first17 + resident_id_check_char(first17)


def application(id_number: str, name: str = NAME, **extra: Any) -> dict[str, Any]:
    return {
        "person": {"id_number": id_number, "name": name},
        "from_region": OUTGOING,
        "to_region": INCOMING,
        "from_scheme": "employee",
        "to_scheme": "employee",
        "reason": "new job",
        "incoming_enrolled_since": "2026-10-01",
        **extra,
    }


@pytest.fixture(scope="module")
def agency(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessAgency]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        agency = without_broker(
            inprocess_app("incoming", tmp_path_factory.mktemp("r17"), monkeypatch)
        )
        with TestClient(agency.app):  # the lifespan: the fake Temporal client is in place
            yield agency
        agency.service.engine.dispose()


def client(agency: InProcessAgency) -> TestClient:
    """A client from an address of its own: each test starts with a fresh throttle count."""
    return TestClient(
        agency.app, client=(f"10.17.{random.randint(0, 255)}.{uuid.uuid4().int % 250 + 1}", 50000)
    )


def submitted(agency: InProcessAgency, id_number: str, **extra: Any) -> tuple[str, str]:
    answer = client(agency).post(
        "/v1/applications", json=application(id_number, **extra), headers=KEY
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["access_secret"], body
    return body["case_id"], body["access_secret"]


def record(agency: InProcessAgency, case_id: str, event: str, status: str, **values: Any) -> None:
    agency.service.repository.append_event(
        CaseEvent(
            case_id=case_id,
            side="incoming",
            event_key=f"test:{case_id}:{uuid.uuid4().hex}",
            event=event,
            status=status,
            occurred_at=datetime.now(UTC) + timedelta(seconds=values.pop("later", 0)),
            **values,
        )
    )


def refused_case(agency: InProcessAgency, codes: str, *, soft: bool = True) -> tuple[str, str, str]:
    id_number = person_id()
    case_id, secret = submitted(agency, id_number)
    record(
        agency,
        case_id,
        "transfer_request_sent",
        "awaiting_transfer_out",
        awaiting=Awaiting(
            what="information sheet or refusal", from_party="outgoing", by=date(2027, 1, 15)
        ),
        deadlines={"transfer_out_due": date(2027, 1, 15), "total_due": date(2027, 1, 22)},
        later=1,
    )
    if soft:
        record(
            agency,
            case_id,
            "transfer_refused_correctable",
            "refused_correctable",
            rule="R6",
            detail={"codes": codes, "rules": "R6", "correctable_until": "2027-01-08"},
            awaiting=Awaiting(
                what="a correction by the applicant", from_party="applicant", by=date(2027, 1, 8)
            ),
            later=2,
        )
    else:
        record(
            agency,
            case_id,
            "transfer_refused",
            "refused",
            rule="R9",
            detail={"codes": codes, "rules": "R9"},
            terminal=True,
            later=2,
        )
    return case_id, secret, id_number


# --- without HTTP ---------------------------------------------------------------------------
def lookup(agency: InProcessAgency) -> ProgressLookup:
    service = agency.service
    return ProgressLookup(service.repository, ProgressRecords(service.engine), service.registry)


def test_r17_the_secret_opens_its_own_case_and_no_other(agency: InProcessAgency) -> None:
    first, first_secret = submitted(agency, person_id())
    second, second_secret = submitted(agency, person_id())
    found = lookup(agency).by_case(first, first_secret)
    assert found is not None
    assert [c.case_id for c in found.cases] == [first]
    # As typed from paper: lower case, spaces instead of dashes, O for 0 and I/L for 1.
    typed = first_secret.lower().replace("-", " ").replace("0", "o").replace("1", "l")
    assert lookup(agency).by_case(f" {first.lower()} ", typed) is not None
    assert lookup(agency).by_case(first, second_secret) is None
    assert lookup(agency).by_case(second, first_secret) is None


def test_r17_only_the_secrets_hash_is_kept_bound_to_its_case(agency: InProcessAgency) -> None:
    case_id, secret = submitted(agency, person_id())
    with agency.service.engine.connect() as connection:
        stored = connection.execute(select(CaseAccessRow.__table__)).all()  # type: ignore[attr-defined]
    texts = " ".join(str(tuple(r)) for r in stored)
    assert secret not in texts
    assert normalised_secret(secret) not in texts
    assert secret_hash(case_id, secret) in texts
    assert secret_hash(case_id, secret) != secret_hash(f"{case_id}X", secret)


def test_r17_id_number_and_name_must_both_match(agency: InProcessAgency) -> None:
    id_number = person_id()
    case_id, _ = submitted(agency, id_number)
    found = lookup(agency).by_person(id_number, NAME)
    assert found is not None
    assert case_id in [c.case_id for c in found.cases]
    # Normalised: full-width digits, spaces between the characters of the name.
    wide = id_number.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789X"})
    assert lookup(agency).by_person(wide, " 张 三丰 ") is not None
    assert lookup(agency).by_person(id_number, "张三") is None
    assert lookup(agency).by_person(person_id(), NAME) is None


def test_r17_a_resubmission_gets_no_second_secret(agency: InProcessAgency) -> None:
    id_number = person_id()
    case_id, secret = submitted(agency, id_number)
    again = client(agency).post("/v1/applications", json=application(id_number), headers=KEY)
    assert again.status_code == 200, again.text
    assert again.json()["case_id"] == case_id
    assert again.json()["access_secret"] is None
    assert lookup(agency).by_case(case_id, secret) is not None


def test_r17_the_view_says_what_is_awaited_from_which_agency_by_when(
    agency: InProcessAgency,
) -> None:
    case_id, secret = submitted(agency, person_id())
    record(
        agency,
        case_id,
        "transfer_request_sent",
        "awaiting_transfer_out",
        awaiting=Awaiting(
            what="information sheet or refusal", from_party="x", by=date(2027, 1, 15)
        ),
        later=1,
    )
    answer = lookup(agency).by_case(case_id, secret)
    assert answer is not None
    case = answer.cases[0]
    assert case.status_zh == "转出地办理中"
    assert case.awaiting_from_zh == "平凉市医保经办机构"
    assert "Pingliang" in case.awaiting_from_en
    assert case.awaiting_by == date(2027, 1, 15)
    assert case.awaiting_by_zh == "2027年1月15日"
    assert [s.step_zh for s in case.steps][-1] == "已向平凉市医保经办机构发送转移接续联系函"
    assert any("撤回" in line for line in case.you_can_zh)
    # Chinese texts are wholly Chinese: no region code, no English word.
    for text in [case.status_zh, case.awaiting_zh, case.awaiting_from_zh, *case.you_can_zh]:
        assert not re.search(r"[A-Za-z]|\d{6}", text), text


def test_r17_a_refused_case_shows_the_guidance_for_its_own_reason(
    agency: InProcessAgency,
) -> None:
    advice: dict[str, str] = {}
    for code in (
        RefusalCode.ENROLMENT_ACTIVE,
        RefusalCode.CONTRIBUTION_ARREARS,
        RefusalCode.ACCOUNT_FROZEN,
    ):
        case_id, secret, _ = refused_case(agency, code)
        answer = lookup(agency).by_case(case_id, secret)
        assert answer is not None
        case = answer.cases[0]
        assert case.status == "refused_correctable"
        assert [r.code for r in case.reasons] == [code]
        advice[code] = case.reasons[0].todo_zh
        assert case.you_can_zh[0].startswith("请在2027年1月8日前")
    assert "补缴" in advice[RefusalCode.CONTRIBUTION_ARREARS]
    assert "停保" in advice[RefusalCode.ENROLMENT_ACTIVE]
    assert "补缴" not in advice[RefusalCode.ENROLMENT_ACTIVE]
    assert "冻结" in advice[RefusalCode.ACCOUNT_FROZEN]
    assert "补缴" not in advice[RefusalCode.ACCOUNT_FROZEN]
    assert "平凉市医保经办机构" in advice[RefusalCode.ACCOUNT_FROZEN]


def test_r17_a_case_refused_for_two_reasons_lists_both(agency: InProcessAgency) -> None:
    case_id, secret, _ = refused_case(
        agency, f"{RefusalCode.CONTRIBUTION_ARREARS},{RefusalCode.ACCOUNT_FROZEN}"
    )
    answer = lookup(agency).by_case(case_id, secret)
    assert answer is not None
    assert [r.code for r in answer.cases[0].reasons] == [
        RefusalCode.CONTRIBUTION_ARREARS,
        RefusalCode.ACCOUNT_FROZEN,
    ]


def test_r17_the_view_of_a_seeded_row_never_carries_personal_data(agency: InProcessAgency) -> None:
    id_number = person_id()
    request = TransferRequested(
        person=PersonIdentity(id_number=id_number, name=NAME),
        from_region=OUTGOING,
        to_region=INCOMING,
        from_scheme="employee",
        to_scheme="resident",
        reason="moved home",
        applied_on=date(2026, 11, 2),
        channel="online",
        incoming_agency="x",
        bank_account=BankAccount(bank_name="工商银行", account_number=ACCOUNT, account_holder=NAME),
    )
    row = new_case_row(request, None)
    text = person_view(row, [], agency.service.registry).model_dump_json()
    assert id_number not in text
    assert NAME not in text
    assert ACCOUNT not in text
    assert ACCOUNT[-4:] not in text
    assert "工商银行" not in text
    assert mask_id(id_number) in text


# --- over HTTP ------------------------------------------------------------------------------
def test_r17_over_http_the_secret_works_without_an_api_key(agency: InProcessAgency) -> None:
    case_id, secret = submitted(agency, person_id())
    answer = client(agency).post(BY_CASE, json={"case_id": case_id, "secret": secret})
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["cases"][0]["case_id"] == case_id
    # Chinese first: every Chinese field of the answer comes before its English one.
    keys = list(body["cases"][0])
    assert keys.index("status_zh") < keys.index("status_en")
    assert keys.index("awaiting_zh") < keys.index("awaiting_en")


def test_r17_every_failure_is_the_same_not_found(agency: InProcessAgency) -> None:
    id_number = person_id()
    case_id, secret = submitted(agency, id_number)
    _, other_secret = submitted(agency, person_id())
    stranger = person_id()
    submitted(agency, stranger, name="李四")
    failures = [
        (BY_CASE, {"case_id": case_id, "secret": other_secret}),  # another case's secret
        (BY_CASE, {"case_id": case_id, "secret": "AAAA-BBBB-CCCC-DDDD"}),  # a wrong one
        (BY_CASE, {"case_id": "TR20261202ANOCASE00", "secret": secret}),  # no such case
        (BY_PERSON, {"id_number": id_number, "name": "张三"}),  # a wrong name
        (BY_PERSON, {"id_number": stranger, "name": NAME}),  # another person's ID number
        (BY_PERSON, {"id_number": person_id(), "name": NAME}),  # an ID number without cases
        (BY_PERSON, {"id_number": "not an id number", "name": NAME}),
    ]
    answers = []
    for path, body in failures:
        answer = client(agency).post(path, json=body)
        answers.append((answer.status_code, answer.json(), answer.headers.get("content-type")))
    assert {a[0] for a in answers} == {404}
    assert all(a[1:] == answers[0][1:] for a in answers), answers
    assert answers[0][1]["reasons"][0]["code"] == "NO_MATCHING_CASE"
    assert answers[0][1]["reasons"][0]["message_zh"].startswith("未查询到")
    # The page answers every failure with one and the same page.
    pages = {
        client(agency).post(PAGE, data={"by": "case", "case_id": case_id, "secret": "x"}).text,
        client(agency).post(PAGE, data={"by": "person", "id_number": stranger, "name": NAME}).text,
        client(agency).post(PAGE, data={"by": "nothing"}).text,
    }
    assert len(pages) == 1
    assert "未查询到" in pages.pop()


def test_r17_queries_are_throttled_per_address_counted_before_the_check(
    agency: InProcessAgency,
) -> None:
    case_id, secret = submitted(agency, person_id())
    guesser, other = client(agency), client(agency)
    statuses = [
        guesser.post(BY_CASE, json={"case_id": case_id, "secret": f"WRONG-{n}"}).status_code
        for n in range(5)
    ]
    assert statuses == [404] * 5
    limited = guesser.post(BY_CASE, json={"case_id": case_id, "secret": secret})
    assert limited.status_code == 429, limited.text  # even the right secret, once limited
    assert limited.json()["reasons"][0]["code"] == "TOO_MANY_ATTEMPTS"
    assert int(limited.headers["retry-after"]) > 0
    assert guesser.post(BY_PERSON, json={"id_number": "x", "name": "y"}).status_code == 429
    assert guesser.post(PAGE, data={"by": "case"}).status_code == 429
    # Another address is not held up; a query that matches gives its own attempt back.
    for _ in range(6):
        assert other.post(BY_CASE, json={"case_id": case_id, "secret": secret}).status_code == 200


def test_r17_the_http_answers_carry_no_full_id_number_name_or_account(
    agency: InProcessAgency,
) -> None:
    id_number = person_id()
    extra = {
        "bank_account": {"bank_name": "工商银行", "account_number": ACCOUNT, "account_holder": NAME}
    }
    case_id, secret = submitted(agency, id_number, **extra)
    answers = [
        client(agency).post(BY_CASE, json={"case_id": case_id, "secret": secret}),
        client(agency).post(BY_PERSON, json={"id_number": id_number, "name": NAME}),
        client(agency).post(PAGE, data={"by": "case", "case_id": case_id, "secret": secret}),
        client(agency).post(PAGE, data={"by": "person", "id_number": id_number, "name": NAME}),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert case_id in answer.text
        assert mask_id(id_number) in answer.text
        for personal in (id_number, NAME, ACCOUNT, ACCOUNT[-4:], "工商银行"):
            assert personal not in answer.text


def test_r17_a_refused_case_over_http_reads_chinese_first_with_its_guidance(
    agency: InProcessAgency,
) -> None:
    case_id, secret, _ = refused_case(agency, RefusalCode.ENROLMENT_ACTIVE)
    body = client(agency).post(BY_CASE, json={"case_id": case_id, "secret": secret}).json()
    reason = body["cases"][0]["reasons"][0]
    assert list(reason) == ["code", "why_zh", "todo_zh", "why_en", "todo_en"]
    assert "停保" in reason["todo_zh"]
    assert "欠费" not in reason["todo_zh"]
    page = client(agency).post(PAGE, data={"by": "case", "case_id": case_id, "secret": secret})
    text = page.text
    assert "停保" in text
    assert text.index("暂不予办理") < text.index("Refused for now")
    assert text.index(reason["todo_zh"]) < text.index(reason["todo_en"])


def test_r17_the_page_is_a_post_form_escaped_without_outside_assets(
    agency: InProcessAgency,
) -> None:
    form = client(agency).get(PAGE)
    assert form.status_code == 200
    assert "method='post'" in form.text
    assert "method='get'" not in form.text.lower()
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", form.text)
    assert "<script" not in form.text
    assert "default-src 'none'" in form.headers["content-security-policy"]
    assert form.headers["cache-control"] == "no-store"
    assert "医保关系转移接续办理进度查询" in form.text
    assert form.text.index("案件编号") < form.text.index("Case number")
    # Nothing typed is echoed, let alone unescaped.
    typed = "<script>alert(1)</script>"
    answer = client(agency).post(PAGE, data={"by": "person", "id_number": typed, "name": typed})
    assert answer.status_code == 404
    assert typed not in answer.text


def test_r17_oversized_and_malformed_queries_are_refused_without_echo(
    agency: InProcessAgency,
) -> None:
    huge = client(agency).post(BY_CASE, content=b"{" + b" " * 5000 + b"}")
    assert huge.status_code == 413
    secret = "MY-SECRET-VALUE-1234"
    missing = client(agency).post(BY_CASE, json={"secret": secret})
    assert missing.status_code == 422
    assert missing.json()["reasons"][0]["field"] == "case_id"
    assert secret not in missing.text
    assert client(agency).post(BY_CASE, content=b"not json").status_code == 422
    assert client(agency).get(BY_CASE).status_code == 405  # POST only
