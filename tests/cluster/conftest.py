"""The local multi-node deployment (deploy/local/cluster.sh) on free ports and a private
state directory, started the way an operator starts it and stopped at the end."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.servers import DEPLOY, REPO_DIR

TEST_STATE_DIR = Path(os.environ.get("MEDTRANSFER_TEST_STATE", REPO_DIR / "var" / "test"))
API_KEY = "demo-operator"  # the cluster's local demo credentials (deploy/local/lib.sh)


@dataclass
class LocalCluster:
    root: Path  # the state directory; the databases are root/data/<side>-agency.db
    kafka_ports: list[int]
    incoming_ports: list[int]
    outgoing_ports: list[int]
    temporal_port: int
    env: dict[str, str] = field(default_factory=dict)
    up_seconds: float | None = None  # the first `cluster.sh up`, from an empty state

    @classmethod
    def on_free_ports(cls, root: Path) -> LocalCluster:
        ports = listen_ports(16)
        cluster = cls(
            root=root,
            kafka_ports=ports[0:3],
            incoming_ports=ports[3:5],
            outgoing_ports=ports[5:7],
            temporal_port=ports[7],
        )
        # Nothing of the caller's MEDTRANSFER_* environment leaks into the cluster.
        cluster.env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("MEDTRANSFER_", "CLUSTER_"))
            },
            "MEDTRANSFER_STATE": str(root),
            "CLUSTER_KAFKA_PORTS": _words(cluster.kafka_ports),
            "CLUSTER_CONTROLLER_PORTS": _words(ports[8:11]),
            "CLUSTER_TEMPORAL_PORT": str(cluster.temporal_port),
            "CLUSTER_TEMPORAL_UI_PORT": str(ports[11]),
            "CLUSTER_INCOMING_PORTS": _words(cluster.incoming_ports),
            "CLUSTER_OUTGOING_PORTS": _words(cluster.outgoing_ports),
            "CLUSTER_INCOMING_WORKER_METRICS_PORTS": _words(ports[12:14]),
            "CLUSTER_OUTGOING_WORKER_METRICS_PORTS": _words(ports[14:16]),
            "APP_READY_SECONDS": "180",  # nine Python processes at once on a busy machine
        }
        return cluster

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.kafka_ports)

    @property
    def temporal_target(self) -> str:
        return f"127.0.0.1:{self.temporal_port}"

    @property
    def incoming_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.incoming_ports]

    @property
    def outgoing_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.outgoing_ports]

    def script(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(DEPLOY / "cluster.sh"), *args],
            env=self.env,
            cwd=REPO_DIR,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def up(self) -> float:
        """Start whatever is not running and wait until all is ready; the seconds it took."""
        started = time.monotonic()
        result = self.script("up")
        assert result.returncode == 0, f"cluster.sh up failed:\n{result.stderr[-4000:]}"
        return time.monotonic() - started

    def kill(self, part: str) -> None:
        result = self.script("kill", part, timeout=60)
        assert result.returncode == 0, result.stderr

    def status(self) -> subprocess.CompletedProcess[str]:
        return self.script("status", timeout=120)

    def pids(self) -> list[int]:
        return [int(p.read_text()) for p in self.root.rglob("*.pid") if p.read_text().strip()]

    def down(self) -> None:
        result = self.script("down")
        assert result.returncode == 0, f"cluster.sh down failed:\n{result.stderr[-3000:]}"


def listen_ports(count: int) -> list[int]:
    """Free ports below the ephemeral range: a port the kernel hands out for port 0 may be
    taken by some client socket's local end before a server binds it."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    found: list[int] = []
    while len(found) < count:
        port = random.randrange(20000, min(low, 32768))
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in found:
            found.append(port)
    return found


def _words(ports: Iterable[int]) -> str:
    return " ".join(str(p) for p in ports)


def alive(pid: int) -> bool:
    """Running, or about to: a killed process the init process has not reaped yet (a
    zombie) holds nothing and is not left behind."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    root = TEST_STATE_DIR / "cluster"
    if root.exists():
        # A run that died half-way may have left processes; stop them by their pid files.
        LocalCluster.on_free_ports(root).script("down")
        shutil.rmtree(root)  # a fresh quorum, Temporal database and service databases
    cluster = LocalCluster.on_free_ports(root)
    try:
        cluster.up_seconds = cluster.up()
        yield cluster
    finally:
        pids = cluster.pids()  # the current ones: parts killed by a test were restarted
        cluster.down()
        left = [pid for pid in pids if alive(pid)]
        assert not left, f"processes left after cluster.sh down: {left}"
