"""Session-wide fixtures: real servers (started once, or reused), fresh names per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from harness.servers import REPO_DIR, TEST_SERVER_BIN, ScriptServer, kafka_server, temporal_server
from tests.support.postgres import Postgres, session_postgres

TEST_STATE_DIR = Path(os.environ.get("MEDTRANSFER_TEST_STATE", REPO_DIR / "var" / "test"))
KAFKA_PORT = int(os.environ.get("KAFKA_PORT", "9092"))
KAFKA_CONTROLLER_PORT = int(os.environ.get("KAFKA_CONTROLLER_PORT", "9093"))
TEMPORAL_PORT = int(os.environ.get("TEMPORAL_PORT", "7233"))
TEMPORAL_UI_PORT = int(os.environ.get("TEMPORAL_UI_PORT", "8233"))


@pytest.fixture(scope="session")
def kafka() -> Iterator[ScriptServer]:
    """A real single-node KRaft broker; fails (never skips) when it cannot be had."""
    server = kafka_server(TEST_STATE_DIR, KAFKA_PORT, KAFKA_CONTROLLER_PORT)
    server.ensure_started()
    yield server
    server.stop_if_started_here()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka: ScriptServer) -> str:
    return kafka.target


@pytest.fixture(scope="session")
def temporal() -> Iterator[ScriptServer]:
    """The real Temporal dev server (SQLite-backed)."""
    server = temporal_server(TEST_STATE_DIR, TEMPORAL_PORT, TEMPORAL_UI_PORT)
    server.ensure_started()
    yield server
    server.stop_if_started_here()


@pytest.fixture(scope="session")
async def temporal_client(temporal: ScriptServer) -> Client:
    return await Client.connect(temporal.target)


@pytest.fixture
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's Java test server with automatic time skipping (see README: why), one per
    test (under a second to start). A shared one carried each test's leftovers into the
    next: the timers of closed cases moved its clock, and a case terminated mid-flight
    left its time skipping stalled (every later skip "Timeout expired")."""
    if not TEST_SERVER_BIN.exists():
        raise RuntimeError(
            f"{TEST_SERVER_BIN} missing: run 'deploy/local/install.sh test-server' (make test does)"
        )
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(TEST_SERVER_BIN),
        test_server_startup_timeout=timedelta(seconds=60),  # a JVM on a busy 2-core machine
    )
    yield env
    await env.shutdown()


@pytest.fixture
def client(time_skipping_env: WorkflowEnvironment) -> Client:
    """The test server's client with the services' data converter. Built from the
    environment client's config rather than a fresh connection, so it keeps the
    interceptor that unlocks time skipping while a test awaits a result."""
    config = time_skipping_env.client.config()
    config["data_converter"] = pydantic_data_converter
    return Client(**config)


@pytest.fixture
def fresh() -> str:
    """A unique suffix for topic names, task queues and ids, so tests share no leftovers."""
    return uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """PostgreSQL for the session (tests/support/postgres.py)."""
    yield from session_postgres()
