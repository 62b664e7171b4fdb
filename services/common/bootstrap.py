"""Wiring both services share: one place that builds the adapters from settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from domain.calendar import WorkingDayCalendar
from domain.regions import RegionRegistry
from services.common.auth import Authenticator, parse_api_keys
from services.common.config import Settings, Side
from services.common.db import create_tables, make_engine
from services.common.logging import configure_logging
from services.common.metrics import start_worker_metrics
from services.common.platform import (
    KafkaDocumentPublisher,
    PolicyContext,
    RegionSigner,
    connect_temporal,
    load_registry,
    make_broker,
    working_day_calendar,
)
from services.common.repository import CaseRepository, RegionConnectivity
from workflows.activities import CaseActivities
from workflows.clock import CHINA_TZ

log = logging.getLogger("medtransfer.bootstrap")

# Deterministic modules the workflow sandbox may share with the worker instead of
# re-importing them for every workflow run (the first activation would be slow).
PASSTHROUGH_MODULES = ("pydantic", "pydantic_core", "contracts", "domain", "chinese_calendar")


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
    create_tables(engine, tables)
    registry = load_registry(settings)
    served = set(settings.served_regions) or set(registry.codes())
    return Service(
        side=side,
        settings=settings,
        engine=engine,
        repository=CaseRepository(engine, side),
        registry=registry,
        connectivity=RegionConnectivity(engine, registry),
        # Invalid policy data stops the service here, naming the file, line and rule.
        policy=PolicyContext(settings, registry),
        auth=Authenticator(parse_api_keys(settings.api_keys)),
        served=served,
    )


async def run_worker(service: Service, workflows: list[type], side_activities: list[Any]) -> None:
    """A Temporal worker for one side: its workflows, the shared and the side's activities."""
    settings = service.settings
    client: Client = await connect_temporal(settings)
    broker = make_broker(settings, f"{service.side}-worker")
    await broker.connect()
    start_worker_metrics(service)  # only when MEDTRANSFER_WORKER_METRICS_PORT is set
    publisher = KafkaDocumentPublisher(broker, settings.topics, service.side)
    shared = CaseActivities(
        service.repository,
        publisher,
        RegionSigner(settings.keys_dir),
        service.connectivity,
        service.policy,
    )
    activities = [
        shared.record_case_event,
        shared.region_connected,
        shared.require_region_connected,
        shared.deliver_document,
        shared.load_case_context,
        *side_activities,
    ]
    worker = Worker(
        client,
        task_queue=settings.task_queue(service.side),
        workflows=workflows,
        activities=activities,
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
        ),
    )
    log.info("worker for %s side on task queue %s", service.side, settings.task_queue(service.side))
    try:
        await worker.run()
    finally:
        await broker.stop()
