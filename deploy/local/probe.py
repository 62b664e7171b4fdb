"""Readiness probes for the local stack: a real API call, never a sleep.

    python deploy/local/probe.py kafka 127.0.0.1:9092
    python deploy/local/probe.py temporal 127.0.0.1:7233
    python deploy/local/probe.py http http://127.0.0.1:8001/health

Exit 0 when the server answered, 1 otherwise (the reason on stderr).
"""

from __future__ import annotations

import asyncio
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


def http_ready(url: str) -> None:
    with urllib.request.urlopen(url, timeout=3) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in {"kafka", "temporal", "http"}:
        print(__doc__, file=sys.stderr)
        return 2
    kind, target = argv[1], argv[2]
    try:
        if kind == "kafka":
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
    sys.exit(main(sys.argv))
