"""Two agencies, two deployments (issue 13 item 3): each serves its own regions with its
own databases, key directory (its own private keys only), Temporal namespace, codec key,
Kafka consumer group and processes; they share only the platform topics and the public
key registry. A third deployment of the incoming side shows that two deployments of one
side each get their own documents (no shared consumer group drops the other's).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError

from contracts.documents import BalanceRemitted
from contracts.envelope import Envelope
from contracts.keyring import private_key_path
from contracts.local_trust import local_key_id
from contracts.signing import load_private_key, sign_envelope
from harness.agencies import AgencyStack, free_port, stack_env
from harness.servers import CACHE_DIR, ScriptServer
from tests.unit.test_contracts import sample_documents

pytestmark = pytest.mark.integration

XIAN, PINGLIANG, CHENGDU = "610100", "620800", "510100"
TEMPORAL_CLI = CACHE_DIR / "temporal-cli-v1.5.1" / "temporal"


@dataclass
class Agencies:
    a: AgencyStack  # Xi'an: both sides
    b: AgencyStack  # Pingliang: both sides
    c: AgencyStack  # Chengdu: the incoming side only
    root: Path
    temporal_target: str


async def _namespace(client: Client, name: str) -> None:
    try:
        await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(
                namespace=name,
                workflow_execution_retention_period=timedelta(days=1),  # type: ignore[arg-type]
            )
        )
    except RPCError as exc:
        if "already" not in str(exc).lower():
            raise


def _deployment(
    root: Path,
    name: str,
    regions: list[str],
    prefix: str,
    kafka: ScriptServer,
    temporal: ScriptServer,
    client: Client,
    sides: tuple[str, ...] = ("outgoing", "incoming"),
) -> AgencyStack:
    home = root / name
    env = stack_env(home, prefix, kafka.target, temporal.target)
    codec_key = base64.b64encode(os.urandom(32)).decode("ascii")
    env |= {
        "MEDTRANSFER_SERVED_REGIONS": json.dumps(regions),
        "MEDTRANSFER_DEPLOYMENT": name,
        "MEDTRANSFER_TEMPORAL_NAMESPACE": f"agency-{name}-{prefix}",
        # Shared: only the public registry (the local platform operator signs it).
        "MEDTRANSFER_KEY_REGISTRY_FILE": str(root / "trust" / "registry.json"),
        "MEDTRANSFER_TEMPORAL_CODEC_KEYS": json.dumps({f"{name}-1": codec_key}),
        "MEDTRANSFER_TEMPORAL_CODEC_KEY_ID": f"{name}-1",
    }
    return AgencyStack(
        root=home,
        prefix=prefix,
        kafka_bootstrap=kafka.target,
        temporal=client,
        incoming_url=f"http://127.0.0.1:{free_port()}",
        outgoing_url=f"http://127.0.0.1:{free_port()}",
        env=env,
        sides=sides,
    )


@pytest.fixture(scope="module")
async def agencies(
    tmp_path_factory: pytest.TempPathFactory,
    kafka: ScriptServer,
    temporal: ScriptServer,
    temporal_client: Client,
) -> AsyncIterator[Agencies]:
    root = tmp_path_factory.mktemp("deployments")
    prefix = f"dp{uuid.uuid4().hex[:8]}"
    stacks = {
        "a": _deployment(root, "a", [XIAN], prefix, kafka, temporal, temporal_client),
        "b": _deployment(root, "b", [PINGLIANG], prefix, kafka, temporal, temporal_client),
        "c": _deployment(
            root, "c", [CHENGDU], prefix, kafka, temporal, temporal_client, ("incoming",)
        ),
    }
    for stack in stacks.values():
        await _namespace(temporal_client, stack.env["MEDTRANSFER_TEMPORAL_NAMESPACE"])
    for stack in stacks.values():
        stack.start()
    try:
        for stack in stacks.values():
            await stack.wait_ready(timeout=180)
        yield Agencies(stacks["a"], stacks["b"], stacks["c"], root, temporal.target)
    finally:
        for stack in stacks.values():
            stack.stop()


def _key_regions(stack: AgencyStack) -> set[str]:
    return {path.parent.name for path in stack.keys_dir.glob("*/*.pem")}


def test_each_deployment_holds_only_its_own_regions_private_keys(agencies: Agencies) -> None:
    assert _key_regions(agencies.a) == {XIAN}
    assert _key_regions(agencies.b) == {PINGLIANG}
    assert _key_regions(agencies.c) == {CHENGDU}
    registry = json.loads((agencies.root / "trust" / "registry.json").read_text())
    assert {entry["region"] for entry in registry["keys"]} >= {XIAN, PINGLIANG, CHENGDU}
    assert "PRIVATE" not in json.dumps(registry)


async def test_the_handshake_completes_between_two_deployments_both_ways(
    agencies: Agencies,
) -> None:
    a, b, c = agencies.a, agencies.b, agencies.c
    # Pingliang -> Xi'an (A incoming, B outgoing), Pingliang -> Chengdu (C incoming, B
    # outgoing: B's documents reach A's and C's consumer groups, each takes its own),
    # Xi'an -> Pingliang (B incoming, A outgoing).
    to_xian, to_chengdu = b.person(PINGLIANG), b.person(PINGLIANG)
    to_pingliang = a.person(XIAN)
    await b.enrol(to_xian)
    await b.enrol(to_chengdu)
    await a.enrol(to_pingliang)
    cases = [
        (a, b, await a.submit_ok(a.application(to_xian, XIAN)), to_xian),
        (c, b, await c.submit_ok(c.application(to_chengdu, CHENGDU)), to_chengdu),
        (b, a, await b.submit_ok(b.application(to_pingliang, PINGLIANG)), to_pingliang),
    ]
    for incoming, outgoing, case_id, _ in cases:
        await incoming.wait_status("incoming", case_id, "completed", timeout=120)
        await outgoing.wait_status("outgoing", case_id, "completed", timeout=60)
    # Each case lives in its own deployment's databases only.
    assert not a.query("incoming", "SELECT 1 FROM case_record WHERE case_id = ?", cases[1][2])
    assert not c.query("incoming", "SELECT 1 FROM case_record WHERE case_id = ?", cases[0][2])

    # The Temporal histories, read with the temporal CLI, carry no ID number or name.
    for incoming, outgoing, case_id, person in cases:
        for stack, side in ((incoming, "incoming"), (outgoing, "outgoing")):
            history = _history(agencies, stack, f"{side}-{case_id}")
            assert case_id in history or len(history) > 1000
            assert person.id_number not in history, f"{side} history shows the ID number"
            assert person.name not in history, f"{side} history shows the name"
            assert "binary/encrypted" in history or "YmluYXJ5L2VuY3J5cHRlZA" in history


def _history(agencies: Agencies, stack: AgencyStack, workflow_id: str) -> str:
    result = subprocess.run(
        [
            str(TEMPORAL_CLI),
            "workflow",
            "show",
            "--address",
            agencies.temporal_target,
            "--namespace",
            stack.env["MEDTRANSFER_TEMPORAL_NAMESPACE"],
            "--workflow-id",
            workflow_id,
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout
    # The history as JSON with non-ASCII unescaped, plus every base64 payload decoded.
    readable = json.dumps(json.loads(text), ensure_ascii=False)
    decoded = []
    for token in _base64_tokens(readable):
        try:
            decoded.append(base64.b64decode(token).decode("utf-8", "replace"))
        except ValueError:
            continue
    return "\n".join([text, readable, *decoded])


def _base64_tokens(text: str) -> list[str]:
    return re.findall(r'"([A-Za-z0-9+/]{16,}={0,2})"', text)


async def test_a_document_forged_in_another_agencys_name_is_refused(agencies: Agencies) -> None:
    a, b, c = agencies.a, agencies.b, agencies.c
    # Whoever holds B's keys (Pingliang) tries to make A transfer out, in Chengdu's name,
    # and to make C credit a remittance, in Xi'an's name: under Pingliang's own key id
    # and under the impersonated region's.
    b_key = load_private_key(
        private_key_path(b.keys_dir, PINGLIANG, local_key_id(PINGLIANG)).read_bytes()
    )
    forged_case = f"forged-{uuid.uuid4().hex[:8]}"
    request = sample_documents()["TransferRequested"].model_copy(
        update={"from_region": XIAN, "to_region": CHENGDU}
    )
    remit = BalanceRemitted(
        remittance_id=f"{forged_case}-main",
        amount_fen=100_000,
        remitted_on=datetime.now(UTC).date(),
    )
    documents: list[tuple[str, Envelope]] = []
    for key_id in (local_key_id(PINGLIANG), local_key_id(XIAN), local_key_id(CHENGDU)):
        # To A's outgoing side: a contact letter "from Chengdu" (would start a transfer-out).
        letter = Envelope.wrap(
            request,
            case_id=forged_case,
            step=f"request-{key_id}",
            from_region=CHENGDU,
            to_region=XIAN,
            sent_at=datetime.now(UTC),
        )
        documents.append((a.topics.to_outgoing, sign_envelope(letter, b_key, key_id=key_id)))
        # To C's incoming side: a remittance "from Xi'an" (would credit money).
        money = Envelope.wrap(
            remit,
            case_id=forged_case,
            step=f"remit-{key_id}",
            from_region=XIAN,
            to_region=CHENGDU,
            sent_at=datetime.now(UTC),
        )
        documents.append((a.topics.to_incoming, sign_envelope(money, b_key, key_id=key_id)))
    producer = AIOKafkaProducer(bootstrap_servers=a.kafka_bootstrap)
    await producer.start()
    try:
        for topic, envelope in documents:
            await producer.send_and_wait(
                topic, envelope.model_dump_json().encode(), key=envelope.kafka_key
            )
    finally:
        await producer.stop()
    for stack, side in ((a, "outgoing"), (c, "incoming")):
        rows: list[tuple[str, ...]] = []
        for _ in range(100):
            rows = stack.query(
                side, "SELECT reason FROM dead_letter WHERE case_id = ?", forged_case
            )
            if len(rows) == 3:
                break
            await asyncio.sleep(0.3)
        assert len(rows) == 3, rows
        assert all(reason.startswith("SIGNATURE_INVALID") for (reason,) in rows), rows
        assert not stack.query(
            side, "SELECT 1 FROM verified_document WHERE case_id = ?", forged_case
        )
        assert not stack.query(side, "SELECT 1 FROM case_record WHERE case_id = ?", forged_case)
    # A's incoming side skipped the remittances (not its region): no dead letter there.
    assert not a.query("incoming", "SELECT 1 FROM dead_letter WHERE case_id = ?", forged_case)
