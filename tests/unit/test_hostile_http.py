"""Hostile input over HTTP: schemathesis generates requests from each service's committed
OpenAPI document (contracts/openapi/, kept equal to the app's /openapi.json by
test_api_documents) and sends them to the real app in-process, on SQLite in a temporary
directory with a fake Temporal client. Bounded and derandomized, so CI sees the same run.

Checked for every response: no 5xx; the status code and body are the ones the document
declares; every 4xx carries a JSON reason; no submitted personal value is echoed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from schemathesis.specs.openapi.schemas import OpenApiSchema

from services.common.acceptance import MAX_DOCUMENT_BYTES
from tests.support.inprocess import inprocess_app, without_broker

pytestmark = pytest.mark.unit

OPENAPI_DIR = Path(__file__).resolve().parents[2] / "contracts" / "openapi"
OPERATOR_KEY = {"X-Api-Key": "demo-operator"}  # every role, every region (TEST_API_KEYS)
# Values long enough to mean something when they come back in a response: an ID number,
# a name or a bank account the generator filled in.
ECHO_MIN_LENGTH = 6
PERSONAL_FIELDS = {"id_number", "name", "account_number", "account_holder"}
PLAIN_WORDS = re.compile(r"[A-Za-z_ '.,-]*")
SEEDED_CASE = "TR20260105SEEDED0001"
PERSON_ID = "11010519491231002X"  # the standard's published sample number


def operations(side: str) -> list[tuple[str, str]]:
    document = json.loads((OPENAPI_DIR / f"{side}-agency.json").read_text(encoding="utf-8"))
    return [(m.upper(), path) for path, item in document["paths"].items() for m in item]


def load_schema(side: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenApiSchema]:
    config = SchemathesisConfig()
    config.projects.default.generation.update(database="none")
    schema = schemathesis.openapi.from_path(OPENAPI_DIR / f"{side}-agency.json", config=config)
    with pytest.MonkeyPatch.context() as monkeypatch:
        agency = without_broker(
            inprocess_app(side, tmp_path_factory.mktemp(f"http-{side}"), monkeypatch)  # type: ignore[arg-type]
        )
        # Half the requests name a case that exists, so they get past the lookup.
        status = "refused_correctable" if side == "incoming" else "awaiting_confirmation"
        agency.seed_case(
            SEEDED_CASE, status, from_region="620800", to_region="610100", person_id=PERSON_ID
        )
        schema.app = agency.app
        yield schema
        agency.service.engine.dispose()


@pytest.fixture(scope="module")
def schemas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, OpenApiSchema]]:
    incoming = load_schema("incoming", tmp_path_factory)
    outgoing = load_schema("outgoing", tmp_path_factory)
    yield {"incoming": next(incoming), "outgoing": next(outgoing)}
    for rest in (incoming, outgoing):
        next(rest, None)


ALL_OPERATIONS = [(side, *op) for side in ("incoming", "outgoing") for op in operations(side)]
# Few examples per operation, valid and invalid ones (about twenty operations in all keep
# the run well under a minute), derandomized so every CI run sends the same requests.
HYPOTHESIS = settings(
    max_examples=20,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def on_seeded_case(case: Any) -> Any:
    case.path_parameters = {**(case.path_parameters or {}), "case_id": SEEDED_CASE}
    return case


def fuzz(schema: OpenApiSchema, method: str, path: str, send: Callable[[Any], None]) -> None:
    operation = schema[path][method]
    generated = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )
    strategy = (
        st.one_of(generated, generated.map(on_seeded_case)) if "{case_id}" in path else generated
    )

    @HYPOTHESIS
    @given(case=strategy)
    def run(case: Any) -> None:
        send(case)

    run()


def personal_values(value: Any, key: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from personal_values(v, str(k))
    elif isinstance(value, list):
        for item in value:
            yield from personal_values(item, key)
    elif (
        isinstance(value, str)
        and key in PERSONAL_FIELDS
        and len(value.strip()) >= ECHO_MIN_LENGTH
        # A plain English word ("agency") may be in any message by chance; an ID number,
        # an account number or a Chinese name may not.
        and not PLAIN_WORDS.fullmatch(value)
    ):
        yield value


def check_error_body(case: Any, response: Any) -> None:
    status = response.status_code
    assert status < 500, f"{case.method} {case.path}: {status} {response.text[:300]}"
    if 400 <= status < 500:
        body = response.json()
        assert body["reasons"], f"{case.method} {case.path}: a {status} without a reason"
        assert all(re.fullmatch(r"[A-Z_]+", r["code"]) for r in body["reasons"]), body
    # A value that is also the path's case id is echoed as the case id, not as personal data.
    path_values = {unquote(str(v)) for v in (case.path_parameters or {}).values()}
    for value in set(personal_values(case.body)) - path_values:
        assert value not in response.text, (
            f"{case.method} {case.path} echoed {value!r}: {response.text[:400]}"
        )


def call_with_key(case: Any) -> None:
    # A business refusal of schema-valid data is a declared 422 with reasons (R1-R11), so
    # "valid data is accepted" does not hold here; every other built-in check does.
    response = case.call_and_validate(
        headers=OPERATOR_KEY, excluded_checks=[positive_data_acceptance]
    )
    check_error_body(case, response)


def call_without_key(case: Any) -> None:
    case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "x-api-key"}
    response = case.call()
    if case.path.startswith("/v1/"):
        assert response.status_code == 401, (case.method, case.path, response.status_code)
        assert json.loads(response.text)["reasons"][0]["code"] == "CREDENTIALS_REQUIRED"
    check_error_body(case, response)


@pytest.mark.parametrize(("side", "method", "path"), ALL_OPERATIONS)
def test_hostile_requests_get_a_declared_answer_never_a_5xx(
    schemas: dict[str, OpenApiSchema], side: str, method: str, path: str
) -> None:
    fuzz(schemas[side], method, path, call_with_key)


@pytest.mark.parametrize(("side", "method", "path"), ALL_OPERATIONS)
def test_every_call_without_a_key_is_refused(
    schemas: dict[str, OpenApiSchema], side: str, method: str, path: str
) -> None:
    fuzz(schemas[side], method, path, call_without_key)


@pytest.fixture
def incoming_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    return without_broker(inprocess_app("incoming", tmp_path, monkeypatch)).app


async def post(app: Any, body: bytes, headers: dict[str, str]) -> Any:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post(
            "/v1/applications",
            content=body,
            headers={"Content-Type": "application/json", **headers},
        )


async def test_a_body_over_the_limit_is_refused_before_it_is_read(incoming_app: Any) -> None:
    response = await post(incoming_app, b" " * (MAX_DOCUMENT_BYTES + 1), OPERATOR_KEY)
    assert response.status_code == 413
    assert response.json()["reasons"][0]["code"] == "TOO_LARGE"


async def test_a_body_that_is_not_utf8_gets_a_reason_not_a_stack_trace(incoming_app: Any) -> None:
    response = await post(incoming_app, b'{"person": "\xff\xfe"}', OPERATOR_KEY)
    # README: 400 MALFORMED_BODY (not UTF-8 JSON).
    assert response.status_code == 400
    assert response.json()["reasons"][0]["code"] == "MALFORMED_BODY"


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2", b"", b"\x00\x01", b'{"a": 1} trailing'])
async def test_a_body_that_is_not_json_is_400_malformed_body(
    incoming_app: Any, body: bytes
) -> None:
    """README: 400 MALFORMED_BODY, never 422 INVALID_FIELD with a character offset."""
    response = await post(incoming_app, body, OPERATOR_KEY)
    reasons = response.json()["reasons"]
    if body == b"":
        # No body at all is a missing field, as the document declares.
        assert (response.status_code, reasons[0]["code"]) == (422, "INVALID_FIELD")
        return
    assert response.status_code == 400
    assert reasons[0]["code"] == "MALFORMED_BODY"
    assert "field" not in reasons[0]


async def test_an_oversized_body_sent_chunked_is_413_too_large(incoming_app: Any) -> None:
    """Without Content-Length the 256 KiB limit still holds: the body is counted as read."""

    async def chunks() -> Any:
        for _ in range(MAX_DOCUMENT_BYTES // 4096 + 2):
            yield b" " * 4096

    transport = httpx.ASGITransport(app=incoming_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post(
            "/v1/applications",
            content=chunks(),
            headers={"Content-Type": "application/json", **OPERATOR_KEY},
        )
    assert response.status_code == 413
    assert response.json()["reasons"][0]["code"] == "TOO_LARGE"


async def test_a_small_body_sent_chunked_is_read_as_any_other(incoming_app: Any) -> None:
    async def chunks() -> Any:
        yield b"{not "
        yield b"json"

    transport = httpx.ASGITransport(app=incoming_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post(
            "/v1/applications",
            content=chunks(),
            headers={"Content-Type": "application/json", **OPERATOR_KEY},
        )
    assert (response.status_code, response.json()["reasons"][0]["code"]) == (400, "MALFORMED_BODY")


def _with_account(number: str) -> bytes:
    from tests.unit.test_r17_progress import application, person_id

    body = application(person_id())
    body["bank_account"] = {
        "bank_name": "工商银行",
        "account_number": number,
        "account_holder": "张三",
    }
    return json.dumps(body).encode()


async def _apply_with_account(app: Any, number: str) -> Any:
    """An application with this account number, to the app with its lifespan running."""
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        app.router.lifespan_context(app),
    ):
        return await client.post(
            "/v1/applications",
            content=_with_account(number),
            headers={"Content-Type": "application/json", **OPERATOR_KEY},
        )


async def test_r19_an_account_number_typed_with_spaces_is_taken_as_its_digits(
    incoming_app: Any,
) -> None:
    response = await _apply_with_account(incoming_app, "6222 0212 3456\u30007890 123")
    assert response.status_code == 201, response.text
    assert "6222" not in response.text


@pytest.mark.parametrize(
    "number", ["6222-0212-3456-7890", "62220212345678901234567890123456", "ABCD02123456789"]
)
async def test_r19_an_account_number_that_is_not_12_to_30_digits_is_422_with_its_reason(
    incoming_app: Any, number: str
) -> None:
    response = await _apply_with_account(incoming_app, number)
    assert response.status_code == 422, response.text
    assert [r["code"] for r in response.json()["reasons"]] == ["INVALID_BANK_ACCOUNT"]
    assert number not in response.text


async def test_without_a_key_even_a_malformed_body_gets_only_a_401(incoming_app: Any) -> None:
    response = await post(incoming_app, b"{not json", {})
    assert response.status_code == 401
    assert response.json()["reasons"][0]["code"] == "CREDENTIALS_REQUIRED"


@pytest.mark.parametrize("number", ["6222-0212-3456-7890", "ABCD02123456789"])
def test_r19_a_correction_with_an_account_number_that_is_not_digits_is_refused_422(
    number: str,
) -> None:
    """The correction path builds the contact letter's bank account from the body: an
    account that is not 12-30 digits is refused with the reason (it answered 500)."""
    from datetime import UTC, datetime

    from services.common.api import Refused
    from services.common.auth import Principal
    from services.common.tables import CaseRow
    from services.incoming_agency.applications import ApplicationIn
    from services.incoming_agency.cases import CorrectApplication

    body = ApplicationIn.model_validate(json.loads(_with_account(number)))
    now = datetime.now(UTC)
    row = CaseRow(
        case_id="TR20261203CORRECT001",
        status="refused_correctable",
        status_since=now,
        from_region=body.from_region,
        to_region=body.to_region,
        from_scheme="employee",
        to_scheme="employee",
        person_key="x",
        id_masked="x",
        created_at=now,
        updated_at=now,
    )
    clerk = Principal(agency="clerk-7", regions=frozenset({"*"}), roles=frozenset({"clerk"}))
    outcome = CorrectApplication(body).decide(row, clerk)
    assert isinstance(outcome, Refused)
    assert (outcome.status, outcome.code, outcome.rule) == (422, "INVALID_BANK_ACCOUNT", "R10")
    assert number not in outcome.message
