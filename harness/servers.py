"""Start the real local servers (Kafka, Temporal) for tests and the benchmark, or reuse
ones already answering.

The deploy/local scripts do the work, so tests exercise the same start-up path operators
use. A server the test session started is stopped when the session ends; one that was
already running (``make up``) is left alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[1]
DEPLOY = REPO_DIR / "deploy" / "local"
CACHE_DIR = Path(os.environ.get("MEDTRANSFER_CACHE", Path.home() / ".cache" / "medtransfer"))
TEST_SERVER_BIN = CACHE_DIR / "temporal-test-server-1.31.0" / "temporal-test-server"


def probe(kind: str, target: str) -> bool:
    result = subprocess.run(
        [sys.executable, str(DEPLOY / "probe.py"), kind, target],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


@dataclass
class ScriptServer:
    """One server managed through a deploy/local script (kafka.sh or temporal.sh)."""

    script: str
    probe_kind: str
    env: dict[str, str]
    target: str
    started_here: bool = field(default=False, init=False)

    def _run(self, action: str) -> None:
        env = {**os.environ, **self.env}
        result = subprocess.run(
            [str(DEPLOY / self.script), action], env=env, capture_output=True, text=True
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{self.script} {action} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )

    def ensure_started(self) -> None:
        if probe(self.probe_kind, self.target):
            return
        self._run("start")
        self.started_here = True

    def start(self) -> None:
        self._run("start")

    def stop(self) -> None:
        self._run("stop")

    def stop_if_started_here(self) -> None:
        if self.started_here:
            self.stop()


def kafka_server(state_dir: Path, port: int, controller_port: int) -> ScriptServer:
    return ScriptServer(
        script="kafka.sh",
        probe_kind="kafka",
        env={
            "MEDTRANSFER_STATE": str(state_dir),
            "KAFKA_PORT": str(port),
            "KAFKA_CONTROLLER_PORT": str(controller_port),
        },
        target=f"127.0.0.1:{port}",
    )


def temporal_server(state_dir: Path, port: int, ui_port: int) -> ScriptServer:
    return ScriptServer(
        script="temporal.sh",
        probe_kind="temporal",
        env={
            "MEDTRANSFER_STATE": str(state_dir),
            "TEMPORAL_PORT": str(port),
            "TEMPORAL_UI_PORT": str(ui_port),
        },
        target=f"127.0.0.1:{port}",
    )
