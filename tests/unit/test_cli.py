"""The clerk and operator CLI against mocked agency APIs (httpx.MockTransport): the bulk
import (good, refused, malformed and duplicate rows; no clear ID number or name in any
output), case rendering, clerk actions and their errors, reconciliation and audit exit
codes over small SQLite files."""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import SQLModel
from typer.testing import CliRunner, Result

from domain.identity import mask_id, resident_id_check_char
from services.audit.store import AuditStore
from services.cli import api as cli_api
from services.cli.app import cli
from services.common.db import create_tables, make_engine, session_scope
from services.common.tables import InboxRow, LedgerEntry
from tests.support.audit_keys import make_trust, signed

pytestmark = pytest.mark.unit

# What the reconciliation reads of each side's database.
LEDGER_TABLES: list[type[SQLModel]] = [LedgerEntry, InboxRow]

INCOMING = "http://incoming.test"
OUTGOING = "http://outgoing.test"
KEY = "unit-test-key"
HEADER = (
    "id_number,name,from_region,to_region,from_scheme,to_scheme,reason,"
    "incoming_enrolled_since,left_outgoing_on,resettled_retiree,bank_name,account_number,"
    "account_holder"
)


def person_id(region: str, birth: str, serial: str) -> str:
    first17 = f"{region}{birth}{serial}"
    return first17 + resident_id_check_char(first17)


GOOD = person_id("620800", "19900312", "123")
DUPLICATE = person_id("441900", "19880101", "452")
MALFORMED = person_id("620800", "19920720", "337")
_VALID_REFUSED = person_id("620800", "19851104", "215")
REFUSED = _VALID_REFUSED[:17] + ("0" if _VALID_REFUSED[17] != "0" else "1")
NAMES = ("张三", "赵六", "王五", "李四")

INVALID_ID = {
    "error": "application refused",
    "reasons": [
        {
            "code": "INVALID_ID_NUMBER",
            "rule": "R10",
            "message_en": "The resident ID number is invalid (length, birth date or check digit).",
            "message_zh": "公民身份号码无效（长度、出生日期或校验码有误）。",
        }
    ],
}


@dataclass
class FakeAgencies:
    """Both APIs behind one MockTransport handler; routes are (method, url) -> handler."""

    routes: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]] = field(
        default_factory=dict
    )
    requests: list[httpx.Request] = field(default_factory=list)

    def on(self, method: str, url: str, answer: Callable[[httpx.Request], httpx.Response]) -> None:
        self.routes[(method, url)] = answer

    def reply(self, method: str, url: str, status: int, body: Any) -> None:
        self.on(method, url, lambda _: httpx.Response(status, json=body))

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        url = str(request.url.copy_with(query=None))
        answer = self.routes.get((request.method, url))
        if answer is None:
            return httpx.Response(404, json={"detail": "Not Found"})
        return answer(request)

    def sent(self, method: str, url: str) -> list[httpx.Request]:
        return [
            r
            for r in self.requests
            if r.method == method and str(r.url.copy_with(query=None)) == url
        ]


@pytest.fixture
def agencies(monkeypatch: pytest.MonkeyPatch) -> FakeAgencies:
    fake = FakeAgencies()

    def factory(base_url: str, headers: Mapping[str, str], timeout: float) -> httpx.Client:
        return httpx.Client(
            base_url=base_url,
            headers=dict(headers),
            timeout=timeout,
            transport=httpx.MockTransport(fake.handle),
        )

    monkeypatch.setattr(cli_api, "client_factory", factory)
    monkeypatch.setattr(cli_api, "sleep", lambda _: None)
    return fake


def run(*args: str, env: Mapping[str, str] | None = None) -> Result:
    base = {
        "COLUMNS": "250",
        "MEDTRANSFER_INCOMING_URL": INCOMING,
        "MEDTRANSFER_OUTGOING_URL": OUTGOING,
        "MEDTRANSFER_API_KEY": KEY,
    }
    result = CliRunner().invoke(cli, list(args), env={**base, **(env or {})})
    assert "Traceback" not in result.output
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def write_csv(path: Path, *rows: str) -> Path:
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def applications_api(agencies: FakeAgencies) -> None:
    """201 for GOOD, 200 for DUPLICATE, 422 for REFUSED."""

    def submit(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        id_number = body["person"]["id_number"]
        if id_number == REFUSED:
            return httpx.Response(422, json=INVALID_ID)
        case_id = f"TR20261125{uuid.uuid4().hex[:10].upper()}"
        answer = {
            "case_id": case_id,
            "status": "submitted",
            "duplicate_of_open_case": id_number == DUPLICATE,
            "case_url": f"/v1/cases/{case_id}",
        }
        return httpx.Response(200 if id_number == DUPLICATE else 201, json=answer)

    agencies.on("POST", f"{INCOMING}/v1/applications", submit)


def assert_no_personal_data(text: str) -> None:
    for id_number in (GOOD, DUPLICATE, MALFORMED, REFUSED):
        assert id_number not in text
        assert id_number[6:14] not in text  # not even the birth date
    for name in NAMES:
        assert name not in text


# --- import-applications ----------------------------------------------------------------
def test_import_reports_every_row_and_the_good_ones_are_created(
    agencies: FakeAgencies, tmp_path: Path
) -> None:
    applications_api(agencies)
    source = write_csv(
        tmp_path / "staff.csv",
        f"{GOOD},张三,620800,610100,employee,employee,new job,2026-10-01,,false,,,",
        f"{REFUSED},李四,620800,610100,employee,employee,new job,2026-10-01,,,,,",
        f"{MALFORMED},王五,620800,610100,boss,employee,new job,2026-10-01,,,,,",
        f"{DUPLICATE},赵六,441900,440300,employee,employee,,2026/10/1,,no,,,",
    )
    report = tmp_path / "report.csv"

    result = run("import-applications", str(source), "--report", str(report))

    assert result.exit_code == 1, result.output
    lines = {line.split("│")[1].strip(): line for line in result.output.splitlines() if "│" in line}
    assert "created" in lines["2"]
    assert "TR20261125" in lines["2"]
    assert "refused" in lines["3"]
    assert "INVALID_ID_NUMBER" in lines["3"]
    assert "error" in lines["4"]
    assert "CSV_BAD_VALUE(from_scheme)" in lines["4"]
    assert "duplicate" in lines["5"]
    assert "TR20261125" in lines["5"]
    assert mask_id(GOOD) in lines["2"]
    assert "4 row(s): 1 created, 1 duplicate, 1 refused, 1 error" in result.output
    assert_no_personal_data(result.output)

    sent = agencies.sent("POST", f"{INCOMING}/v1/applications")
    assert len(sent) == 3  # the malformed row is never sent
    assert {r.headers["X-Api-Key"] for r in sent} == {KEY}
    bodies = [json.loads(r.content) for r in sent]
    assert bodies[0]["person"] == {"id_number": GOOD, "name": "张三"}
    assert bodies[0]["incoming_enrolled_since"] == "2026-10-01"
    assert bodies[2]["incoming_enrolled_since"] == "2026-10-01"  # 2026/10/1 from a spreadsheet
    assert "bank_account" not in bodies[0]
    assert bodies[0]["resettled_retiree"] is False

    text = report.read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(text.splitlines()))
    assert [(r["row"], r["outcome"]) for r in rows] == [
        ("2", "created"),
        ("3", "refused"),
        ("4", "error"),
        ("5", "duplicate"),
    ]
    assert rows[1]["codes"] == "INVALID_ID_NUMBER"
    assert rows[0]["person"] == mask_id(GOOD)
    assert_no_personal_data(text)


def test_import_of_only_good_rows_exits_0(agencies: FakeAgencies, tmp_path: Path) -> None:
    applications_api(agencies)
    source = write_csv(
        tmp_path / "staff.csv",
        f"{GOOD},张三,620800,610100,employee,employee,,2026-10-01,,,,,",
        f"{DUPLICATE},赵六,441900,440300,employee,employee,,2026-10-01,,,,,",
    )
    result = run("--api-key", "from-option", "import-applications", str(source))
    assert result.exit_code == 0, result.output
    sent = agencies.sent("POST", f"{INCOMING}/v1/applications")
    assert {r.headers["X-Api-Key"] for r in sent} == {"from-option"}


def test_a_network_error_is_retried_and_a_lasting_one_fails_only_its_row(
    agencies: FakeAgencies, tmp_path: Path
) -> None:
    attempts: dict[str, int] = {}

    def flaky(request: httpx.Request) -> httpx.Response:
        id_number = json.loads(request.content)["person"]["id_number"]
        attempts[id_number] = attempts.get(id_number, 0) + 1
        if id_number == DUPLICATE or attempts[id_number] == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(201, json={"case_id": "TR20261125AAAAAAAAAA"})

    agencies.on("POST", f"{INCOMING}/v1/applications", flaky)
    source = write_csv(
        tmp_path / "staff.csv",
        f"{GOOD},张三,620800,610100,employee,employee,,2026-10-01,,,,,",
        f"{DUPLICATE},赵六,441900,440300,employee,employee,,2026-10-01,,,,,",
    )
    result = run("--retries", "2", "import-applications", str(source))
    assert result.exit_code == 1, result.output
    assert attempts == {GOOD: 2, DUPLICATE: 3}
    assert "created" in result.output
    assert "UNREACHABLE" in result.output
    assert_no_personal_data(result.output)


def test_a_503_is_submitted_again(agencies: FakeAgencies, tmp_path: Path) -> None:
    answers = iter(
        [
            httpx.Response(
                503,
                json={
                    "error": "x",
                    "reasons": [{"code": "WORKFLOW_UNAVAILABLE", "message_en": "x"}],
                },
            ),
            httpx.Response(200, json={"case_id": "TR20261125BBBBBBBBBB"}),
        ]
    )
    agencies.on("POST", f"{INCOMING}/v1/applications", lambda _: next(answers))
    source = write_csv(
        tmp_path / "staff.csv", f"{GOOD},张三,620800,610100,employee,employee,,2026-10-01,,,,,"
    )
    result = run("import-applications", str(source))
    assert result.exit_code == 0, result.output
    assert "duplicate" in result.output
    assert "earlier attempt" in result.output


def test_rows_of_the_wrong_shape_are_errors_of_their_own(
    agencies: FakeAgencies, tmp_path: Path
) -> None:
    applications_api(agencies)
    source = write_csv(
        tmp_path / "staff.csv",
        f"{GOOD},张三,620800,610100",  # too few fields
        f"{DUPLICATE},,441900,4403,employee,employee,,1 Oct,,maybe,工行,,",
        "6.20800199E+17,王五,620800,610100,employee,employee,,,,,,,",
        f"{GOOD},张三,620800,610100,employee,employee,,2026-10-01,,,,,,,",  # trailing cells
    )
    result = run("import-applications", str(source))
    assert result.exit_code == 1, result.output
    out = result.output
    assert "CSV_FIELD_COUNT" in out
    for label in (
        "CSV_MISSING_VALUE(name)",
        "CSV_BAD_VALUE(to_region)",
        "CSV_BAD_VALUE(incoming_enrolled_since)",
        "CSV_BAD_VALUE(resettled_retiree)",
        "CSV_MISSING_VALUE(account_number)",
        "CSV_BAD_VALUE(id_number)",
    ):
        assert label in out
    assert "created" in out
    assert len(agencies.sent("POST", f"{INCOMING}/v1/applications")) == 1
    assert_no_personal_data(out)


def test_a_file_that_cannot_be_read_exits_2(agencies: FakeAgencies, tmp_path: Path) -> None:
    assert run("import-applications", str(tmp_path / "missing.csv")).exit_code == 2
    no_columns = tmp_path / "no-columns.csv"
    no_columns.write_text("id_number,name\n1,2\n", encoding="utf-8")
    result = run("import-applications", str(no_columns))
    assert result.exit_code == 2
    assert "from_region" in result.output
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes(
        (HEADER + f"\n{GOOD},张三,620800,610100,employee,employee,,,,,,,\n").encode("gbk")
    )
    result = run("import-applications", str(gbk))
    assert result.exit_code == 2
    assert "--encoding gb18030" in result.output
    assert agencies.requests == []


def test_gb18030_file_with_the_encoding_option(agencies: FakeAgencies, tmp_path: Path) -> None:
    applications_api(agencies)
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes(
        (HEADER + f"\n{GOOD},张三,620800,610100,employee,employee,,2026-10-01,,,,,\n").encode(
            "gb18030"
        )
    )
    result = run("import-applications", str(gbk), "--encoding", "gb18030")
    assert result.exit_code == 0, result.output
    body = json.loads(agencies.sent("POST", f"{INCOMING}/v1/applications")[0].content)
    assert body["person"]["name"] == "张三"


def test_dry_run_sends_nothing_and_runs_the_acceptance_checks(
    agencies: FakeAgencies, tmp_path: Path
) -> None:
    source = write_csv(
        tmp_path / "staff.csv",
        f"{GOOD},张三,620800,610100,employee,employee,,2026-10-01,,,,,",
        f"{REFUSED},李四,620800,610100,employee,employee,,2026-10-01,,,,,",
        f"{DUPLICATE},赵六,441900,441900,employee,employee,,2026-10-01,,,,,",
    )
    result = run("import-applications", str(source), "--dry-run")
    assert result.exit_code == 1, result.output
    assert agencies.requests == []
    assert "valid" in result.output
    assert "INVALID_ID_NUMBER" in result.output
    assert "SAME_REGION" in result.output
    assert_no_personal_data(result.output)


# --- cases ------------------------------------------------------------------------------
CASE = {
    "case_id": "TR20261125ABCDEF1234",
    "status": "awaiting_transfer_out",
    "status_since": "2026-11-20T02:00:00+00:00",
    "working_days_in_status": 3,
    "from_region": "620800",
    "to_region": "610100",
    "from_scheme": "employee",
    "to_scheme": "employee",
    "person": "6208************39",
    "awaiting": {
        "what": "transfer_out",
        "from_party": "outgoing agency 620800",
        "by": "2026-12-04",
    },
    "deadlines": {"transfer_out_due": "2026-12-04", "transfer_out_reminder": "2026-12-01"},
    "escalated": True,
    "warnings": ["calendar-fallback-2027"],
    "closed": False,
}


def test_cases_list_renders_a_table_and_passes_the_filters(agencies: FakeAgencies) -> None:
    other = CASE | {
        "case_id": "TR20261125FFFFFFFFFF",
        "status": "completed",
        "escalated": False,
        "awaiting": None,
        "person": "4419************24",
    }
    agencies.reply("GET", f"{INCOMING}/v1/cases", 200, [CASE, other])
    result = run(
        "cases", "list", "--status", "awaiting_transfer_out", "--region", "620800",
        "--escalated", "--warning", "calendar-fallback-2027", "--limit", "20",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    request = agencies.sent("GET", f"{INCOMING}/v1/cases")[0]
    assert dict(request.url.params) == {
        "limit": "20",
        "status": "awaiting_transfer_out",
        "region": "620800",
        "warning": "calendar-fallback-2027",
        "escalated": "true",
    }
    assert request.headers["X-Api-Key"] == KEY
    row = next(line for line in result.output.splitlines() if "TR20261125ABCDEF1234" in line)
    for cell in (
        "awaiting_transfer_out",
        "620800 → 610100",
        "6208************39",
        "transfer_out",
        "outgoing agency 620800",
        "2026-12-04",
        "yes",
        " 3 ",
    ):
        assert cell in row
    assert "2 case(s)" in result.output
    assert "TR20261125FFFFFFFFFF" in result.output


def test_cases_list_of_the_outgoing_side(agencies: FakeAgencies) -> None:
    agencies.reply("GET", f"{OUTGOING}/v1/cases", 200, [CASE])
    result = run("cases", "list", "--side", "outgoing")
    assert result.exit_code == 0, result.output
    assert agencies.sent("GET", f"{OUTGOING}/v1/cases")
    assert "TR20261125ABCDEF1234" in result.output


def test_a_person_column_is_masked_even_if_an_api_sent_it_in_clear(
    agencies: FakeAgencies,
) -> None:
    agencies.reply("GET", f"{INCOMING}/v1/cases", 200, [CASE | {"person": GOOD}])
    result = run("cases", "list")
    assert GOOD not in result.output
    assert mask_id(GOOD) in result.output


def test_cases_show_renders_decisions_continuity_and_timeline(agencies: FakeAgencies) -> None:
    case = CASE | {
        "policy_version": "out:national-2024.1 in:national-2024.1",
        "workflow_url": "http://temporal/namespaces/default/workflows/incoming-TR1",
        "decisions": [
            {
                "rule": "R18",
                "outcome": "remit",
                "policy_version": "national-2024.1",
                "explanation_en": "The balance is remitted to the new account.",
                "explanation_zh": "个人账户余额划转至转入地。",
                "at": "2026-11-20T02:00:00+00:00",
            }
        ],
        "continuity": {
            "total_contribution_months": 120,
            "months_by_region": {"620800": 120},
            "interruption_months": 1,
            "back_payment_allowed": True,
            "back_payment_estimate_fen": 123456,
            "explanation_en": "Contributions count in full.",
            "explanation_zh": "缴费年限累计计算。",
        },
        "timeline": [
            {
                "sequence": 1,
                "at": "2026-11-20T02:00:00+00:00",
                "event": "submitted",
                "status": "submitted",
                "rule": "R11",
                "detail": {"channel": "online"},
            },
            {
                "sequence": 2,
                "at": "2026-11-20T02:00:05+00:00",
                "event": "transfer_requested",
                "status": "awaiting_transfer_out",
                "rule": "R12",
                "detail": {},
            },
        ],
    }
    agencies.reply("GET", f"{INCOMING}/v1/cases/TR20261125ABCDEF1234", 200, case)
    result = run("cases", "show", "TR20261125ABCDEF1234")
    assert result.exit_code == 0, result.output
    out = result.output
    for text in (
        "awaiting_transfer_out",
        "transfer_out from outgoing agency 620800 by 2026-12-04",
        "transfer_out_due",
        "calendar-fallback-2027",
        "R18",
        "remit",
        "The balance is remitted to the new account.",
        "个人账户余额划转至转入地。",
        "contribution months",
        "620800: 120",
        "1234.56",
        "缴费年限累计计算。",
        "transfer_requested",
        "R12",
        '{"channel": "online"}',
        "incoming-TR1",
    ):
        assert text in out, text


def test_cases_show_of_an_unknown_case(agencies: FakeAgencies) -> None:
    agencies.reply(
        "GET",
        f"{INCOMING}/v1/cases/NOPE",
        404,
        {
            "error": "no case NOPE",
            "reasons": [{"code": "CASE_NOT_FOUND", "message_en": "no case NOPE"}],
        },
    )
    result = run("cases", "show", "NOPE")
    assert result.exit_code == 1
    assert "CASE_NOT_FOUND" in result.output
    assert "404" in result.output


def test_escalations_of_both_agencies(agencies: FakeAgencies) -> None:
    agencies.reply("GET", f"{INCOMING}/v1/cases", 200, [CASE])
    agencies.reply("GET", f"{OUTGOING}/v1/cases", 200, [CASE | {"case_id": "TR20261125OUT0000000"}])
    result = run("escalations")
    assert result.exit_code == 0, result.output
    for side in ("incoming", "outgoing"):
        assert agencies.sent("GET", f"{INCOMING if side == 'incoming' else OUTGOING}/v1/cases")
    assert all(r.url.params["escalated"] == "true" for r in agencies.requests)
    assert "TR20261125ABCDEF1234" in result.output
    assert "TR20261125OUT0000000" in result.output


# --- errors and clerk actions -----------------------------------------------------------
def test_an_unreachable_agency_is_a_clear_error(agencies: FakeAgencies) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    agencies.on("GET", f"{INCOMING}/v1/cases", refuse)
    result = run("cases", "list")
    assert result.exit_code == 1
    assert "cannot reach the incoming agency at http://incoming.test" in result.output
    assert "MEDTRANSFER_INCOMING_URL" in result.output
    assert len(agencies.requests) == 4  # 1 + 3 retries


def test_a_refused_key_gets_a_hint(agencies: FakeAgencies) -> None:
    agencies.reply(
        "GET",
        f"{INCOMING}/v1/cases",
        401,
        {"error": "unauthorized", "reasons": [{"code": "UNAUTHORIZED", "message_en": "no key"}]},
    )
    result = run("cases", "list")
    assert result.exit_code == 1
    assert "UNAUTHORIZED" in result.output
    assert "MEDTRANSFER_API_KEY" in result.output
    assert KEY not in result.output


def test_an_action_refused_with_409_prints_its_code(agencies: FakeAgencies) -> None:
    agencies.reply(
        "POST",
        f"{INCOMING}/v1/cases/TR1/mismatch-resolution",
        409,
        {
            "error": "case TR1 has no open amount mismatch",
            "reasons": [
                {
                    "code": "NO_MISMATCH",
                    "rule": "R15",
                    "message_en": "case TR1 has no open amount mismatch",
                }
            ],
        },
    )
    result = run(
        "actions", "resolve-mismatch", "TR1", "--decision", "return_to_sender",
        "--note", "amount differs",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "409" in result.output
    assert "NO_MISMATCH (R15)" in result.output
    body = json.loads(agencies.requests[0].content)
    assert body == {"decision": "return_to_sender", "note": "amount differs"}


@pytest.mark.parametrize(
    ("command", "path"),
    [
        ("retry-delivery", "actions/retry-delivery"),
        ("offline", "actions/offline-channel"),
        ("cancel", "actions/cancel"),
    ],
)
def test_actions_post_their_reason(agencies: FakeAgencies, command: str, path: str) -> None:
    agencies.reply("POST", f"{INCOMING}/v1/cases/TR1/{path}", 202, {"case_id": "TR1"})
    result = run("actions", command, "TR1", "--reason", "person called")
    assert result.exit_code == 0, result.output
    assert "accepted" in result.output
    assert json.loads(agencies.requests[0].content) == {"reason": "person called"}


def test_an_action_is_not_repeated_after_a_lost_answer(agencies: FakeAgencies) -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    agencies.on("POST", f"{INCOMING}/v1/cases/TR1/actions/cancel", timeout)
    result = run("actions", "cancel", "TR1", "--reason", "person asked")
    assert result.exit_code == 1
    assert "ReadTimeout" in result.output
    assert len(agencies.requests) == 1


def test_an_action_the_service_does_not_know_yet(agencies: FakeAgencies) -> None:
    result = run("actions", "offline", "TR1", "--reason", "x")
    assert result.exit_code == 1
    assert "404: Not Found" in result.output


# --- operator: reconciliation and audit -------------------------------------------------
def test_reconcile_exits_1_on_an_unmatched_remittance(tmp_path: Path) -> None:
    outgoing = make_engine(f"sqlite:///{tmp_path / 'outgoing-agency.db'}")
    incoming = make_engine(f"sqlite:///{tmp_path / 'incoming-agency.db'}")
    create_tables(outgoing, LEDGER_TABLES)
    create_tables(incoming, LEDGER_TABLES)
    with session_scope(outgoing) as session:
        session.add(
            LedgerEntry(
                case_id="TR1",
                remittance_id="TR1-main",
                leg="debit_outgoing",
                amount_fen=523_400,
                created_at=datetime.now(UTC) - timedelta(hours=2),
            )
        )
    env = {"MEDTRANSFER_DATA_DIR": str(tmp_path)}
    result = run("reconcile", env=env)
    assert result.exit_code == 1, result.output
    row = next(line for line in result.output.splitlines() if "TR1-main" in line)
    assert "unmatched" in row
    assert "settlement,message" in row
    assert "5234.00" in row
    assert "1 remittance(s): 0 matched, 1 unmatched" in result.output

    result = run("reconcile", "--json", env=env)
    assert result.exit_code == 1
    assert json.loads(result.stdout)["unmatched"] == ["TR1-main"]


def test_reconcile_of_empty_databases_and_of_missing_ones(tmp_path: Path) -> None:
    for side in ("outgoing", "incoming"):
        create_tables(make_engine(f"sqlite:///{tmp_path / f'{side}-agency.db'}"), LEDGER_TABLES)
    assert run("reconcile", env={"MEDTRANSFER_DATA_DIR": str(tmp_path)}).exit_code == 0
    result = run("reconcile", env={"MEDTRANSFER_DATA_DIR": str(tmp_path / "nowhere")})
    assert result.exit_code == 1
    assert "no outgoing database" in result.output
    assert not (tmp_path / "nowhere").exists()


def test_audit_verify_uses_the_audit_package(tmp_path: Path) -> None:
    # Records as their emitters publish them: signed with a region key the registry knows.
    trust = make_trust(tmp_path)
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    store = AuditStore.open(url, keys=trust.registry)
    store.append(signed(trust, "TR1", "incoming", 1))
    store.append(signed(trust, "TR1", "incoming", 2))
    env = trust.env(MEDTRANSFER_AUDIT_DATABASE_URL=url)
    result = run("audit", "verify", env=env)
    assert result.exit_code == 0, result.output
    assert "1 case(s) verified" in result.output
    assert run("audit", "verify", "--case", "TR404", env=env).exit_code == 2

    store.append(signed(trust, "TR2", "incoming", 2))  # sequence 1 never arrived
    result = run("audit", "verify", "--case", "TR2", env=env)
    assert result.exit_code == 1
    assert "gap" in result.output


def test_audit_verify_without_a_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    result = run("audit", "verify", env={"MEDTRANSFER_AUDIT_DATABASE_URL": url})
    assert result.exit_code == 2
    assert "no audit database" in result.output
    assert not (tmp_path / "audit.db").exists()


def test_r19_the_dry_run_takes_an_account_typed_with_any_space_as_the_agency_does(
    agencies: FakeAgencies, tmp_path: Path
) -> None:
    """The agency drops every whitespace of an account number (an ideographic space too):
    the dry run must not refuse the row the import would have accepted."""
    source = write_csv(
        tmp_path / "staff.csv",
        f"{GOOD},张三,620800,610100,employee,resident,,2026-10-01,,,工商银行,"
        "6222 0212 3456\u30007890 123,张三",
    )
    result = run("import-applications", str(source), "--dry-run")
    assert "INVALID_BANK_ACCOUNT" not in result.output, result.output
    assert result.exit_code == 0, result.output
