"""Both agency services as real processes (API and worker of each side) on the real local
servers: their environment, start, readiness, HTTP helpers and read-only looks at their
databases, for the integration tests and the benchmark. The peer agency a test plays
itself is in tests/support/agencies.py."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from contracts.topics import Topics
from domain.identity import resident_id_check_char
from harness.servers import REPO_DIR

# The region whose outgoing agency the test plays itself (the outgoing service does not
# serve it), so a test can send any document, late, twice, or with a wrong amount.
PEER_REGION = "510100"
ALL_REGIONS = [
    "620800",
    "620100",
    "610100",
    "350100",
    "110000",
    "440300",
    "441900",
    "440100",
    "310000",
    "510100",
    "654300",
]


TEST_API_KEYS = {
    "demo-operator": {
        "agency": "operator",
        "regions": ["*"],
        "roles": ["integrator", "clerk", "operator"],
    },
    "demo-clerk": {"agency": "clerk-7", "regions": ["*"], "roles": ["integrator", "clerk"]},
    "xian-portal-key": {"agency": "xian-portal", "regions": ["610100"], "roles": ["integrator"]},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_block(size: int) -> int:
    """The first of ``size`` consecutive free ports, below Linux's ephemeral range
    (32768-60999) so that no client connection takes one of them before the server binds
    it (stack.sh numbers the worker metrics ports from one base)."""
    for _ in range(200):
        base = random.randrange(20000, 32000 - size)
        try:
            for port in range(base, base + size):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no {size} consecutive free ports between 20000 and 32000")


@dataclass
class Person:
    id_number: str
    name: str
    region: str


def new_person(region: str) -> Person:
    birth = f"{random.randint(1960, 2000)}{random.randint(1, 12):02d}{random.randint(1, 28):02d}"
    first17 = f"{region}{birth}{random.randint(0, 999):03d}"
    surname = random.choice("赵钱孙李周吴郑王冯陈")
    given = "".join(random.choice("测试明华伟芳娜敏静丽强磊") for _ in range(2))
    return Person(first17 + resident_id_check_char(first17), surname + given, region)


def stop_processes(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    """Terminate them all at once, wait up to 15 s each, kill what is left; forget them."""
    for process in processes.values():
        process.terminate()
    for process in processes.values():
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
    processes.clear()


@dataclass
class AgencyStack:
    root: Path
    prefix: str
    kafka_bootstrap: str
    temporal: Client
    incoming_url: str
    outgoing_url: str
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    persons: list[Person] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    # Where the services' code is run from (the benchmark runs an older checkout's too).
    code_dir: Path = REPO_DIR
    # The sides this deployment runs (a deployment may serve only one).
    sides: tuple[str, ...] = ("outgoing", "incoming")

    @property
    def topics(self) -> Topics:
        return Topics(prefix=self.prefix)

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def auth(self) -> dict[str, str]:
        """The operator's credentials: every role, every region."""
        return {"X-Api-Key": "demo-operator"}

    @property
    def policy_file(self) -> Path:
        return Path(self.env["MEDTRANSFER_POLICY_FILE"])

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    def person(self, region: str) -> Person:
        person = new_person(region)
        self.persons.append(person)
        return person

    # --- databases (read-only looks for assertions) ----------------------------------
    def query(self, side: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """``sql`` with ``?`` placeholders, on the side's SQLite file or configured URL."""
        url = self.env.get(f"MEDTRANSFER_{side.upper()}_DATABASE_URL")
        if url:
            return query_url(url, sql, *args)
        with sqlite3.connect(self.root / "data" / f"{side}-agency.db", timeout=30) as conn:
            return conn.execute(sql, args).fetchall()

    # --- HTTP --------------------------------------------------------------------------
    async def enrol(self, person: Person, **overrides: Any) -> None:
        body = {
            "id_number": person.id_number,
            "name": person.name,
            "region": person.region,
            "scheme": "employee",
            "status": "suspended",
            "enrolled_since": "2016-03-01",
            "suspended_on": "2026-10-31",
            "arrears_fen": 0,
            "account_status": "normal",
            "balance_fen": 523_400,
            "contribution_months": 120,
        } | overrides
        async with httpx.AsyncClient(
            base_url=self.outgoing_url, timeout=30, headers=self.auth
        ) as http:
            response = await http.put("/v1/enrolments", json=body)
        assert response.status_code == 200, response.text

    def application(self, person: Person, to_region: str, **overrides: Any) -> dict[str, Any]:
        return {
            "person": {"id_number": person.id_number, "name": person.name},
            "from_region": person.region,
            "to_region": to_region,
            "from_scheme": "employee",
            "to_scheme": "employee",
            "reason": "new job",
            "channel": "online",
            "incoming_enrolled_since": "2026-11-01",
        } | overrides

    async def submit(self, application: dict[str, Any]) -> httpx.Response:
        async with httpx.AsyncClient(
            base_url=self.incoming_url, timeout=30, headers=self.auth
        ) as http:
            return await http.post("/v1/applications", json=application)

    async def submit_ok(self, application: dict[str, Any]) -> str:
        response = await self.submit(application)
        assert response.status_code == 201, response.text
        return str(response.json()["case_id"])

    async def case(self, side: str, case_id: str) -> dict[str, Any]:
        url = self.incoming_url if side == "incoming" else self.outgoing_url
        async with httpx.AsyncClient(base_url=url, timeout=30, headers=self.auth) as http:
            response = await http.get(f"/v1/cases/{case_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def wait_case(
        self, side: str, case_id: str, until: Callable[[dict[str, Any]], bool], timeout: float = 60
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                last = await self.case(side, case_id)
            except AssertionError:
                last = {}
            if last and until(last):
                return last
            await asyncio.sleep(0.3)
        raise AssertionError(
            f"{side} case {case_id} did not reach the expected state; last: "
            f"{json.dumps(last, ensure_ascii=False)[:2000]}"
        )

    async def wait_status(
        self, side: str, case_id: str, status: str, timeout: float = 60
    ) -> dict[str, Any]:
        return await self.wait_case(side, case_id, lambda c: c["status"] == status, timeout)

    async def post(
        self, side: str, path: str, body: dict[str, Any] | None = None, method: str = "POST"
    ) -> httpx.Response:
        url = self.incoming_url if side == "incoming" else self.outgoing_url
        async with httpx.AsyncClient(base_url=url, timeout=30, headers=self.auth) as http:
            return await http.request(method, path, json=body)

    # --- processes ---------------------------------------------------------------------
    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for side in self.sides:
            port = self.outgoing_url if side == "outgoing" else self.incoming_url
            for role in ("api", "worker"):
                self.start_process(side, role, port.rsplit(":", 1)[1])

    def start_process(self, side: str, role: str, port: str) -> None:
        name = f"{side}-{role}"
        args = [sys.executable, "-m", f"services.{side}_agency", role]
        if role == "api":
            args += ["--port", port]
        log = (self.log_dir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            args, cwd=self.code_dir, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def start_audit(self) -> None:
        """The audit consumer, as `make run` starts it (python -m services.audit run): it
        takes every audit record both sides publish, into the stack's data directory."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / "audit.log").open("ab")
        self.processes["audit"] = subprocess.Popen(
            [sys.executable, "-m", "services.audit", "run"],
            cwd=self.code_dir,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        process.kill()
        process.wait()

    def stop(self) -> None:
        stop_processes(self.processes)

    async def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        urls = {"incoming": self.incoming_url, "outgoing": self.outgoing_url}
        for url in (urls[side] for side in self.sides):
            while True:
                self._check_alive()
                try:
                    async with httpx.AsyncClient(timeout=2) as http:
                        if (await http.get(f"{url}/health")).status_code == 200:
                            break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} not healthy; logs in {self.log_dir}")
                await asyncio.sleep(0.3)
        for side in self.sides:
            queue = f"{self.prefix}-{side}"
            while not await self._has_pollers(queue):
                self._check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no worker polls {queue}; logs in {self.log_dir}")
                await asyncio.sleep(0.3)

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")

    async def _has_pollers(self, queue: str) -> bool:
        response = await self.temporal.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=self.env.get("MEDTRANSFER_TEMPORAL_NAMESPACE", "default"),
                task_queue=TaskQueue(name=queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        return len(response.pollers) > 0


def query_url(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """``sql`` with ``?`` placeholders on any SQLAlchemy URL (psycopg takes ``%s``)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.paramstyle != "qmark":
                sql = sql.replace("?", "%s")
            return [tuple(row) for row in conn.exec_driver_sql(sql, tuple(args)).fetchall()]
    finally:
        engine.dispose()


def stack_env(
    root: Path,
    prefix: str,
    kafka_bootstrap: str,
    temporal_target: str,
    database_urls: dict[str, str] | None = None,
) -> dict[str, str]:
    """The services' environment; ``database_urls`` ({side: URL}) replaces the SQLite files."""
    served_by_outgoing = [r for r in ALL_REGIONS if r != PEER_REGION]
    # A private copy of the policy table, so a test can publish a new version.
    policy_file = root / "policy" / "policies.jsonl"
    policy_file.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_DIR / "data" / "policy" / "policies.jsonl", policy_file)
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "MEDTRANSFER_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "MEDTRANSFER_TEMPORAL_TARGET": temporal_target,
        "MEDTRANSFER_TOPIC_PREFIX": prefix,
        "MEDTRANSFER_TASK_QUEUE_PREFIX": prefix,
        "MEDTRANSFER_DATA_DIR": str(root / "data"),
        "MEDTRANSFER_KEYS_DIR": str(root / "keys"),
        "MEDTRANSFER_KEY_REGISTRY_FILE": str(root / "trust" / "registry.json"),
        "MEDTRANSFER_LOCAL_DEMO": "true",
        "MEDTRANSFER_POLICY_FILE": str(policy_file),
        "MEDTRANSFER_API_KEYS": json.dumps(TEST_API_KEYS),
        "MEDTRANSFER_DELIVERY_RETRY_INITIAL_SECONDS": "0.5",
        "MEDTRANSFER_DELIVERY_RETRY_MAX_SECONDS": "1",
        # The stuck-case sweep looks often, so a test sees a stuck case within seconds.
        "MEDTRANSFER_STUCK_SWEEP_SECONDS": "1",
        "MEDTRANSFER_STUCK_QUIET_SECONDS": "2",
        # Resend soon and escalate after a few, so a test sees both within seconds.
        "MEDTRANSFER_RESEND_AFTER_SECONDS": "2",
        "MEDTRANSFER_RESEND_ESCALATE_AFTER": "4",
        # Outgoing serves every region but the peer's; incoming serves all (env per process
        # is the same, so the peer region is excluded for both: no test applies to it).
        "MEDTRANSFER_SERVED_REGIONS": json.dumps(served_by_outgoing),
        **{
            f"MEDTRANSFER_{side.upper()}_DATABASE_URL": url
            for side, url in (database_urls or {}).items()
        },
    }
