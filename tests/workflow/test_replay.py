"""Determinism guard (style.md point 10): stored histories of the main paths replay
against the current workflow code.

The histories in ``histories/`` are recorded once and committed. A workflow change that
alters the commands of a recorded path makes ``test_replay_stored_histories`` fail: such a
change must go through ``workflow.patched(...)`` with a named patch id. After a deliberate
change that is patched, re-record with::

    MEDTRANSFER_RECORD_HISTORIES=1 .venv/bin/pytest tests/workflow/test_replay.py

and commit the new files next to the old ones' replacement.
"""

from __future__ import annotations

import base64
import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from tests.support.workflow_fakes import (
    ALL_WORKFLOWS,
    FakeOutgoingRecords,
    InMemoryPlatform,
    refusal_reason,
    running_platform,
    sandboxed_runner,
    transfer_request,
    wait_until,
)
from workflows.incoming.types import IncomingCaseInput, WithdrawSignal
from workflows.incoming.workflows import IncomingCaseWorkflow
from workflows.outgoing.workflows import OutgoingCaseWorkflow

pytestmark = pytest.mark.workflow

HISTORIES = Path(__file__).parent / "histories"
PATHS = (
    "happy-path-with-decisions",
    "happy-path-batched",
    "hard-refusal",
    "soft-refusal-corrected",
    "withdrawal-refused-too-late",
)
EXPECTED = sorted(f"{side}-{path}" for path in PATHS for side in ("incoming", "outgoing"))


def replayer() -> Replayer:
    return Replayer(
        workflows=ALL_WORKFLOWS,
        data_converter=pydantic_data_converter,
        workflow_runner=sandboxed_runner(),
    )


def load_history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text(encoding="utf-8"))


def save_history(name: str, history: WorkflowHistory, *, overwrite: bool = False) -> bool:
    """Store ``history`` as ``histories/<name>.json`` unless it exists (or ``overwrite``);
    True when written. The regeneration entry point for the files above."""
    path = HISTORIES / f"{name}.json"
    if path.exists() and not overwrite:
        return False
    HISTORIES.mkdir(exist_ok=True)
    data = json.loads(history.to_json())
    _scrub_identities(data)  # "pid@host" of the recording worker: noise in a diff
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return True


def _decoded_payloads(node: Any) -> str:
    """Every payload's data under ``node``, decoded (marker details name the activity)."""
    if isinstance(node, dict):
        own = (
            [base64.b64decode(node["data"]).decode("utf-8", "replace")]
            if "data" in node and isinstance(node["data"], str)
            else []
        )
        return " ".join(own + [_decoded_payloads(v) for v in node.values()])
    if isinstance(node, list):
        return " ".join(_decoded_payloads(item) for item in node)
    return ""


def _scrub_identities(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "identity" and isinstance(value, str):
                node[key] = "workflow-test"
            else:
                _scrub_identities(value)
    elif isinstance(node, list):
        for item in node:
            _scrub_identities(item)


async def record_histories(platform: InMemoryPlatform, path_name: str) -> None:
    """Replay both fresh histories at once, then store them (first run or re-record)."""
    overwrite = os.environ.get("MEDTRANSFER_RECORD_HISTORIES") == "1"
    assert platform.incoming is not None
    assert platform.outgoing is not None
    for side, handle in (("incoming", platform.incoming), ("outgoing", platform.outgoing)):
        history = await handle.fetch_history()
        await replayer().replay_workflow(history)
        save_history(f"{side}-{path_name}", history, overwrite=overwrite)


async def test_replay_records_happy_path(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    async with running_platform(time_skipping_env, client) as platform:
        await platform.start_case()
        assert await platform.results() == ("completed", "completed")
        # "happy-path" was stored before the record-decisions patch; this one after it.
        await record_histories(platform, "happy-path-with-decisions")


async def test_replay_records_happy_path_batched(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    """After the batch-records patch: an event and the decisions it implies are written
    by one local activity (CaseFlow.together), 20 bookkeeping steps per case instead of 27
    (bench/shape.py mirrors these counts)."""
    async with running_platform(time_skipping_env, client) as platform:
        await platform.start_case()
        assert await platform.results() == ("completed", "completed")
        assert platform.incoming is not None
        assert platform.outgoing is not None
        local_activities = {}
        for side, handle in (("incoming", platform.incoming), ("outgoing", platform.outgoing)):
            history = json.loads((await handle.fetch_history()).to_json())
            markers = [
                e
                for e in history["events"]
                if e.get("markerRecordedEventAttributes", {}).get("markerName")
                == "core_local_activity"
            ]
            local_activities[side] = len(markers)
            assert "record_case_events" in _decoded_payloads(markers)
        assert local_activities == {"incoming": 10, "outgoing": 10}
        await record_histories(platform, "happy-path-batched")


async def test_replay_records_hard_refusal(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    records = FakeOutgoingRecords(refusals=[[refusal_reason("PERSON_UNKNOWN")]])
    async with running_platform(time_skipping_env, client, outgoing_records=records) as platform:
        await platform.start_case()
        assert await platform.results() == ("refused", "refused")
        await record_histories(platform, "hard-refusal")


async def test_replay_records_soft_refusal_corrected(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    records = FakeOutgoingRecords(refusals=[[refusal_reason("CONTRIBUTION_ARREARS")]])
    async with running_platform(time_skipping_env, client, outgoing_records=records) as platform:
        accepted_on = await platform.today()
        handle = await platform.start_case(accepted_on)
        await wait_until(lambda: "transfer_refused_correctable" in platform.incoming_store.names())
        await handle.signal(
            IncomingCaseWorkflow.correct, transfer_request(accepted_on, reason="arrears paid")
        )
        assert await platform.results() == ("completed", "completed")
        await record_histories(platform, "soft-refusal-corrected")


async def test_replay_records_withdrawal_refused_too_late(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    """The crossing protocol: a withdrawal after transfer-out, refused as too late, the
    case credited (tests/workflow/test_crossings.py)."""
    async with running_platform(time_skipping_env, client) as platform:
        platform.hold("outgoing")
        handle = await platform.start_case()
        await wait_until(lambda: "transferred_out" in platform.outgoing_store.names())
        await handle.signal(IncomingCaseWorkflow.withdraw, WithdrawSignal(reason="late"))
        await wait_until(lambda: "withdrawal_requested" in platform.incoming_store.names())
        await wait_until(lambda: platform.sent("outgoing", "WithdrawalAnswered") != [])
        await platform.release("outgoing")
        assert await platform.results() == ("completed", "completed")
        await record_histories(platform, "withdrawal-refused-too-late")


async def test_replay_stored_histories() -> None:
    stored = sorted(HISTORIES.glob("*.json"))
    assert sorted(p.stem for p in stored) == EXPECTED
    for path in stored:
        # Raises (NondeterminismError and the like) when today's code disagrees.
        await replayer().replay_workflow(load_history(path))


@workflow.defn(name="IncomingCaseWorkflow", sandboxed=False)
class PausingIncomingCaseWorkflow:
    """The incoming case as if a pause had been added before its first step, unpatched."""

    @workflow.run
    async def run(self, case: IncomingCaseInput) -> str:
        await workflow.sleep(timedelta(seconds=1))
        return "changed"


async def test_replay_fails_on_an_unpatched_command_change() -> None:
    changed = Replayer(
        workflows=[PausingIncomingCaseWorkflow, OutgoingCaseWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    with pytest.raises(workflow.NondeterminismError):
        await changed.replay_workflow(load_history(HISTORIES / "incoming-happy-path-batched.json"))
