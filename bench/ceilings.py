"""The engines' own ceilings on this machine, each measured alone: Kafka through a raw
aiokafka loop and through FastStream, a no-op workflow of the case's shape on the same
Temporal dev server and worker settings, and the case's database transactions."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from temporalio.client import Client

from bench.procs import CpuMeter
from bench.shape import ShapeIncoming, incoming_id
from harness.agencies import stop_processes
from harness.servers import REPO_DIR
from services.common.app_factory import INBOX_SUBSCRIBER_WORKERS
from services.common.inbound import raw_body

RECORD = (b'{"payload": "' + b"x" * 1000 + b'"}')[:1024]  # 1 KB
Log = Callable[[str], None]


async def _produce(send: Callable[[int], Any], count: int, window: int) -> None:
    """``count`` sends, at most ``window`` awaiting their acknowledgement at once."""
    gate = asyncio.Semaphore(window)

    async def one(i: int) -> None:
        async with gate:
            await send(i)

    await asyncio.gather(*(one(i) for i in range(count)))


async def kafka_raw(bootstrap: str, count: int, window: int = 100) -> dict[str, Any]:
    """aiokafka alone: idempotent acks=all producer (as the services'), a consumer group
    committing after each batch it processed (at least once, like the services)."""
    topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"{topic}-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await producer.start()
    await consumer.start()
    seen = 0

    async def consume(until: int) -> None:
        nonlocal seen
        while seen < until:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                seen += len(records)
            if batch:
                await consumer.commit()

    try:
        # Warm-up: the topic exists and the group has its partitions before the clock runs.
        await producer.send_and_wait(topic, RECORD, key=b"warm-up")
        await asyncio.wait_for(consume(1), timeout=120)
        seen = 0
        started = time.perf_counter()
        consuming = asyncio.create_task(consume(count))
        await _produce(
            lambda i: producer.send_and_wait(topic, RECORD, key=str(i % 64).encode()),
            count,
            window,
        )
        produced = time.perf_counter() - started
        await asyncio.wait_for(consuming, timeout=300)
        elapsed = time.perf_counter() - started
    finally:
        await consumer.stop()
        await producer.stop()
    return {
        "records": count,
        "record_bytes": len(RECORD),
        "produce_per_s": round(count / produced),
        "records_per_s": round(count / elapsed),
    }


async def kafka_faststream(bootstrap: str, count: int, window: int = 100) -> dict[str, Any]:
    """The same records through FastStream, with the services' broker and subscriber
    settings (idempotent acks=all; commit after processing; raw decoder; inbox workers)."""
    topic = f"bench-fs-{uuid.uuid4().hex[:8]}"
    broker = KafkaBroker(bootstrap, enable_idempotence=True, acks="all", logger=None)
    done = asyncio.Event()
    warm = asyncio.Event()
    seen = 0

    @broker.subscriber(
        topic,
        group_id=f"{topic}-group",
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=raw_body,
        max_workers=INBOX_SUBSCRIBER_WORKERS,
    )
    async def handle(body: bytes) -> None:
        nonlocal seen
        if body == b"warm-up":
            warm.set()
            return
        seen += 1
        if seen >= count:
            done.set()

    publisher = broker.publisher(topic)
    await broker.start()
    try:
        await publisher.publish(b"warm-up", key=b"warm-up")
        await asyncio.wait_for(warm.wait(), timeout=120)
        started = time.perf_counter()
        await _produce(lambda i: publisher.publish(RECORD, key=str(i % 64).encode()), count, window)
        produced = time.perf_counter() - started
        await asyncio.wait_for(done.wait(), timeout=300)
        elapsed = time.perf_counter() - started
    finally:
        await broker.stop()
    return {
        "records": count,
        "record_bytes": len(RECORD),
        "produce_per_s": round(count / produced),
        "records_per_s": round(count / elapsed),
    }


class ShapeWorkers:
    """The two no-op workers as processes (like the real incoming and outgoing workers)."""

    def __init__(self, target: str, log_dir: Any) -> None:
        self.target = target
        self.prefix = f"shape{uuid.uuid4().hex[:8]}"
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for side in ("incoming", "outgoing"):
            log = (self.log_dir / f"shape-{side}-worker.log").open("ab")
            self.processes[f"shape-{side}-worker"] = subprocess.Popen(
                [sys.executable, "-m", "bench.shape", "worker", side, *self._args()],
                cwd=REPO_DIR,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _args(self) -> list[str]:
        return ["--target", self.target, "--queue", self.prefix]

    def stop(self) -> None:
        stop_processes(self.processes)

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.processes.items()}


async def workflow_shape(
    client: Client,
    workers: ShapeWorkers,
    meter_pids: dict[str, int],
    duration: float,
    in_flight: int,
    log: Log,
) -> dict[str, Any]:
    """Closed loop with ``in_flight`` cases at once: the most same-shape cases per second
    the dev server and two workers complete. The first quarter is warm-up."""
    stop_at = time.monotonic() + duration
    warm_until = time.monotonic() + duration / 4
    done_after_warmup = 0
    latencies: list[float] = []
    meter = CpuMeter(meter_pids)
    warm = asyncio.Event()
    timeouts: list[str] = []

    async def one_case() -> None:
        nonlocal done_after_warmup
        case_id = uuid.uuid4().hex[:16]
        started = time.monotonic()
        handle = await client.start_workflow(
            ShapeIncoming.run,
            case_id,
            id=incoming_id(case_id),
            task_queue=f"{workers.prefix}-incoming",
        )
        try:
            await asyncio.wait_for(handle.result(), timeout=300)
        except TimeoutError:
            timeouts.append(case_id)
            return
        if warm.is_set():
            done_after_warmup += 1
            latencies.append(time.monotonic() - started)

    async def lane() -> None:
        while time.monotonic() < stop_at:
            await one_case()

    async def warmup_mark() -> None:
        await asyncio.sleep(max(0.0, warm_until - time.monotonic()))
        warm.set()
        meter.start()

    marker = asyncio.create_task(warmup_mark())
    measured_from = warm_until
    await asyncio.gather(*(lane() for _ in range(in_flight)))
    await marker
    elapsed = time.monotonic() - measured_from
    cpu = meter.stop()
    rate = done_after_warmup / elapsed if elapsed > 0 else 0.0
    log(f"  same-shape workflow: {rate:.1f} cases/s with {in_flight} in flight")
    return _shape_figures(rate, in_flight, len(timeouts), elapsed, sorted(latencies), cpu)


def _shape_figures(
    rate: float,
    in_flight: int,
    timed_out: int,
    elapsed: float,
    latencies: list[float],
    cpu: dict[str, float],
) -> dict[str, Any]:
    """The closed loop's result: ``latencies`` of the cases done after the warm-up."""
    done = len(latencies)
    return {
        "cases_per_s": round(rate, 1),
        "in_flight": in_flight,
        "timed_out": timed_out,
        "cases": done,
        "seconds": round(elapsed, 1),
        "latency_p50_s": _pct(latencies, 50),
        "latency_p99_s": _pct(latencies, 99),
        "cpu_s_per_case": {
            name: round(seconds / done, 4) if done else None for name, seconds in cpu.items()
        },
    }


def _pct(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))
    return round(ordered[index], 3)


percentile = _pct
