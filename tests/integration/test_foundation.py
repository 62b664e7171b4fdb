"""The engines themselves: a real Kafka broker and a real Temporal dev server.

These fail, never skip, when either server is not there.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from temporalio.client import Client
from temporalio.worker import Worker

from harness.agencies import free_port
from harness.servers import temporal_server
from tests.support.probe_workflows import DurableTimerWorkflow, GreetingWorkflow, greet

pytestmark = pytest.mark.integration


async def test_faststream_round_trip_through_the_broker(kafka_bootstrap: str, fresh: str) -> None:
    topic = f"test.foundation.{fresh}"
    received: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
    broker = KafkaBroker(kafka_bootstrap)

    @broker.subscriber(
        topic, group_id=f"g-{fresh}", auto_offset_reset="earliest", ack_policy=AckPolicy.ACK
    )
    async def on_message(body: dict[str, str]) -> None:
        if not received.done():
            received.set_result(body)

    async with broker:
        await broker.start()
        await broker.publish({"case_id": fresh}, topic=topic, key=fresh.encode())
        body = await asyncio.wait_for(received, timeout=60)
    assert body == {"case_id": fresh}


async def test_workflow_runs_on_the_dev_server(temporal_client: Client, fresh: str) -> None:
    queue = f"test-foundation-{fresh}"
    async with Worker(
        temporal_client, task_queue=queue, workflows=[GreetingWorkflow], activities=[greet]
    ):
        result = await temporal_client.execute_workflow(
            GreetingWorkflow.run, "agency", id=f"greet-{fresh}", task_queue=queue
        )
    assert result == "hello agency"


async def test_timer_survives_dev_server_restart(tmp_path: Path, fresh: str) -> None:
    """A private dev server (own ports, own SQLite file) is stopped mid-timer and restarted."""
    server = temporal_server(tmp_path / "state", port=free_port(), ui_port=free_port())
    server.start()
    try:
        queue = f"test-restart-{fresh}"
        workflow_id = f"timer-{uuid.uuid4().hex}"
        client = await Client.connect(server.target)
        async with Worker(client, task_queue=queue, workflows=[DurableTimerWorkflow]):
            handle = await client.start_workflow(
                DurableTimerWorkflow.run, 6.0, id=workflow_id, task_queue=queue
            )
            await asyncio.sleep(1)  # let the worker record the timer before the stop
        server.stop()
        server.start()
        client = await Client.connect(server.target)
        async with Worker(client, task_queue=queue, workflows=[DurableTimerWorkflow]):
            result = await client.get_workflow_handle(workflow_id).result()
        assert result == "timer fired"
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        assert any(e.HasField("timer_fired_event_attributes") for e in history.events)
        assert handle.id == workflow_id
    finally:
        server.stop()
