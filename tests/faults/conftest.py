"""The fault suite's fixtures: an agency stack of its own (both services as processes),
helpers to crash and restart them, and the figures every fault test records.

Figures go to $MEDTRANSFER_TEST_STATE/faults-figures.json when the session ends and are
printed as a table after the test summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from harness.agencies import AgencyStack, free_port, stack_env
from harness.invariants import InvariantReport
from harness.servers import REPO_DIR, ScriptServer, kafka_server, temporal_server
from tests.support.postgres import Postgres

FIGURES_FILE = (
    Path(os.environ.get("MEDTRANSFER_TEST_STATE", REPO_DIR / "var" / "test"))
    / "faults-figures.json"
)


@dataclass
class FaultFigures:
    """What one fault did: how many cases it hit, how many duplicate deliveries or
    submissions it caused and how many of those were blocked, how long recovery took."""

    fault: str
    cases: int = 0
    cases_affected: int = 0
    duplicates_attempted: int = 0
    duplicates_blocked: int = 0
    recovery_seconds: float | None = None
    dead_letters: int = 0
    violations: int = 0
    notes: dict[str, Any] = field(default_factory=dict)
    suffix: str = ""  # " [postgresql]" when the agencies run on PostgreSQL

    def checked(self, report: InvariantReport) -> None:
        self.cases = max(self.cases, len(report.case_ids))
        self.violations = len(report.violations)
        self.dead_letters = report.dead_letter_count


_FIGURES: list[FaultFigures] = []


@pytest.fixture(scope="session")
def fault_figures() -> Iterator[list[FaultFigures]]:
    """Collects every fault test's figures; writes them as JSON when the session ends."""
    yield _FIGURES
    if _FIGURES:
        FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
        FIGURES_FILE.write_text(
            json.dumps([asdict(f) for f in _FIGURES], ensure_ascii=False, indent=2) + "\n"
        )


@pytest.fixture
def figures(request: pytest.FixtureRequest, fault_figures: list[FaultFigures]) -> FaultFigures:
    """This test's figures (recorded even when it fails, so a bad run shows up too)."""
    backend = getattr(getattr(request.node, "callspec", None), "params", {}).get("dedicated")
    name = request.node.originalname.removeprefix("test_")
    suffix = "" if backend in (None, "sqlite") else f" [{backend}]"
    entry = FaultFigures(fault=name + suffix, suffix=suffix)
    fault_figures.append(entry)
    return entry


def figures_table(entries: list[FaultFigures]) -> list[str]:
    header = ("fault", "cases", "affected", "dup tried", "dup blocked", "recovery s", "I1-I3")
    rows = [
        (
            f.fault,
            str(f.cases),
            str(f.cases_affected),
            str(f.duplicates_attempted),
            str(f.duplicates_blocked),
            "-" if f.recovery_seconds is None else f"{f.recovery_seconds:.1f}",
            "ok" if f.violations == 0 else f"{f.violations} violated",
        )
        for f in entries
        if f.cases or f.recovery_seconds is not None  # a skipped fault ran nothing
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("fault suite figures")
    for line in figures_table(_FIGURES):
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"(written to {FIGURES_FILE})")


# --- stacks ------------------------------------------------------------------------------
async def start_stack(
    root: Path,
    kafka_target: str,
    temporal_target: str,
    client: Client,
    database_urls: dict[str, str] | None = None,
) -> AgencyStack:
    prefix = f"ft{uuid.uuid4().hex[:10]}"
    stack = AgencyStack(
        root=root,
        prefix=prefix,
        kafka_bootstrap=kafka_target,
        temporal=client,
        incoming_url=f"http://127.0.0.1:{free_port()}",
        outgoing_url=f"http://127.0.0.1:{free_port()}",
        env=stack_env(root, prefix, kafka_target, temporal_target, database_urls),
    )
    stack.start()
    try:
        await stack.wait_ready()
    except BaseException:
        stack.stop()
        raise
    return stack


STATE = Path(os.environ.get("MEDTRANSFER_TEST_STATE", REPO_DIR / "var" / "test")) / "faults-servers"


@dataclass
class Dedicated:
    """A Kafka broker and a Temporal dev server of the fault suite's own, and both
    services on them: faults may kill or freeze any of it, never the session's servers."""

    kafka: ScriptServer
    temporal: ScriptServer
    stack: AgencyStack
    backend: str = "sqlite"

    @property
    def kafka_pid(self) -> int:
        return pid_of(STATE / "kafka" / "kafka.pid")

    @property
    def temporal_pid(self) -> int:
        return pid_of(STATE / "temporal" / "temporal.pid")


@pytest.fixture(scope="package", params=["sqlite", "postgresql"])
async def dedicated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Dedicated]:
    """The suite runs once with SQLite files and once with both agencies on PostgreSQL
    (SQLite hides races that PostgreSQL shows)."""
    backend = str(request.param)
    urls: dict[str, str] | None = None
    if backend == "postgresql":
        pg: Postgres = request.getfixturevalue("postgres")
        urls = {side: pg.new_database(f"fault_{side}") for side in ("incoming", "outgoing")}
    kafka = kafka_server(STATE, free_port(), free_port())
    temporal = temporal_server(STATE, free_port(), free_port())
    # Leftovers of an aborted run are stopped through their pid files, then wiped.
    for server in (kafka, temporal):
        server.stop()
    shutil.rmtree(STATE, ignore_errors=True)
    await asyncio.gather(asyncio.to_thread(kafka.start), asyncio.to_thread(temporal.start))
    stack: AgencyStack | None = None
    try:
        client = await Client.connect(temporal.target)
        stack = await start_stack(
            tmp_path_factory.mktemp(f"fault-agencies-{backend}"),
            kafka.target,
            temporal.target,
            client,
            urls,
        )
        yield Dedicated(kafka, temporal, stack, backend)
    finally:
        if stack is not None:
            stack.stop()
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            os.kill(pid_of(STATE / "kafka" / "kafka.pid"), signal.SIGCONT)  # if left frozen
        for server in (kafka, temporal):
            server.stop()


@pytest.fixture
def fault_stack(dedicated: Dedicated) -> AgencyStack:
    return dedicated.stack


# --- crashing and restarting our processes -----------------------------------------------
def port_of(stack: AgencyStack, side: str) -> str:
    url = stack.incoming_url if side == "incoming" else stack.outgoing_url
    return url.rsplit(":", 1)[1]


def restart(stack: AgencyStack, name: str, **extra_env: str) -> None:
    """(Re)start one process (e.g. ``outgoing-worker``), with extra environment if given."""
    old = stack.processes.pop(name, None)
    if old is not None and old.poll() is None:
        old.kill()
        old.wait()
    side, role = name.split("-")
    saved = stack.env
    stack.env = {**saved, **extra_env}
    try:
        stack.start_process(side, role, port_of(stack, side))
    finally:
        stack.env = saved


def armed(stack: AgencyStack, name: str, point: str) -> Path:
    """Restart ``name`` with the crash point ``point`` armed (fires once); returns the
    marker file that appears when it fires."""
    marker = stack.root / f"fault-{uuid.uuid4().hex[:8]}.fired"
    restart(
        stack,
        name,
        MEDTRANSFER_FAULT_POINT=point,
        MEDTRANSFER_FAULT_MARKER=str(marker),
    )
    return marker


async def wait_exit(process: subprocess.Popen[bytes], timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"process {process.pid} still running after {timeout}s")
        await asyncio.sleep(0.1)
    return int(process.returncode)


async def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.2)


def killed_by_sigkill(returncode: int) -> bool:
    return returncode == -signal.SIGKILL


def pid_of(pidfile: Path) -> int:
    return int(pidfile.read_text().strip())


# --- cases -------------------------------------------------------------------------------
async def start_cases(stack: AgencyStack, count: int, to_region: str = "610100") -> list[str]:
    """``count`` cross-province cases (Pingliang -> Xi'an: the balance is remitted, R18),
    submitted at once."""
    people = [stack.person("620800") for _ in range(count)]
    await asyncio.gather(*(stack.enrol(p, balance_fen=100_000 + i) for i, p in enumerate(people)))
    return list(
        await asyncio.gather(*(stack.submit_ok(stack.application(p, to_region)) for p in people))
    )


def terminal_count(stack: AgencyStack, case_ids: list[str]) -> int:
    """How many of the cases are closed on both sides."""
    marks = ",".join("?" * len(case_ids))
    sql = f"select count(*) from case_record where terminal and case_id in ({marks})"
    both = [stack.query(side, sql, *case_ids)[0][0] for side in ("incoming", "outgoing")]
    return int(min(both))
