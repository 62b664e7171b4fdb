"""The multi-node deployment under faults: during a stream of cases a Kafka broker, then
an API replica, then a worker is killed with SIGKILL. Every case still completes on both
sides, money is conserved (I1-I3, harness/invariants.py), the audit trail has no
gap, and the figures of each fault go to <test state>/cluster-figures.json.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from contracts.topics import Topics
from harness.invariants import assert_invariants
from harness.servers import REPO_DIR
from tests.cluster.conftest import API_KEY, TEST_STATE_DIR, LocalCluster
from tests.cluster.load import CaseLoad, Phase, Replicas, figures, people

pytestmark = pytest.mark.cluster

TOPICS = Topics()  # the cluster runs with the default prefix
PARTITIONS = 6  # cluster.sh's default
CASES_PER_PHASE = 8
KILL_AFTER = 2  # cases submitted in a phase before its part is killed
SUBMIT_EVERY = 0.75  # seconds


@pytest.fixture
async def load(cluster: LocalCluster) -> AsyncIterator[CaseLoad]:
    incoming = Replicas(cluster.incoming_urls, API_KEY)
    outgoing = Replicas(cluster.outgoing_urls, API_KEY)
    try:
        yield CaseLoad(incoming, outgoing)
    finally:
        await incoming.close()
        await outgoing.close()


async def busiest_broker(bootstrap: str) -> str:
    """The node leading the most partitions of the platform topics: killing it moves the
    most leaders."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = await admin.describe_topics([TOPICS.to_outgoing, TOPICS.to_incoming])
    finally:
        await admin.close()
    leaders = [p["leader"] for t in topics for p in t["partitions"]]
    return f"kafka-{max(set(leaders), key=leaders.count)}"


async def topic_layout(bootstrap: str) -> dict[str, tuple[int, set[int], str]]:
    """topic -> (partitions, replication factors seen, min.insync.replicas)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(TOPICS.all()))
        configs = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in TOPICS.all()]
        )
    finally:
        await admin.close()
    min_isr = {
        resource[3]: value
        for response in configs
        for resource in response.resources
        for name, value, *_ in resource[4]
        if name == "min.insync.replicas"
    }
    return {
        t["topic"]: (
            len(t["partitions"]),
            {len(p["replicas"]) for p in t["partitions"]},
            min_isr.get(t["topic"], "?"),
        )
        for t in described
    }


async def partitions_by_case(bootstrap: str, topic: str) -> dict[str, set[int]]:
    """case_id (the record key) -> the partitions its records are in."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        seen: dict[str, set[int]] = {}
        while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
            for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                for record in records:
                    seen.setdefault((record.key or b"").decode(), set()).add(tp.partition)
        return seen
    finally:
        await consumer.stop()


async def audit_verified(cluster: LocalCluster, timeout: float = 180) -> str:
    """`python -m services.audit verify` on the cluster's audit store, until it passes."""
    deadline = time.monotonic() + timeout
    env = {
        **cluster.env,
        "MEDTRANSFER_DATA_DIR": str(cluster.root / "data"),
        # The signatures are checked against the cluster's (local demo) key registry.
        "MEDTRANSFER_LOCAL_DEMO": "true",
        "MEDTRANSFER_KEY_REGISTRY_FILE": str(cluster.root / "trust" / "registry.json"),
    }
    while True:
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "services.audit", "verify"],
            cwd=REPO_DIR,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode == 0:
            return result.stdout
        if time.monotonic() > deadline:
            raise AssertionError(f"audit trail not complete:\n{result.stdout[-3000:]}")
        await asyncio.sleep(2)


async def test_cases_complete_and_money_is_conserved_when_a_broker_a_replica_and_a_worker_die(
    cluster: LocalCluster, load: CaseLoad
) -> None:
    began = time.monotonic()
    layout = await topic_layout(cluster.bootstrap)
    assert layout == {name: (PARTITIONS, {3}, "2") for name in TOPICS.all()}, layout

    crowd = people(CASES_PER_PHASE * 4)
    await asyncio.gather(*(load.enrol(p) for p in crowd))
    victims = [
        ("baseline", None),
        ("kafka broker", await busiest_broker(cluster.bootstrap)),
        ("service replica", "incoming-api-1"),
        ("worker", "outgoing-worker-1"),
    ]
    phases: list[Phase] = []
    for name, part in victims:
        phase = Phase(name, part, started_at=time.time())
        phases.append(phase)
        load.incoming.calls = load.outgoing.calls = phase.calls
        cases = []
        for i in range(CASES_PER_PHASE):
            if part and i == KILL_AFTER:
                cluster.kill(part)
                phase.killed_at = time.time()
            cases.append((await load.submit(crowd.pop(), name)).case_id)
            await asyncio.sleep(SUBMIT_EVERY)
        await load.wait_completed(cases, timeout=300)
        phase.settled_at = time.time()
        if part:
            phase.recovery_s = await asyncio.to_thread(cluster.up)

    status = cluster.status()
    assert status.returncode == 0, status.stdout + status.stderr

    # I1-I3: one agreeing terminal state per case, every debit settled once, same amount.
    report = assert_invariants(cluster, list(load.submitted), peer_regions=())
    assert report.states == {c: ("completed", "completed") for c in load.submitted}
    recon = report.reconciliation
    assert recon is not None
    debited = sum(item.debit_fen or 0 for item in recon.items)
    settled = sum(item.settled_fen or 0 for item in recon.items)
    assert debited == settled > 0
    # Keyed by case id, a case's documents stayed in one partition through the failover.
    for topic in (TOPICS.to_outgoing, TOPICS.to_incoming):
        spread = await partitions_by_case(cluster.bootstrap, topic)
        assert set(load.submitted) <= set(spread), topic
        assert all(len(spread[c]) == 1 for c in load.submitted), spread
    await audit_verified(cluster)

    measured = figures(phases, load.submitted, await load.timelines())
    result: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cluster": {
            "kafka_nodes": 3,
            "replication_factor": 3,
            "min_insync_replicas": 2,
            "partitions": PARTITIONS,
            "api_replicas_per_side": 2,
            "workers_per_side": 2,
            "start_s": round(cluster.up_seconds or 0, 1),
        },
        "cases": len(load.submitted),
        "all_completed": True,
        "money": {
            "remittances": len(recon.items),
            "debited_fen": debited,
            "settled_fen": settled,
        },
        **measured,
        "test_seconds": round(time.monotonic() - began, 1),
    }
    out = TEST_STATE_DIR / "cluster-figures.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"\ncluster figures ({out}):\n{json.dumps(result, indent=2, ensure_ascii=False)}")
