"""make bench: transfer cases per second end to end on this machine, against the engines'
own ceilings, with the real stack started once.

    python -m bench [--quick] [--open 10000,100000] [--rates 5,10,20,40,80] [--profile RATE]
                    [--step-seconds 120] [--repeat 3] [--allow-dirty]

A tree with uncommitted changes is refused (the figures name the commit they measure).

Phases: (1) ceilings: Kafka raw and through FastStream, the same-shape no-op workflow and
the ladder below it (start, + signal, + local activity: unit costs), the case's database
transactions (SQLite; PostgreSQL when deploy/local/postgres.sh can run);
(2) end-to-end open-loop steps (Poisson arrivals, 120 s, each rate run three times and the
median kept with the spread) until the backlog grows, then one at half the sustained
rate, with the audit consumer running as in `make run`; (3) cases open on their deadlines, memory and new-case latency at each size;
(4) I1/I2 checks, one table, bench/results/latest.json. Everything it started is stopped
at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import fcntl
import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType

from bench import report
from bench.ceilings import ShapeWorkers, kafka_faststream, kafka_raw, workflow_shape
from bench.ladder import LadderWorker, ladder, unit_costs
from bench.load import ENGINES, SYSTEM, Load, OpenCases, StepResult, median_of
from bench.procs import loadavg, memory
from bench.profiles import Profiler
from bench.profiles import summarise as profile_summary
from bench.shape import incoming_id, outgoing_id
from bench.stack import STATE_DIR, BenchStack
from harness.servers import DEPLOY, REPO_DIR

RESULTS = REPO_DIR / "bench" / "results" / "latest.json"
# Open cases between their start and their first wait while filling: their first workflow
# task runs six local activities, and more at once only stretches those tasks past their
# timeout (the worker then redoes work instead of filling).
FILL_WINDOW = 50
POSTGRES_PORT = os.environ.get("BENCH_POSTGRES_PORT", "55433")
BISECT_STEPS = 3
# Cases in flight of the saturated end-to-end loop: the same as the same-shape ceiling's.
SATURATED_IN_FLIGHT = 64
# Enough for 100,000 open cases at the ~16/s this 2-core machine fills at (~105 min).
DEFAULT_FILL_MINUTES = 120.0
T0 = time.monotonic()


def log(message: str) -> None:
    elapsed = int(time.monotonic() - T0)
    print(f"[bench {elapsed // 60:02d}:{elapsed % 60:02d}] {message}", flush=True)


class LoadWatch:
    """The highest 1-minute load average seen (other work on the machine skews figures)."""

    def __init__(self) -> None:
        self.start = loadavg()
        self.highest = self.start[0]

    def sample(self) -> None:
        self.highest = max(self.highest, loadavg()[0])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for development")
    parser.add_argument("--open", help="open-case sizes, e.g. 10000,100000 (the default)")
    parser.add_argument("--rates", help="first arrival rates (cases/s); doubled after the last")
    parser.add_argument(
        "--step-seconds", type=float, help="length of each rate step (default 120; --quick 8)"
    )
    parser.add_argument(
        "--repeat", type=int, help="runs of each rate step, the median kept (default 3; --quick 1)"
    )
    parser.add_argument(
        "--allow-dirty",
        action="store_true",
        help="measure uncommitted changes (the figures then name no commit they belong to)",
    )
    parser.add_argument("--max-rate", type=float, default=640.0)
    parser.add_argument("--skip", default="", help="phases to skip: ceilings,e2e,open")
    parser.add_argument(
        "--profile", type=float, help="py-spy the five service processes at this rate"
    )
    parser.add_argument(
        "--fill-minutes",
        type=float,
        help="time allowed for filling open cases (default 120; --quick 4): a size not "
        "reached in time is measured where the filling got to, and says so",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="start the engines and the five service processes from another checkout, for a "
        "before/after comparison (git archive COMMIT | tar -x -C DIR)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.open_sizes = [
        int(s) for s in (args.open or ("500,2000" if args.quick else "10000,100000")).split(",")
    ]
    args.rate_list = [
        float(r)
        for r in (args.rates or ("5,10,20,40,80" if not args.quick else "5,20,40")).split(",")
    ]
    args.step_s = args.step_seconds or (8.0 if args.quick else 120.0)
    args.repeats = max(1, args.repeat or (1 if args.quick else 3))
    args.fill_s = 60 * (args.fill_minutes or (4.0 if args.quick else DEFAULT_FILL_MINUTES))
    args.skip_set = {s.strip() for s in args.skip.split(",") if s.strip()}
    return args


# --- phase 1: ceilings ---------------------------------------------------------------------
async def ceilings(stack: BenchStack, args: argparse.Namespace, watch: LoadWatch) -> dict[str, Any]:
    out: dict[str, Any] = {}
    records = 5_000 if args.quick else 20_000
    log(f"ceiling: Kafka, {records:,} records of 1 KB through a raw aiokafka loop")
    out["kafka_raw"] = await kafka_raw(stack.kafka_bootstrap, records)
    log(f"  raw aiokafka: {out['kafka_raw']['records_per_s']:,} records/s")
    log("ceiling: Kafka, the same through FastStream (the services' settings)")
    out["kafka_faststream"] = await kafka_faststream(stack.kafka_bootstrap, records)
    log(f"  FastStream: {out['kafka_faststream']['records_per_s']:,} records/s")
    watch.sample()

    seconds = 5.0 if args.quick else 20.0
    log(f"ceiling: the case's database transactions, SQLite, {seconds:.0f} s")
    out["db_sqlite"] = await asyncio.to_thread(db_loop_sqlite, seconds)
    log(f"  SQLite: {out['db_sqlite']['cases_per_s']} cases/s")
    postgres, reason = await asyncio.to_thread(db_loop_postgres, seconds)
    out["db_postgres"], out["db_postgres_reason"] = postgres, reason
    log(
        f"  PostgreSQL: {postgres['cases_per_s']} cases/s"
        if postgres
        else f"  PostgreSQL: {reason}"
    )
    watch.sample()

    client = await stack.connect()
    workers = ShapeWorkers(stack.temporal.target, STATE_DIR / "run" / "logs")
    workers.start()
    try:
        await _wait_pollers(client, [f"{workers.prefix}-incoming", f"{workers.prefix}-outgoing"])
        duration = 12.0 if args.quick else 40.0
        log(f"ceiling: same-shape no-op workflow on the same dev server, {duration:.0f} s")
        pids = {**workers.pids(), "temporal": stack.pids()["temporal"]}
        out["workflow_shape"] = await workflow_shape(
            client, workers, pids, duration, SATURATED_IN_FLIGHT, log
        )
        out["workflow_shape"]["history"] = await shape_history(client, workers)
    finally:
        workers.stop()
    watch.sample()
    out["ladder"] = await ceiling_ladder(stack, args, out["workflow_shape"])
    watch.sample()
    return out


async def ceiling_ladder(
    stack: BenchStack, args: argparse.Namespace, shape: dict[str, Any]
) -> dict[str, Any]:
    """The rungs below the case (bench/ladder.py) and the unit costs they give."""
    client = await stack.connect()
    worker = LadderWorker(stack.temporal.target, STATE_DIR / "run" / "logs")
    worker.start()
    try:
        await _wait_pollers(client, [worker.queue])
        duration = 8.0 if args.quick else 30.0
        log(f"ceiling: the ladder (start, + signal, + local activity), {duration:.0f} s each")
        server = {"temporal": stack.pids()["temporal"]}
        result = await ladder(client, worker, server, duration, 64, log)
    finally:
        worker.stop()
    case_cpu = [v for v in (shape.get("cpu_s_per_case") or {}).values() if v is not None]
    result["unit_costs_cpu_s"] = unit_costs(result["rungs"], sum(case_cpu) if case_cpu else None)
    log(f"  unit costs (CPU s, worker + server): {result['unit_costs_cpu_s']}")
    return result


def db_loop_sqlite(seconds: float) -> dict[str, Any]:
    from bench.dbloop import run_loop
    from services.common.config import Settings
    from services.common.keys import load_registry

    root = STATE_DIR / "run" / "dbloop"
    root.mkdir(parents=True, exist_ok=True)
    for f in root.glob("*.db*"):
        f.unlink()
    registry = load_registry(Settings(keys_dir=root / "keys"))
    today = datetime.now(UTC).date()
    return run_loop(
        f"sqlite:///{root / 'incoming.db'}",
        f"sqlite:///{root / 'outgoing.db'}",
        registry,
        seconds,
        max_cases=50_000,
        today=today,
    )


def postgres_env() -> dict[str, str]:
    return {**os.environ, "MEDTRANSFER_STATE": str(STATE_DIR), "POSTGRES_PORT": POSTGRES_PORT}


def db_loop_postgres(seconds: float) -> tuple[dict[str, Any] | None, str | None]:
    """The same loop on PostgreSQL through deploy/local/postgres.sh, when it can run here."""
    script = DEPLOY / "postgres.sh"
    if not script.exists():
        return None, "deploy/local/postgres.sh is not there"
    env = postgres_env()

    def run(*args: str) -> str:
        result = subprocess.run(
            [str(script), *args], env=env, capture_output=True, text=True, timeout=600
        )
        if result.returncode != 0:
            raise RuntimeError((result.stderr or result.stdout).strip().splitlines()[-1])
        return result.stdout.strip()

    try:
        run("start")
        run("dropdb", "bench_incoming", "bench_outgoing")
        run("createdb", "bench_incoming", "bench_outgoing")
        incoming, outgoing = run("url", "bench_incoming"), run("url", "bench_outgoing")
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        return None, f"PostgreSQL could not be started: {exc}"
    from bench.dbloop import run_loop
    from services.common.config import Settings
    from services.common.keys import load_registry

    registry = load_registry(Settings(keys_dir=STATE_DIR / "run" / "dbloop" / "keys"))
    try:
        return (
            run_loop(incoming, outgoing, registry, seconds, 50_000, datetime.now(UTC).date()),
            None,
        )
    finally:
        subprocess.run([str(script), "stop"], env=env, capture_output=True, check=False)


async def _wait_pollers(client: Any, queues: list[str], limit_s: float = 60) -> None:
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    deadline = time.monotonic() + limit_s
    for queue in queues:
        while True:
            response = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace="default",
                    task_queue=TaskQueue(name=queue),
                    task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                )
            )
            if response.pollers:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"no worker polls {queue}")
            await asyncio.sleep(0.3)


async def history_counts(client: Any, workflow_id: str) -> dict[str, int]:
    counts: collections.Counter[str] = collections.Counter()
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        counts[EventType.Name(event.event_type)] += 1
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            counts[event.marker_recorded_event_attributes.marker_name] += 1
    return {
        "activities": counts["EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"],
        "local_activities": counts["core_local_activity"],
        "timers": counts["EVENT_TYPE_TIMER_STARTED"],
        "signals": counts["EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED"],
        "patches": counts["core_patch"],
        "workflow_tasks": counts["EVENT_TYPE_WORKFLOW_TASK_COMPLETED"],
        "events": sum(counts.values()) - counts["core_local_activity"] - counts["core_patch"],
    }


def shape_matches(check: dict[str, Any]) -> bool | None:
    """Same activities (local and ordinary), signals and patches per side, and about the
    same workflow tasks and history events (the units of the server's and the SDK's work):
    within a tenth, as how signals batch into a task varies between two runs. Timers are
    compared too loosely to decide: a wait whose signal came first starts none."""
    real, shape = check.get("real"), check.get("shape")
    if not real or not shape:
        return None
    exact = ("activities", "local_activities", "signals", "patches")
    close = ("workflow_tasks", "events")
    return all(real[side][k] == shape[side][k] for side in real for k in exact) and all(
        abs(real[side][k] - shape[side][k]) <= max(1.0, 0.1 * shape[side][k])
        for side in real
        for k in close
    )


async def shape_history(client: Any, workers: ShapeWorkers) -> dict[str, Any]:
    """One more same-shape case, alone, and its history per side."""
    from bench.shape import ShapeIncoming

    case_id = f"probe{int(time.time())}"
    handle = await client.start_workflow(
        ShapeIncoming.run, case_id, id=incoming_id(case_id), task_queue=f"{workers.prefix}-incoming"
    )
    await handle.result()
    return {
        "incoming": await history_counts(client, incoming_id(case_id)),
        "outgoing": await history_counts(client, outgoing_id(case_id)),
    }


# --- phase 2: end to end -------------------------------------------------------------------
class _Steps:
    """The end-to-end steps run so far (one open-loop rate each), with their profiles."""

    def __init__(
        self, stack: BenchStack, load: Load, args: argparse.Namespace, watch: LoadWatch
    ) -> None:
        self.load = load
        self.args = args
        self.watch = watch
        self.drain = max(30.0, 2 * args.step_s)
        self.profiler = Profiler(
            {k: v for k, v in stack.pids().items() if k in SYSTEM}, STATE_DIR / "profiles"
        )
        self.steps: list[StepResult] = []
        self.profiles: dict[str, Any] = {}

    async def run(self, rate: float) -> StepResult:
        """One rate, ``--repeat`` runs of it (each its own Poisson schedule): the median."""
        runs = [await self._run_once(rate, n) for n in range(self.args.repeats)]
        step = median_of(runs)
        if len(runs) > 1:
            log(
                f"  median of {len(runs)}: {step.throughput:.1f} cases/s, p99 "
                f"{step.latency['p99']} s: {'sustained' if step.sustained else 'NOT sustained'}"
            )
        self.steps.append(step)
        return step

    async def _run_once(self, rate: float, repetition: int) -> StepResult:
        args = self.args
        log(
            f"end-to-end: {rate:g} cases/s for {args.step_s:.0f} s (open loop, Poisson; "
            f"run {repetition + 1} of {args.repeats})"
        )
        if args.profile is not None and abs(rate - args.profile) < 1e-9 and repetition == 0:
            self.profiler.start(args.step_s, f"{rate:g}")
        step = await self.load.step(rate, args.step_s, self.drain, seed=repetition)
        self._keep_profiles()
        self.watch.sample()
        latency = step.latency
        log(
            f"  {step.completed}/{step.submitted} credited, {step.throughput:.1f} cases/s, "
            f"p50 {latency['p50']} s, p99 {latency['p99']} s, backlog "
            f"{step.backlog_slope:+.1f}/s: {'sustained' if step.sustained else 'NOT sustained'}"
        )
        log(
            "  % of a core: "
            + ", ".join(f"{k} {v}" for k, v in step.busy_percent.items() if k != "bench")
        )
        if not step.sustained:
            left = await self.load.wait_all_credited(step.case_ids, 600)
            if left:
                log(f"  {left} cases of this step still not credited after 10 min")
        return step

    def _keep_profiles(self) -> None:
        for path in self.profiler.stop():
            samples, top = profile_summary(path, 12)
            # Kept in the results: the profile behind "what limits it" (top 30 inclusive).
            self.profiles[path.stem] = {
                "samples": samples,
                "top_inclusive_self_percent": [
                    [name, round(inclusive, 1), round(own, 1)]
                    for name, inclusive, own in profile_summary(path, 30)[1]
                ],
            }
            log(f"  profile {path.name}: {samples} samples; top inclusive:")
            for name, inclusive, own in top:
                log(f"    {inclusive:5.1f}% ({own:4.1f}% self) {name}")


async def end_to_end(
    stack: BenchStack, load: Load, args: argparse.Namespace, watch: LoadWatch
) -> dict[str, Any]:
    runner = _Steps(stack, load, args, watch)
    best, failed = await _climb(runner, args)
    best = await _bisect(runner, args, best, failed)
    steps = runner.steps
    sustained = best or 0.0
    half_step = None
    if sustained:
        half = sustained / 2
        half_step = next((s for s in steps if s.sustained and abs(s.rate - half) < 1e-9), None)
        if half_step is None:
            half_step = await runner.run(half)
    log(f"end-to-end: saturated, {SATURATED_IN_FLIGHT} cases in flight for {args.step_s:.0f} s")
    saturated = await load.saturated(SATURATED_IN_FLIGHT, args.step_s, most_per_s=50.0)
    log(f"  {saturated['cases_per_s']} cases/s saturated, p99 {saturated['latency_s']['p99']} s")
    return {
        "steps": [s.to_json() for s in steps],
        "saturated": saturated,
        "profiles": runner.profiles or None,
        "sustained_cases_per_s": sustained,
        "half_load": half_step.to_json() if half_step else None,
        "case_ids": [c for s in steps for c in s.case_ids],
        "best_step": next((s.to_json() for s in steps if s.rate == sustained), None),
    }


async def _climb(runner: _Steps, args: argparse.Namespace) -> tuple[float | None, float | None]:
    """The given rates, doubling after the last while it holds (up to --max-rate), halving
    while even the first is too much: the best sustained rate and the first failed one."""
    rates = list(args.rate_list)
    best: float | None = None
    failed: float | None = None
    while rates:
        rate = rates.pop(0)
        step = await runner.run(rate)
        if step.sustained:
            best = rate
            doubled = rate * 2
            if not rates and doubled <= args.max_rate and (failed is None or doubled < failed):
                rates.append(doubled)
            continue
        failed = rate if failed is None else min(failed, rate)
        if best is None and rate / 2 >= 0.5:
            rates = [rate / 2]  # even the first rate is too much: halve until one holds
            continue
        break
    return best, failed


async def _bisect(
    runner: _Steps, args: argparse.Namespace, best: float | None, failed: float | None
) -> float | None:
    """Bisect between the best sustained and the first failed rate, to a quarter case per
    second or a tenth of the rate, at most three more steps (each one that fails also
    waits for its backlog to drain)."""
    for _ in range(0 if args.quick else BISECT_STEPS):
        if failed is None or best is None or failed - best <= max(0.25, 0.1 * best):
            break
        middle = round((best + failed) / 2 * 4) / 4
        if middle in (best, failed):
            break
        if (await runner.run(middle)).sustained:
            best = middle
        else:
            failed = middle
    return best


# --- phase 3: open cases -------------------------------------------------------------------
async def open_cases(
    stack: BenchStack,
    load: Load,
    args: argparse.Namespace,
    watch: LoadWatch,
    sustained: float | None,
    save: Callable[[list[dict[str, Any]]], None],
) -> dict[str, Any]:
    """Fill, then at each size: memory, and new cases at half the sustained rate (a rate
    the stack carries, so the latency is not queueing; 1/s without an end-to-end phase)."""
    probe_rate = round(sustained / 2, 2) if sustained else 1.0
    client = await stack.connect()
    assert stack.agencies is not None
    filler = OpenCases(client, stack.agencies, load.ledger, stack.pids(), log)
    by_size = []
    probe_ids: list[str] = []
    deadline = time.monotonic() + args.fill_s
    try:
        for size in args.open_sizes:
            if filler.waiting >= size:
                continue
            if time.monotonic() > deadline:
                log(f"open cases: no time left to fill up to {size:,} (--fill-minutes)")
                break
            log(f"open cases: filling up to {size:,} (real case workflows, started directly)")
            rate = await filler.fill(size, window=FILL_WINDOW, deadline=deadline)
            reached = filler.waiting
            if reached < size:
                log(f"  time is up: {reached:,} of {size:,} open; measuring there")
            entry, step = await _measure_open(stack, load, watch, args, probe_rate, reached, rate)
            probe_ids += step.case_ids
            by_size.append(
                {"open": reached, "target": size, "fill_cases_per_s": round(rate, 1), **entry}
            )
            save(by_size)
        running = await filler.running()
        return {
            "sizes": args.open_sizes,
            "sizes_reached": [entry["open"] for entry in by_size],
            "fill_minutes_allowed": round(args.fill_s / 60, 1),
            "fill_method": "case rows as the API writes them, bulk; real IncomingCaseWorkflow "
            "started through the Temporal client, at most "
            f"{FILL_WINDOW} between start and first wait",
            "fill_seconds": round(filler.fill_seconds, 1),
            "by_size": by_size,
            "running_workflows": running,
            "expected_open": filler.started,
            "probe_case_ids": probe_ids,
        }
    finally:
        filler.close()


async def _measure_open(
    stack: BenchStack,
    load: Load,
    watch: LoadWatch,
    args: argparse.Namespace,
    probe_rate: float,
    reached: int,
    rate: float,
) -> tuple[dict[str, Any], StepResult]:
    """With ``reached`` cases open (filled at ``rate``): the processes' memory, and the
    latency of new cases at ``probe_rate``."""
    await asyncio.sleep(3)
    watch.sample()
    rss = memory({k: v for k, v in stack.pids().items() if k != "bench"})
    log(f"  {reached:,} open, filled at {rate:.0f}/s; RSS MiB {rss}")
    log(f"  new cases with {reached:,} open: {probe_rate:g} cases/s")
    step = await load.step(probe_rate, 5.0 if args.quick else 10.0, 120.0)
    log(f"  new-case latency p50 {step.latency['p50']} s, p99 {step.latency['p99']} s")
    entry = {
        "rss_mib": rss,
        "new_case_rate": probe_rate,
        "new_case_latency_s": step.latency,
        "new_cases": step.completed,
    }
    return entry, step


def source_commit(code_dir: Path) -> str | None:
    """The commit the measured code is, with "+changes" when the tree differs from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(code_dir), *args], capture_output=True, text=True, check=False
        ).stdout.strip()

    if Path(git("rev-parse", "--show-toplevel") or "/nonexistent") != code_dir.resolve():
        return None  # a --baseline directory from git archive (or inside another checkout)
    commit = git("rev-parse", "--short", "HEAD")
    return commit + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def checkpoint(args: argparse.Namespace, result: dict[str, Any]) -> None:
    """The figures so far, next to the output: a long run that dies in a later phase
    (or is stopped) keeps what it measured. Removed when the run completes."""
    partial = args.out.with_suffix(".partial.json")
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n")


def memory_growth(open_result: dict[str, Any]) -> float | None:
    sizes = open_result.get("by_size") or []
    if len(sizes) < 2:
        return None

    def services(entry: dict[str, Any]) -> int:
        return sum(v for k, v in entry["rss_mib"].items() if k in SYSTEM)

    first, last = services(sizes[0]), services(sizes[-1])
    return round((last - first) / first, 3) if first else None


# --- phase 4: invariants -------------------------------------------------------------------
async def violations(
    stack: BenchStack, load: Load, case_ids: list[str], open_result: dict[str, Any] | None
) -> dict[str, Any]:
    """I1 (every case ends once, or stays visibly open) and I2 (money conserved)."""
    assert stack.agencies is not None
    left = await load.wait_all_credited(case_ids, 120)
    # The outgoing side closes once it has the credit confirmation: give it a moment.
    await asyncio.sleep(3)
    lost_open = 0
    if open_result is not None:
        lost_open = max(0, open_result["expected_open"] - open_result["running_workflows"])
    try:
        from harness.invariants import check_invariants

        checked = await asyncio.to_thread(check_invariants, stack.agencies, case_ids)
        i1 = [str(v) for v in checked.by_invariant("I1")]
        i2 = [str(v) for v in checked.by_invariant("I2")]
        method = "harness/invariants.py (I1, I2)"
    except Exception as exc:  # e.g. --services-from an older schema: say so, go on
        if not isinstance(exc, ImportError):
            log(f"  invariant checker failed ({type(exc).__name__}); reconciliation only")
        from services.ops.reconciliation import reconcile

        try:
            report_ = reconcile(load.outgoing_engine, load.incoming_engine, datetime.now(UTC))
        except Exception as exc:  # a --baseline checkout's schema this code cannot read
            return {"checked_cases": 0, "method": f"not checked: {type(exc).__name__}"}
        wanted = set(case_ids)
        i2 = [i.remittance_id for i in report_.unmatched if i.case_id in wanted]
        i1 = [f"not credited: {left}"] if left else []
        method = "services/ops/reconciliation.py (I2) and credits (I1)"
    return {
        "checked_cases": len(case_ids),
        "method": method,
        "lost_cases": len(i1) + lost_open,
        "lost_open_cases": lost_open,
        "money_not_conserved": len(i2),
        "total": len(i1) + lost_open + len(i2),
        "details": (i1 + i2)[:20],
    }


# --- the run ---------------------------------------------------------------------------------
async def run(stack: BenchStack, args: argparse.Namespace) -> dict[str, Any]:
    watch = LoadWatch()
    started = time.monotonic()
    result: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "args": " ".join(sys.argv[1:]),
        "code_from": str(args.baseline or REPO_DIR),
        "commit": args.commit,
        "temporal_tuning": os.environ.get("TEMPORAL_TUNING", "on"),
    }
    log(f"machine: {os.cpu_count()} cores, loadavg {watch.start}")
    shutil.rmtree(STATE_DIR / "run", ignore_errors=True)  # the previous run's files
    stack.start_servers(log)
    if "ceilings" not in args.skip_set:
        result["ceilings"] = await ceilings(stack, args, watch)
        checkpoint(args, result)
    log("stack: both agency services and workers as processes")
    agencies = await stack.start_agencies()
    pids = stack.pids()
    load = Load(agencies, pids, log)
    try:
        await _load_phases(stack, load, args, watch, result)
    finally:
        await load.close()
    watch.sample()
    result["machine"] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_start": list(watch.start),
        "loadavg_end": list(loadavg()),
        "loadavg_max": watch.highest,
        "persistence": "Temporal dev server on its SQLite file; services on SQLite (WAL)",
        "note": "figures from a shared 2-core machine are depressed by other work: see loadavg",
    }
    result["duration_s"] = round(time.monotonic() - started)
    summarise(result)
    return result


async def _load_phases(
    stack: BenchStack,
    load: Load,
    args: argparse.Namespace,
    watch: LoadWatch,
    result: dict[str, Any],
) -> None:
    """End to end, open cases, then the invariants over the cases both made (in ``result``)."""
    e2e: dict[str, Any] = {}
    if "e2e" not in args.skip_set:
        e2e = await end_to_end(stack, load, args, watch)
        result["end_to_end"] = {k: v for k, v in e2e.items() if k != "case_ids"}
        checkpoint(args, result)
        ids = e2e["case_ids"]
        if ids:
            result["shape_check"] = await _shape_check(stack, ids[0], result)
    open_result = None
    if "open" not in args.skip_set:
        open_result = await open_cases(
            stack,
            load,
            args,
            watch,
            e2e.get("sustained_cases_per_s"),
            lambda sizes: checkpoint(args, {**result, "open_cases_so_far": sizes}),
        )
        result["open_cases"] = {k: v for k, v in open_result.items() if k != "probe_case_ids"}
    case_ids = list(e2e.get("case_ids", [])) + (
        open_result["probe_case_ids"] if open_result else []
    )
    log(f"checks: I1 and I2 over {len(case_ids):,} end-to-end cases")
    result["violations"] = await violations(stack, load, case_ids, open_result)
    log(f"  violations: {result['violations'].get('total', 'not checked')}")


async def _shape_check(stack: BenchStack, case_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """A real case's history sizes beside the same-shape workflow's (the ceiling's)."""
    check: dict[str, Any] = {
        "real": {
            "incoming": await history_counts(stack.client, f"incoming-{case_id}"),
            "outgoing": await history_counts(stack.client, f"outgoing-{case_id}"),
        },
        "shape": (result.get("ceilings") or {}).get("workflow_shape", {}).get("history"),
    }
    check["match"] = shape_matches(check)
    return check


def summarise(result: dict[str, Any]) -> None:
    """The headline figures and ratios the issue asks for."""
    e2e = result.get("end_to_end") or {}
    ceilings_ = result.get("ceilings") or {}
    sustained = e2e.get("sustained_cases_per_s")
    result["cases_per_s"] = sustained
    half = e2e.get("half_load") or {}
    result["p99_s_at_half_load"] = (half.get("latency_s") or {}).get("p99")
    shape = (ceilings_.get("workflow_shape") or {}).get("cases_per_s")
    result["ratio_to_workflow_ceiling"] = _ratio(sustained, shape)
    # Saturated against saturated: both closed loops with the same cases in flight.
    saturated = (e2e.get("saturated") or {}).get("cases_per_s")
    result["saturated_cases_per_s"] = saturated
    result["ratio_saturated_to_workflow_ceiling"] = _ratio(saturated, shape)
    best = e2e.get("best_step") or {}
    per_process = {
        k: v for k, v in (best.get("cpu_s_per_case") or {}).items() if k in SYSTEM + ENGINES
    }
    total = round(sum(v for v in per_process.values() if v), 4) if per_process else None
    limit = (os.cpu_count() or 1) / total if total else None
    result["cpu"] = {
        "s_per_case": per_process,
        "bench_driver_s_per_case": (best.get("cpu_s_per_case") or {}).get("bench"),
        "total_s_per_case": total,
        "cpu_limit_cases_per_s": round(limit, 1) if limit else None,
        "at_rate": best.get("rate"),
    }
    result["ratio_to_cpu_limit"] = _ratio(sustained, limit)
    raw = (ceilings_.get("kafka_raw") or {}).get("records_per_s")
    fast = (ceilings_.get("kafka_faststream") or {}).get("records_per_s")
    result["ratio_faststream_to_aiokafka"] = _ratio(fast, raw)
    sqlite = (ceilings_.get("db_sqlite") or {}).get("cases_per_s")
    postgres = (ceilings_.get("db_postgres") or {}).get("cases_per_s")
    result["ratio_sqlite_to_postgres"] = _ratio(sqlite, postgres)
    result["memory_growth_10k_to_100k"] = memory_growth(result.get("open_cases") or {})
    result["memory_growth_sizes"] = (result.get("open_cases") or {}).get("sizes_reached")
    # Issue 16's targets on this 2-core machine.
    result["targets"] = {
        "cases_per_s_at_least_12": _met(sustained, lambda v: v >= 12),
        "cpu_s_per_case_at_most_0_13": _met(
            (result.get("cpu") or {}).get("total_s_per_case"), lambda v: v <= 0.13
        ),
        "p99_under_1s_at_half_load": _met(result["p99_s_at_half_load"], lambda v: v < 1.0),
        "memory_growth_within_0_1": _met(
            result["memory_growth_10k_to_100k"], lambda v: abs(v) <= 0.1
        ),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def _met(value: float | None, test: Any) -> bool | None:
    return None if value is None else bool(test(value))


def single_run_lock() -> Any:
    """An exclusive lock on the benchmark's state: a second run would reuse the first
    one's servers and both would measure each other's load. Held until the process ends."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    handle = (STATE_DIR / "bench.lock").open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The clients' own chatter (topic creation, group coordinator) is not progress.
    for name in ("aiokafka", "faststream", "temporalio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    commit = args.commit = source_commit(args.baseline or REPO_DIR)
    if commit is not None and commit.endswith("+changes") and not args.allow_dirty:
        print(
            f"the tree has uncommitted changes (at {commit}): figures must name the commit "
            "they measure; commit first, or pass --allow-dirty to measure them anyway",
            file=sys.stderr,
        )
        return 2
    lock = single_run_lock()
    if lock is None:
        print(
            f"another benchmark is running (lock {STATE_DIR / 'bench.lock'}): its figures and "
            "this run's would both be wrong; wait for it or stop it",
            file=sys.stderr,
        )
        return 2
    stack = BenchStack(code_dir=(args.baseline or REPO_DIR).resolve())
    # SIGTERM (make killed, CI) stops everything as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    result: dict[str, Any] | None = None
    try:
        result = asyncio.run(run(stack, args))
    except KeyboardInterrupt:
        log("interrupted: stopping everything the benchmark started")
        return 130
    finally:
        stack.stop_agencies()
        stack.stop_servers()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    args.out.with_suffix(".partial.json").unlink(missing_ok=True)
    print()
    print(report.text_table([("measure", "figure", "note"), *report.rows(result)]))
    print()
    print(report.text_table(report.steps_rows(result)))
    print(
        f"\nwritten: {args.out.relative_to(REPO_DIR) if args.out.is_relative_to(REPO_DIR) else args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
