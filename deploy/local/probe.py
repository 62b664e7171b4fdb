"""Readiness probes for the local stack: a real API call, never a sleep.

    python deploy/local/probe.py kafka 127.0.0.1:9092
    python deploy/local/probe.py temporal 127.0.0.1:7233
    python deploy/local/probe.py http http://127.0.0.1:8001/health
    python deploy/local/probe.py kafka-cluster 127.0.0.1:9092,127.0.0.1:9093 3
        (that many brokers registered, no partition under-replicated)
    python deploy/local/probe.py group 127.0.0.1:9092 medtransfer-incoming-agency 2
        (the consumer group is stable with at least that many members)
    python deploy/local/probe.py poller 127.0.0.1:7233 medtransfer-incoming 12345
        (the worker process 12345 polls the task queue for workflows and activities)

Exit 0 when the server answered, 1 otherwise (the reason on stderr).
"""

from __future__ import annotations

import asyncio
import os
import sys
import urllib.request


async def kafka_ready(bootstrap: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    await admin.start()
    try:
        await admin.describe_cluster()
    finally:
        await admin.close()


async def temporal_ready(target: str) -> None:
    from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
    from temporalio.client import Client

    client = await Client.connect(target)
    await client.workflow_service.get_system_info(GetSystemInfoRequest())


async def kafka_cluster_ready(bootstrap: str, brokers: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    await admin.start()
    try:
        registered = len((await admin.describe_cluster())["brokers"])
        if registered < brokers:
            raise RuntimeError(f"{registered} of {brokers} brokers registered")
        lagging = [
            f"{topic['topic']}[{part['partition']}]"
            for topic in await admin.describe_topics()
            for part in topic["partitions"]
            if len(part["isr"]) < len(part["replicas"])
        ]
        if lagging:
            raise RuntimeError(f"{len(lagging)} partitions under-replicated, e.g. {lagging[0]}")
    finally:
        await admin.close()


async def group_ready(bootstrap: str, group: str, members: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    await admin.start()
    try:
        response = (await admin.describe_consumer_groups([group]))[0]
        described = response.to_object()["groups"][0]
        found = len(described["members"])
        if described["state"] != "Stable" or found < members:
            raise RuntimeError(f"group {described['state']} with {found} of {members} members")
    finally:
        await admin.close()


async def poller_ready(target: str, queue: str, pid: str) -> None:
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
    from temporalio.client import Client

    namespace = os.environ.get("MEDTRANSFER_TEMPORAL_NAMESPACE", "default")
    client = await Client.connect(target, namespace=namespace)
    for kind in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY):
        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=namespace, task_queue=TaskQueue(name=queue), task_queue_type=kind
            )
        )
        # The SDK's worker identity is "<pid>@<host>".
        if not any(p.identity.startswith(f"{pid}@") for p in response.pollers):
            raise RuntimeError(f"process {pid} does not poll {queue} ({TaskQueueType.Name(kind)})")


def http_ready(url: str) -> None:
    with urllib.request.urlopen(url, timeout=3) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")


def main(argv: list[str]) -> int:
    arity = {"kafka": 3, "temporal": 3, "http": 3, "kafka-cluster": 4, "group": 5, "poller": 5}
    if len(argv) < 2 or arity.get(argv[1]) != len(argv):
        print(__doc__, file=sys.stderr)
        return 2
    kind, target = argv[1], argv[2]
    try:
        if kind == "kafka-cluster":
            asyncio.run(asyncio.wait_for(kafka_cluster_ready(target, int(argv[3])), timeout=8))
        elif kind == "group":
            asyncio.run(asyncio.wait_for(group_ready(target, argv[3], int(argv[4])), timeout=8))
        elif kind == "poller":
            asyncio.run(asyncio.wait_for(poller_ready(target, argv[3], argv[4]), timeout=8))
        elif kind == "kafka":
            asyncio.run(asyncio.wait_for(kafka_ready(target), timeout=8))
        elif kind == "temporal":
            asyncio.run(asyncio.wait_for(temporal_ready(target), timeout=8))
        else:
            http_ready(target)
    except Exception as exc:  # a probe reports any failure as "not ready"
        print(f"{kind} at {target} not ready: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter finalisation: the Temporal client's runtime threads can abort it
    # ("PyGILState_Release ... finalizing"), turning a good answer into exit 134.
    os._exit(code)
