"""The real stack for the benchmark, started once: Kafka (KRaft) and the Temporal dev server
(persisted to its SQLite file) through the deploy/local scripts, and both agency services
(API + worker per side) and the audit consumer as five processes, launched exactly as the
integration tests do (harness/: ScriptServer, AgencyStack)."""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from bench.procs import CpuMeter
from harness.agencies import AgencyStack, free_port, stack_env
from harness.servers import REPO_DIR, ScriptServer, kafka_server, probe, temporal_server

# Own ports and state, so a benchmark never meets `make run` (9092/7233, var/local) or
# `make test` (var/test); each overridable by the same variables the scripts read.
STATE_DIR = Path(os.environ.get("MEDTRANSFER_BENCH_STATE", REPO_DIR / "var" / "bench"))
KAFKA_PORT = int(os.environ.get("BENCH_KAFKA_PORT", "59092"))
KAFKA_CONTROLLER_PORT = int(os.environ.get("BENCH_KAFKA_CONTROLLER_PORT", "59093"))
TEMPORAL_PORT = int(os.environ.get("BENCH_TEMPORAL_PORT", "57233"))
TEMPORAL_UI_PORT = int(os.environ.get("BENCH_TEMPORAL_UI_PORT", "58233"))


def _pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


@dataclass
class BenchStack:
    state: Path = STATE_DIR
    # Where the engines' start scripts and the services' code come from: this checkout,
    # or an older one for a before/after comparison (git archive COMMIT | tar -x -C DIR).
    code_dir: Path = REPO_DIR
    kafka: ScriptServer = field(init=False)
    temporal: ScriptServer = field(init=False)
    client: Client | None = None
    agencies: AgencyStack | None = None

    def __post_init__(self) -> None:
        self.kafka = kafka_server(self.state, KAFKA_PORT, KAFKA_CONTROLLER_PORT)
        self.temporal = temporal_server(self.state, TEMPORAL_PORT, TEMPORAL_UI_PORT)
        if self.code_dir != REPO_DIR:
            for server, script in ((self.kafka, "kafka.sh"), (self.temporal, "temporal.sh")):
                server.script = str(self.code_dir / "deploy" / "local" / script)
                server.env["MEDTRANSFER_PYTHON"] = sys.executable  # no .venv over there

    # --- servers -------------------------------------------------------------------------
    def start_servers(self, log: Callable[[str], None]) -> None:
        """Start Kafka and Temporal with fresh state (a previous run's 100,000 cases would
        skew this one); servers already answering on the bench ports are reused as they
        are and left running at the end."""
        for server, sub in ((self.kafka, "kafka"), (self.temporal, "temporal")):
            if probe(server.probe_kind, server.target):
                log(f"{sub}: reusing the server already answering on {server.target}")
                continue
            shutil.rmtree(self.state / sub, ignore_errors=True)
            log(f"{sub}: starting on {server.target} (state {self.state / sub})")
            server.ensure_started()

    def stop_servers(self) -> None:
        for server in (self.temporal, self.kafka):
            try:
                server.stop_if_started_here()
            except RuntimeError:
                pass

    @property
    def kafka_bootstrap(self) -> str:
        return self.kafka.target

    async def connect(self) -> Client:
        if self.client is None:
            self.client = await Client.connect(
                self.temporal.target, data_converter=pydantic_data_converter
            )
        return self.client

    # --- agency services ---------------------------------------------------------------------
    async def start_agencies(self) -> AgencyStack:
        """Both services and both workers, fresh databases, keys and topic prefix."""
        root = self.state / "run" / "agencies"
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        prefix = f"bench{uuid.uuid4().hex[:8]}"
        self.agencies = AgencyStack(
            root=root,
            prefix=prefix,
            kafka_bootstrap=self.kafka_bootstrap,
            temporal=await self.connect(),
            incoming_url=f"http://127.0.0.1:{free_port()}",
            outgoing_url=f"http://127.0.0.1:{free_port()}",
            env=stack_env(root, prefix, self.kafka_bootstrap, self.temporal.target),
            code_dir=self.code_dir,
        )
        self.agencies.start()
        # As `make run` does: the audit consumer takes two thirds of the records produced.
        self.agencies.start_audit()
        await self.agencies.wait_ready()
        return self.agencies

    def stop_agencies(self) -> None:
        if self.agencies is not None:
            self.agencies.stop()

    # --- processes to account for ------------------------------------------------------------
    def pids(self) -> dict[str, int]:
        pids: dict[str, int] = {}
        if self.agencies is not None:
            pids |= {name: p.pid for name, p in self.agencies.processes.items()}
        for name, pidfile in (
            ("kafka", self.state / "kafka" / "kafka.pid"),
            ("temporal", self.state / "temporal" / "temporal.pid"),
        ):
            pid = _pid(pidfile)
            if pid is not None:
                pids[name] = pid
        pids["bench"] = os.getpid()
        return pids

    def meter(self) -> CpuMeter:
        return CpuMeter(self.pids())
