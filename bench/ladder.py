"""The ceiling ladder: what each piece of a workflow costs on this machine's Temporal dev
server and Python worker, measured alone, rung by rung, so a change can be told from noise:

  start     a workflow started and completed in its first workflow task;
  signal    the same, then one signal and the one more workflow task it wakes;
  local     the same, with one local activity run in that second task;
  (the case's own shape is the same-shape ceiling, bench/shape.py.)

Each rung is a closed loop with a fixed number in flight on the case workers' settings
(services/common/bootstrap.case_worker); its CPU per workflow, worker and server apart,
gives the unit costs by difference: a signal with its workflow task, a local activity.

``python -m bench.ladder worker --target HOST:PORT --queue QUEUE`` runs the worker as its
own process, as the real stack does.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle

from bench.ladder_workflows import WORKFLOWS, ladder_noop
from bench.procs import CpuMeter
from harness.agencies import stop_processes
from harness.servers import REPO_DIR

Log = Callable[[str], None]
RUNGS = ("start", "signal", "local")


class LadderWorker:
    """The ladder's worker as a process of its own (like a real case worker)."""

    def __init__(self, target: str, log_dir: Path) -> None:
        self.target = target
        self.queue = f"ladder{uuid.uuid4().hex[:8]}"
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / "ladder-worker.log").open("ab")
        self.processes["ladder-worker"] = subprocess.Popen(
            [sys.executable, "-m", "bench.ladder", "worker", *self._args()],
            cwd=REPO_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def _args(self) -> list[str]:
        return ["--target", self.target, "--queue", self.queue]

    def stop(self) -> None:
        stop_processes(self.processes)

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.processes.items()}


async def _one(client: Client, rung: str, queue: str) -> None:
    handle: WorkflowHandle[Any, Any] = await client.start_workflow(
        WORKFLOWS[rung].run, id=f"ladder-{rung}-{uuid.uuid4().hex[:12]}", task_queue=queue
    )
    if rung != "start":
        await handle.signal("go")
    await asyncio.wait_for(handle.result(), timeout=120)


async def rung_ceiling(
    client: Client,
    rung: str,
    queue: str,
    meter_pids: dict[str, int],
    duration: float,
    in_flight: int,
) -> dict[str, Any]:
    """Closed loop, ``in_flight`` at once for ``duration`` (the first quarter warm-up):
    workflows completed per second and CPU seconds per workflow of each process."""
    stop_at = time.monotonic() + duration
    warm_until = time.monotonic() + duration / 4
    meter = CpuMeter(meter_pids)
    done = 0
    warm = False

    async def lane() -> None:
        nonlocal done
        while time.monotonic() < stop_at:
            await _one(client, rung, queue)
            if warm:
                done += 1

    async def warm_up() -> None:
        nonlocal warm
        await asyncio.sleep(max(0.0, warm_until - time.monotonic()))
        warm = True
        meter.start()

    marker = asyncio.create_task(warm_up())
    await asyncio.gather(*(lane() for _ in range(in_flight)))
    await marker
    elapsed = max(1e-9, time.monotonic() - warm_until)
    cpu = meter.stop()
    return {
        "workflows_per_s": round(done / elapsed, 1),
        "workflows": done,
        "in_flight": in_flight,
        "cpu_s_per_workflow": {
            name: round(seconds / done, 5) if done else None for name, seconds in cpu.items()
        },
    }


def unit_costs(rungs: dict[str, dict[str, Any]], case_cpu_s: float | None) -> dict[str, Any]:
    """CPU seconds (all measured processes) of each piece, by difference of the rungs;
    the same-shape case for comparison."""

    def total(rung: str) -> float | None:
        values = (rungs.get(rung) or {}).get("cpu_s_per_workflow") or {}
        known = [v for v in values.values() if v is not None]
        return sum(known) if known else None

    start, signal, local = total("start"), total("signal"), total("local")

    def diff(a: float | None, b: float | None) -> float | None:
        return round(a - b, 5) if a is not None and b is not None else None

    return {
        "start_and_complete_s": round(start, 5) if start is not None else None,
        "signal_and_workflow_task_s": diff(signal, start),
        "local_activity_s": diff(local, signal),
        "case_shape_s": case_cpu_s,
    }


async def ladder(
    client: Client,
    worker: LadderWorker,
    server_pids: dict[str, int],
    duration: float,
    in_flight: int,
    log: Log,
) -> dict[str, Any]:
    """Every rung in turn on one worker process; the worker's and the server's CPU."""
    pids = worker.pids() | server_pids
    rungs: dict[str, dict[str, Any]] = {}
    for rung in RUNGS:
        rungs[rung] = await rung_ceiling(client, rung, worker.queue, pids, duration, in_flight)
        log(
            f"  ladder {rung}: {rungs[rung]['workflows_per_s']} workflows/s, CPU per "
            f"workflow {rungs[rung]['cpu_s_per_workflow']}"
        )
    return {"rungs": rungs}


async def run_worker(target: str, queue: str) -> None:
    # Imported here: the workflows above stay free of service imports.
    from temporalio.contrib.pydantic import pydantic_data_converter

    from services.common.bootstrap import case_worker

    client = await Client.connect(target, data_converter=pydantic_data_converter)
    worker = case_worker(client, queue, list(WORKFLOWS.values()), [ladder_noop])
    await worker.run()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ladder")
    sub = parser.add_subparsers(dest="command", required=True)
    worker = sub.add_parser("worker")
    worker.add_argument("--target", required=True)
    worker.add_argument("--queue", required=True)
    args = parser.parse_args()
    asyncio.run(run_worker(args.target, args.queue))


if __name__ == "__main__":
    main()
