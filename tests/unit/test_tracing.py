"""The span file exporter (one JSON line per span, parent links, the process's service
name, personal data masked) and the HTTP server span that continues a caller's trace."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.trace import SpanKind

from services.common.config import Settings
from services.common.tracing import configure_tracing, instrument_app
from tests.unit.conftest import make_id

pytestmark = pytest.mark.unit

ID_NUMBER = make_id("620800", date(1985, 3, 14), 123)


def spans_in(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_tracing_is_off_by_default() -> None:
    assert configure_tracing(Settings(), "incoming-agency-api") is None


def test_file_exporter_writes_one_json_line_per_span_with_its_parent(tmp_path: Path) -> None:
    provider = configure_tracing(
        Settings(tracing_exporter="file", tracing_dir=tmp_path), "outgoing-agency-worker"
    )
    assert provider is not None
    tracer = provider.get_tracer("test")
    with (
        tracer.start_as_current_span("RunActivity:deliver_document", kind=SpanKind.SERVER),
        tracer.start_as_current_span(
            "medtransfer.platform.to-incoming publish",
            kind=SpanKind.PRODUCER,
            attributes={"messaging.kafka.message.key": "TR20261102ABCDEF0123"},
        ) as child,
    ):
        # Personal data never belongs on a span; if it slips in, it is masked.
        child.set_attribute("http.target", f"/v1/cases?person={ID_NUMBER}")
        child.set_attribute("accounts", ("6222020200112233445",))
        child.record_exception(ValueError(f"bad id {ID_NUMBER}"))
    provider.shutdown()

    text = (tmp_path / "outgoing-agency-worker.jsonl").read_text(encoding="utf-8")
    assert ID_NUMBER not in text
    assert "6222020200112233445" not in text
    child_span, parent_span = spans_in(tmp_path / "outgoing-agency-worker.jsonl")
    assert child_span["trace_id"] == parent_span["trace_id"]
    assert len(child_span["trace_id"]) == 32
    assert len(child_span["span_id"]) == 16
    assert child_span["parent_span_id"] == parent_span["span_id"]
    assert parent_span["parent_span_id"] is None
    assert (child_span["kind"], parent_span["kind"]) == ("PRODUCER", "SERVER")
    assert child_span["service.name"] == "outgoing-agency-worker"
    assert child_span["start"] <= child_span["end"]
    attributes = child_span["attributes"]
    assert attributes["messaging.kafka.message.key"] == "TR20261102ABCDEF0123"
    assert attributes["http.target"].startswith("/v1/cases?person=6208")
    assert child_span["events"][0]["name"] == "exception"


async def test_http_server_span_continues_the_callers_trace(tmp_path: Path) -> None:
    provider = configure_tracing(
        Settings(tracing_exporter="file", tracing_dir=tmp_path), "incoming-agency-api"
    )
    app = FastAPI()
    instrument_app(app, provider)

    @app.get("/v1/cases/{case_id}")
    async def get_case(case_id: str) -> dict[str, str]:
        return {"case_id": case_id}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        response = await http.get(
            "/v1/cases/TR1?q=" + ID_NUMBER,
            headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"},
        )
        assert response.status_code == 200
        assert (await http.get("/health")).status_code == 200
    assert provider is not None
    provider.shutdown()

    [server] = spans_in(tmp_path / "incoming-agency-api.jsonl")  # /health is not traced
    assert (server["kind"], server["name"]) == ("SERVER", "GET /v1/cases/{case_id}")
    assert (server["trace_id"], server["parent_span_id"]) == (caller_trace, caller_span)
    assert server["parent_is_remote"] is True
    assert server["attributes"]["http.route"] == "/v1/cases/{case_id}"
    assert ID_NUMBER not in json.dumps(server, ensure_ascii=False)
