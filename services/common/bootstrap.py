"""Wiring both services share: one place that builds the adapters from settings."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from contracts.keyring import KeyRegistrySource, RegionSigner
from domain.calendar import WorkingDayCalendar
from domain.regions import RegionRegistry
from services.common.auth import Authenticator, parse_api_keys
from services.common.broker import KafkaDocumentPublisher, make_broker
from services.common.config import Settings, Side
from services.common.db import make_engine
from services.common.kafka_topics import ensure_topics
from services.common.keys import load_registry, load_trust, served_regions
from services.common.logging import configure_logging
from services.common.metrics import start_worker_metrics
from services.common.migrate import VERSIONS_DIR, History
from services.common.migrate import upgrade as migrate_database
from services.common.policy_context import PolicyContext, working_day_calendar
from services.common.repository import CaseRepository, RegionConnectivity
from services.common.resend import ResendSweep
from services.common.stuck import StuckCaseSweep
from services.common.temporal import connect_temporal
from services.common.tracing import configure_tracing
from workflows.activities import CaseActivities
from workflows.clock import CHINA_TZ

log = logging.getLogger("medtransfer.bootstrap")

# Deterministic modules the workflow sandbox may share with the worker instead of
# re-importing them for every workflow run (the first activation would be slow).
PASSTHROUGH_MODULES = (
    "pydantic",
    "pydantic_core",
    "contracts",
    "domain",
    "chinese_calendar",
    "opentelemetry",  # the tracing interceptor's workflow side
)


@dataclass
class Service:
    side: Side
    settings: Settings
    engine: Engine
    repository: CaseRepository
    registry: RegionRegistry
    connectivity: RegionConnectivity
    policy: PolicyContext
    auth: Authenticator
    keys: KeyRegistrySource
    signer: RegionSigner
    served: set[str] = field(default_factory=set)

    def calendar(self, today: date) -> WorkingDayCalendar:
        return working_day_calendar(
            (today.year - 1, today.year, today.year + 1), self.settings.calendar_dir
        )

    def today(self) -> date:
        return datetime.now(CHINA_TZ).date()

    def workflow_url(self, workflow_id: str) -> str:
        return (
            f"{self.settings.temporal_ui_url}/namespaces/{self.settings.temporal_namespace}"
            f"/workflows/{workflow_id}"
        )


def build_service(side: Side, tables: list[Any], settings: Settings | None = None) -> Service:
    settings = settings or Settings()
    configure_logging(f"{side}-agency", json_output=settings.log_json)
    engine = make_engine(settings.database_url(side))
    # Create, adopt or upgrade the side's database to the tables it was started with.
    migrate_database(engine, History(side, VERSIONS_DIR / side, tuple(tables)))
    registry = load_registry(settings)
    served = served_regions(settings, registry)
    # Key custody is checked before anything else starts: a key directory with another
    # region's private key stops the service.
    keys = load_trust(settings, served)
    return Service(
        side=side,
        settings=settings,
        engine=engine,
        repository=CaseRepository(engine, side),
        registry=registry,
        connectivity=RegionConnectivity(engine, registry),
        # Invalid policy data stops the service here, naming the file, line and rule.
        policy=PolicyContext(settings, registry),
        auth=Authenticator(parse_api_keys(settings.api_keys, allow_demo=settings.local_demo)),
        keys=keys,
        signer=RegionSigner(settings.keys_dir, served, keys),
        served=served,
    )


def keep_bytecode() -> None:
    """The sandbox imports a workflow's module afresh for every new workflow. Where
    PYTHONDONTWRITEBYTECODE is set that is a compile of the source each time (13% of the
    incoming worker's CPU while cases start, make bench --profile); the bytecode goes to
    a cache outside the source tree instead."""
    if sys.dont_write_bytecode:
        sys.pycache_prefix = sys.pycache_prefix or str(
            Path(tempfile.gettempdir()) / "medtransfer-pycache"
        )
        sys.dont_write_bytecode = False


def case_worker(
    client: Client, task_queue: str, workflows: list[type], activities: list[Any]
) -> Worker:
    """The worker settings every case worker runs with (the benchmark's same-shape
    workflow uses them too, so its ceiling is measured on equal terms)."""
    keep_bytecode()
    return Worker(
        client,
        task_queue=task_queue,
        workflows=workflows,
        activities=activities,
        # A stopping worker (SIGTERM) lets running activities finish for this long.
        graceful_shutdown_timeout=timedelta(seconds=20),
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
        ),
    )


async def run_worker(
    service: Service,
    workflows: list[type],
    side_activities: list[Any],
    workflow_id: Callable[[str], str],
) -> None:
    """A Temporal worker for one side: its workflows, the shared and the side's
    activities, and the stuck-case sweep over the side's cases."""
    settings = service.settings
    # The client's tracing interceptor also serves the worker built on it: workflow and
    # activity spans continue the trace of whoever started or signalled the workflow.
    tracer_provider = configure_tracing(settings, f"{service.side}-agency-worker")
    client: Client = await connect_temporal(settings, tracer_provider)
    broker = make_broker(settings, f"{service.side}-worker", tracer_provider)
    await ensure_topics(settings)
    await broker.connect()
    start_worker_metrics(service)  # only when MEDTRANSFER_WORKER_METRICS_PORT is set
    # Audit records go out signed by this agency and linked to its previous record.
    publisher = KafkaDocumentPublisher(
        broker, settings.topics, service.side, signer=service.signer, timeline=service.repository
    )
    shared = CaseActivities(
        service.repository,
        publisher,
        service.signer,
        service.connectivity,
        service.policy,
    )
    activities = [
        shared.record_case_event,
        shared.record_case_events,
        shared.region_connected,
        shared.require_region_connected,
        shared.deliver_document,
        shared.load_case_context,
        *side_activities,
    ]
    worker = case_worker(client, settings.task_queue(service.side), workflows, activities)
    log.info("worker for %s side on task queue %s", service.side, settings.task_queue(service.side))
    sweeping = _start_sweeps(service, client, publisher, workflow_id)
    try:
        await _run_until_stopped(worker)
    finally:
        for task in sweeping:
            task.cancel()
        await broker.stop()
        if tracer_provider is not None:
            tracer_provider.shutdown()  # flush the last batch of spans


def _start_sweeps(
    service: Service,
    client: Client,
    publisher: KafkaDocumentPublisher,
    workflow_id: Callable[[str], str],
) -> list[asyncio.Task[None]]:
    """The worker's schedules: the stuck-case sweep over the side's cases, and the resend
    of documents the other side has not acknowledged."""
    settings = service.settings
    sweep = StuckCaseSweep(
        service.repository,
        client,
        workflow_id,
        publisher,
        quiet=timedelta(seconds=settings.stuck_quiet_seconds),
    )
    resend = ResendSweep(
        service.repository,
        publisher,
        service.signer,
        first_wait=timedelta(seconds=settings.resend_after_seconds),
        escalate_after=settings.resend_escalate_after,
    )
    return [
        asyncio.create_task(sweep.run_forever(timedelta(seconds=settings.stuck_sweep_seconds))),
        asyncio.create_task(
            resend.run_forever(timedelta(seconds=min(30.0, settings.resend_after_seconds)))
        ),
    ]


async def _run_until_stopped(worker: Worker) -> None:
    """Run the worker until SIGTERM/SIGINT, then shut it down gracefully: no new tasks are
    polled and running activities get the graceful timeout to finish (those cut off are
    retried by Temporal elsewhere; every activity is idempotent)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    running = asyncio.create_task(worker.run())
    stopping = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if stopping in done:
        log.info("stop signal: finishing running activities, then exiting")
        await worker.shutdown()
    else:
        stopping.cancel()
    await running  # a fatal worker error propagates
