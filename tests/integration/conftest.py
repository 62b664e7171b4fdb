"""One pair of agency services (API + worker per side) per test session, on the real
Kafka and Temporal, with a fresh topic prefix, task queues, database and keys."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from harness.agencies import AgencyStack, free_port, stack_env
from harness.servers import ScriptServer
from tests.support.agencies import PeerAgency


@pytest.fixture(scope="session")
async def agencies(
    tmp_path_factory: pytest.TempPathFactory,
    kafka: ScriptServer,
    temporal: ScriptServer,
    temporal_client: Client,
) -> AsyncIterator[AgencyStack]:
    root: Path = tmp_path_factory.mktemp("agencies")
    prefix = f"it{uuid.uuid4().hex[:10]}"
    stack = AgencyStack(
        root=root,
        prefix=prefix,
        kafka_bootstrap=kafka.target,
        temporal=temporal_client,
        incoming_url=f"http://127.0.0.1:{free_port()}",
        outgoing_url=f"http://127.0.0.1:{free_port()}",
        env=stack_env(root, prefix, kafka.target, temporal.target),
    )
    stack.start()
    try:
        await stack.wait_ready()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
async def peer(agencies: AgencyStack) -> AsyncIterator[PeerAgency]:
    async with PeerAgency(agencies) as agency:
        yield agency
