"""`make up`, `make status`, `make down` as an operator uses them (through the scripts the
Makefile calls), on private ports and a private state directory."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from harness.agencies import free_port, free_port_block
from harness.servers import DEPLOY

pytestmark = pytest.mark.integration


def stack(action: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DEPLOY / "stack.sh"), action],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def pids(state: Path) -> list[int]:
    return [int(p.read_text()) for p in state.rglob("*.pid")]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_up_status_down_leaves_no_process(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {
        **os.environ,
        "MEDTRANSFER_STATE": str(state),
        "KAFKA_PORT": str(free_port()),
        "KAFKA_CONTROLLER_PORT": str(free_port()),
        "TEMPORAL_PORT": str(free_port()),
        "TEMPORAL_UI_PORT": str(free_port()),
        "INCOMING_PORT": str(free_port()),
        "OUTGOING_PORT": str(free_port()),
        "A_OUTGOING_PORT": str(free_port()),
        "B_INCOMING_PORT": str(free_port()),
        "WORKER_METRICS_BASE": str(free_port_block(4)),
    }
    try:
        up = stack("up", env)
        assert up.returncode == 0, up.stderr[-3000:]
        status = stack("status", env)
        assert status.returncode == 0, status.stdout + status.stderr
        parts = ["kafka", "temporal", "audit"] + [
            f"{agency}-{side}-{role}"
            for agency in ("a", "b")
            for side in ("incoming", "outgoing")
            for role in ("api", "worker")
        ]
        for part in parts:
            assert part in status.stdout
        assert "DOWN" not in status.stdout
        started = pids(state)
        # Kafka, Temporal, per agency deployment two APIs and two workers, the audit consumer.
        assert len(started) == 11
        # Each deployment holds its own regions' private keys only.
        a_keys = {p.parent.name for p in (state / "agency-a" / "keys").glob("*/*.pem")}
        b_keys = {p.parent.name for p in (state / "agency-b" / "keys").glob("*/*.pem")}
        assert "610100" in a_keys
        assert "620800" in b_keys
        assert not a_keys & b_keys
        assert all(alive(pid) for pid in started)
    finally:
        down = stack("down", env)
    assert down.returncode == 0, down.stderr
    assert not any(alive(pid) for pid in started)
    assert pids(state) == []
    assert stack("status", env).returncode != 0
