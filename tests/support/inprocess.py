"""Both agency apps in-process for fast tests: the real routes, Kafka entry point and SQL
records on SQLite in a temporary directory, FastStream's in-memory broker, and a fake
Temporal client that records every workflow it was asked to start or signal.

Nothing here opens a socket: the lifespan's Temporal connection is replaced by the fake,
and the broker never connects (the in-memory test broker, or no-op start/stop for HTTP).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from faststream.kafka import TestKafkaBroker
from pydantic import BaseModel
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from contracts.envelope import Envelope
from contracts.local_trust import sign_locally
from domain.identity import fingerprint, mask_id
from harness.agencies import TEST_API_KEYS
from services.common.bootstrap import Service, build_service
from services.common.config import FixedSettings, Settings, Side
from services.common.inbound import InboundHandler
from services.common.tables import CaseRow
from services.incoming_agency.app import create_app as create_incoming
from services.incoming_agency.tables import INCOMING_TABLES
from services.outgoing_agency.app import create_app as create_outgoing
from services.outgoing_agency.tables import OUTGOING_TABLES

TOPIC_PREFIX = "inproc"
# The fake Temporal client of each in-process app, by its settings object: the lifespan
# connects with the app's own settings, so two apps in one test each get theirs.
_FAKES: dict[int, FakeTemporal] = {}


async def _connect_fake(settings: Settings, *_: Any, **__: Any) -> FakeTemporal:
    return _FAKES[id(settings)]


@dataclass
class FakeTemporal:
    """The slice of temporalio's Client the APIs use. A workflow "runs" once started (or
    when a test says so); signalling one that does not run fails like the server does."""

    running: set[str] = field(default_factory=set)
    starts: list[tuple[str, Any]] = field(default_factory=list)
    signals: list[tuple[str, str, Any]] = field(default_factory=list)

    async def start_workflow(
        self, workflow: Any, arg: Any = None, *, id: str, **kwargs: Any
    ) -> Any:
        if id in self.running:
            raise WorkflowAlreadyStartedError(id, getattr(workflow, "__qualname__", "workflow"))
        self.running.add(id)
        self.starts.append((id, arg))
        for start_arg in kwargs.get("start_signal_args") or []:
            self.signals.append((id, str(kwargs.get("start_signal")), start_arg))
        return FakeHandle(self, id)

    def get_workflow_handle(self, workflow_id: str, **_: Any) -> FakeHandle:
        return FakeHandle(self, workflow_id)

    @property
    def actions(self) -> int:
        """Every start and signal so far: a refused input must not add any."""
        return len(self.starts) + len(self.signals)


@dataclass
class FakeHandle:
    client: FakeTemporal
    id: str

    def _must_run(self) -> None:
        if self.id not in self.client.running:
            raise RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b"")

    async def signal(self, signal: Any, arg: Any = None, **_: Any) -> None:
        self._must_run()
        name = signal if isinstance(signal, str) else getattr(signal, "__name__", str(signal))
        self.client.signals.append((self.id, name, arg))

    async def describe(self) -> None:
        self._must_run()


@contextmanager
def _logging_kept() -> Iterator[None]:
    # build_service configures the process's logging; a test session keeps its own.
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        yield
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def build_inprocess_service(side: Side, root: Path, **settings: Any) -> Service:
    values: dict[str, Any] = {
        "data_dir": root / side / "data",
        # One deployment playing both agencies (and the platform operator): the local demo.
        "keys_dir": root / "keys",
        "key_registry_file": root / "trust" / "registry.json",
        "local_demo": True,
        "topic_prefix": TOPIC_PREFIX,
        "task_queue_prefix": TOPIC_PREFIX,
        "api_keys": json.dumps(TEST_API_KEYS),
        "log_json": False,
    }
    with _logging_kept():
        return build_service(
            side,
            INCOMING_TABLES if side == "incoming" else OUTGOING_TABLES,
            FixedSettings(**(values | settings)),
        )


@dataclass
class InProcessAgency:
    side: Side
    service: Service
    app: FastAPI
    temporal: FakeTemporal

    @property
    def handler(self) -> InboundHandler:
        handler: InboundHandler = self.app.state.inbound
        return handler

    @property
    def inbox_topic(self) -> str:
        topics = self.service.settings.topics
        return topics.to_incoming if self.side == "incoming" else topics.to_outgoing

    def dead_letters(self) -> list[str]:
        return [row.reason for row in self.service.repository.dead_letters()]

    def signed(self, envelope: Envelope) -> Envelope:
        """The envelope signed with its sending region's real key."""
        return sign_locally(self.service.settings.keys_dir, envelope)

    def envelope(
        self,
        document: BaseModel,
        case_id: str,
        *,
        from_region: str,
        to_region: str,
        step: str = "step-1",
        sent_at: datetime | None = None,
    ) -> Envelope:
        return self.signed(
            Envelope.wrap(
                document,
                case_id=case_id,
                step=step,
                from_region=from_region,
                to_region=to_region,
                sent_at=sent_at or datetime.now(UTC),
            )
        )

    def seed_case(
        self, case_id: str, status: str, *, from_region: str, to_region: str, person_id: str
    ) -> CaseRow:
        """A case as this side records it, with its workflow running."""
        now = datetime.now(UTC)
        row = self.service.repository.insert_case(
            CaseRow(
                case_id=case_id,
                status=status,
                status_since=now,
                from_region=from_region,
                to_region=to_region,
                from_scheme="employee",
                to_scheme="employee",
                person_key=fingerprint(person_id),
                id_masked=mask_id(person_id),
                created_at=now,
                updated_at=now,
            )
        )
        self.temporal.running.add(f"{self.side}-{case_id}")
        return row

    async def deliver(self, raw: bytes, offset: int = 0) -> str:
        """One Kafka record through the side's real entry point; its outcome."""
        return await self.handler.handle(raw, topic=self.inbox_topic, partition=0, offset=offset)


def inprocess_app(
    side: Side, root: Path, monkeypatch: pytest.MonkeyPatch, **settings: Any
) -> InProcessAgency:
    """The side's real app with a fake Temporal client; its broker starts and stops as
    no-ops, so the HTTP routes can be called (the Kafka entry point needs ``kafka_memory``)."""
    temporal = FakeTemporal()
    monkeypatch.setattr("services.common.app_factory.connect_temporal", _connect_fake)
    # Topics are created by the real broker's admin client; the memory broker needs none.
    monkeypatch.setattr("services.common.app_factory.ensure_topics", _nothing, raising=False)
    service = build_inprocess_service(side, root, **settings)
    _FAKES[id(service.settings)] = temporal
    app = (create_incoming if side == "incoming" else create_outgoing)(service)
    return InProcessAgency(side, service, app, temporal)


async def _nothing(*_: Any, **__: Any) -> None:
    return None


def without_broker(agency: InProcessAgency) -> InProcessAgency:
    """For HTTP-only tests: the lifespan's broker start and stop do nothing."""
    broker = agency.app.state.broker
    broker.start = _nothing
    broker.stop = _nothing
    return agency


@asynccontextmanager
async def kafka_memory(agency: InProcessAgency) -> AsyncIterator[InProcessAgency]:
    """The app's lifespan on FastStream's in-memory broker: dead letters and receipts are
    published in memory, and the fake Temporal client is in place."""
    async with (
        TestKafkaBroker(agency.app.state.broker),
        agency.app.router.lifespan_context(agency.app),
    ):
        yield agency
