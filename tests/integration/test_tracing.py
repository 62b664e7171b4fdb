"""OpenTelemetry traces across the four processes: one case, submitted over HTTP, is one
trace from the incoming API's server span through the incoming worker, Kafka, the
outgoing API and worker, and back; no span carries the person's ID number or name."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from harness.agencies import AgencyStack, free_port, stack_env
from harness.servers import ScriptServer

pytestmark = pytest.mark.integration

SERVICES = {
    "incoming-agency-api",
    "incoming-agency-worker",
    "outgoing-agency-api",
    "outgoing-agency-worker",
}
Span = dict[str, Any]


@pytest.fixture(scope="module")
async def traced(
    tmp_path_factory: pytest.TempPathFactory,
    kafka: ScriptServer,
    temporal: ScriptServer,
    temporal_client: Client,
) -> AsyncIterator[AgencyStack]:
    """Both services as four processes with tracing to one JSON-lines file each."""
    root: Path = tmp_path_factory.mktemp("traced")
    prefix = f"tr{uuid.uuid4().hex[:10]}"
    env = stack_env(root, prefix, kafka.target, temporal.target) | {
        "MEDTRANSFER_TRACING_EXPORTER": "file",
        "MEDTRANSFER_TRACING_DIR": str(root / "traces"),
    }
    stack = AgencyStack(
        root=root,
        prefix=prefix,
        kafka_bootstrap=kafka.target,
        temporal=temporal_client,
        incoming_url=f"http://127.0.0.1:{free_port()}",
        outgoing_url=f"http://127.0.0.1:{free_port()}",
        env=env,
    )
    stack.start()
    try:
        await stack.wait_ready()
        yield stack
    finally:
        stack.stop()


def read_spans(trace_dir: Path) -> list[Span]:
    return [
        json.loads(line)
        for path in sorted(trace_dir.glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def one(spans: list[Span], service: str, name: str) -> Span:
    found = [s for s in spans if s["service.name"] == service and s["name"] == name]
    assert found, f"no span {name!r} from {service}; have {sorted({s['name'] for s in spans})}"
    return found[0]


def ancestors(span: Span, by_id: dict[str, Span]) -> list[Span]:
    chain = []
    while span.get("parent_span_id") in by_id:
        span = by_id[span["parent_span_id"]]
        chain.append(span)
    return chain


def check_case_trace(spans: list[Span], prefix: str) -> None:
    """Raises AssertionError until the whole chain is in the files."""
    [http] = [
        s
        for s in spans
        if s["service.name"] == "incoming-agency-api"
        and s["kind"] == "SERVER"
        and s["attributes"].get("http.route") == "/v1/applications"
    ]
    trace = [s for s in spans if s["trace_id"] == http["trace_id"]]
    by_id = {s["span_id"]: s for s in trace}
    assert {s["service.name"] for s in trace} == SERVICES

    # HTTP -> StartWorkflow: the client interceptor's span is the request's child.
    start = one(trace, "incoming-agency-api", "StartWorkflow:IncomingCaseWorkflow")
    assert start["parent_span_id"] == http["span_id"]
    assert start["kind"] == "CLIENT"
    one(trace, "incoming-agency-worker", "RunWorkflow:IncomingCaseWorkflow")
    for name in ("deliver_document", "complete_transfer_in", "credit_balance"):
        one(trace, "incoming-agency-worker", f"RunActivity:{name}")

    # Kafka publish -> consume: the outgoing API's processing span continues the producer
    # span that the incoming worker's deliver_document activity opened.
    to_outgoing = f"{prefix}.platform.to-outgoing"
    consume = one(trace, "outgoing-agency-api", f"{to_outgoing} process")
    assert consume["kind"] == "CONSUMER"
    producer = by_id[consume["parent_span_id"]]
    assert (producer["service.name"], producer["kind"]) == ("incoming-agency-worker", "PRODUCER")
    publish = [
        s
        for s in trace
        if s["name"] == f"{to_outgoing} publish" and s["service.name"] == "incoming-agency-worker"
    ]
    assert publish, "no Kafka publish span from the incoming worker"
    run = next(a for a in ancestors(producer, by_id) if a["name"].startswith("RunActivity:"))
    assert run["name"] == "RunActivity:deliver_document"

    # The outgoing side continues the same trace into its workflow and activities...
    signal = one(trace, "outgoing-agency-api", "SignalWithStartWorkflow:OutgoingCaseWorkflow")
    assert consume in ancestors(signal, by_id)
    one(trace, "outgoing-agency-worker", "RunWorkflow:OutgoingCaseWorkflow")
    for name in ("check_transfer_out", "transfer_out", "deliver_document"):
        one(trace, "outgoing-agency-worker", f"RunActivity:{name}")
    # ... and back: the incoming API consumes what the outgoing worker published (the
    # information sheet, the remittance) and signals the incoming workflow.
    back = [
        s
        for s in trace
        if s["name"] == f"{prefix}.platform.to-incoming process"
        and s["service.name"] == "incoming-agency-api"
        and by_id[s["parent_span_id"]]["service.name"] == "outgoing-agency-worker"
    ]
    assert back, "the incoming API consumed nothing the outgoing worker published"
    assert any(
        s["name"] == "SignalWorkflow:document" and s["parent_span_id"] == back[0]["span_id"]
        for s in trace
    )


async def test_one_case_is_one_trace_across_the_four_processes(traced: AgencyStack) -> None:
    person = traced.person("620800")
    await traced.enrol(person)
    case_id = await traced.submit_ok(traced.application(person, "610100"))
    await traced.wait_status("incoming", case_id, "completed", timeout=120)
    await traced.wait_status("outgoing", case_id, "completed", timeout=120)

    trace_dir = traced.root / "traces"
    deadline = time.monotonic() + 60  # the last spans end just after the case's last row
    while True:
        spans = read_spans(trace_dir)
        try:
            check_case_trace(spans, traced.prefix)
            break
        except (AssertionError, KeyError, ValueError, StopIteration):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)

    # No span of any process names the person, in clear or otherwise findable.
    for path in trace_dir.glob("*.jsonl"):
        text = path.read_text(encoding="utf-8")
        assert person.id_number not in text, path.name
        assert person.name not in text, path.name
