"""Prometheus metrics for every process of a side: GET /metrics on the API process, a small
HTTP server on the worker process (MEDTRANSFER_WORKER_METRICS_PORT).

The case numbers are read from the side's database at scrape time by a custom collector,
so the API and the worker of one side report the same figures (aggregate them with
``max by (side)``, not ``sum``) and nothing is kept in process-global state: every app or
worker builds its own CollectorRegistry.

Stage durations are computed at scrape time too, over the newest ``STAGE_WINDOW`` timeline
events only, which keeps a scrape cheap and bounded. The price: the histogram describes a
sliding window rather than counting since start-up, so its ``_count`` may go down when
old events leave the window; use it for quantiles over recent cases, not for ``rate()``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from threading import Thread
from typing import Any, Protocol
from wsgiref.simple_server import WSGIServer

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from services.common.acceptance import SECURITY_REASONS, reason_code
from services.common.tables import (
    CaseEventRow,
    CaseRow,
    DeadLetterRow,
    InboxRow,
    SentDocumentRow,
)


class MeteredService(Protocol):
    """What the metrics read of a service (services.common.bootstrap.Service is one):
    named here so metrics need not import the bootstrap that starts them."""

    @property
    def engine(self) -> Engine: ...

    @property
    def side(self) -> str: ...


log = logging.getLogger("medtransfer.metrics")

WORKER_PORT_ENV = "MEDTRANSFER_WORKER_METRICS_PORT"
WORKER_ADDR_ENV = "MEDTRANSFER_WORKER_METRICS_ADDR"
STAGE_WINDOW = 5000
# Seconds: from a test run's second-long stages up to the 15 working days of R14 and past.
STAGE_BUCKETS = (1, 10, 60, 600, 3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400, 21 * 86400)
_POSITION_TIMEOUT = 0.5


class InboundCounters:
    """What one API process's Kafka entry point counted since it started (per process:
    sum them over the replicas of a side)."""

    def __init__(self) -> None:
        self.redeliveries = Counter(
            "medtransfer_redeliveries",
            "Identical redeliveries of a platform message already received (Kafka delivers "
            "at least once); ignored without effect.",
            ["side", "type"],
            registry=None,
        )


@dataclass(frozen=True)
class TimelinePoint:
    case_id: str
    sequence: int
    status: str
    occurred_at: datetime


def stage_durations(points: Iterable[TimelinePoint]) -> dict[str, list[float]]:
    """Seconds each case spent in each status, from its consecutive timeline events.

    A stage is a run of events with the same status; it lasts from the event that entered
    the status to the first event with another status. The current (still open) stage is
    not counted, nor a stage whose start lies before the window (its first event in the
    window is not sequence 1 and nothing earlier is known).
    """
    by_case: dict[str, list[TimelinePoint]] = defaultdict(list)
    for point in points:
        by_case[point.case_id].append(point)
    durations: dict[str, list[float]] = defaultdict(list)
    for case_points in by_case.values():
        case_points.sort(key=lambda p: p.sequence)
        entered: TimelinePoint | None = case_points[0] if case_points[0].sequence == 1 else None
        previous = case_points[0]
        for point in case_points[1:]:
            if point.status != previous.status:
                if entered is not None:
                    seconds = (_utc(point.occurred_at) - _utc(entered.occurred_at)).total_seconds()
                    durations[entered.status].append(max(seconds, 0.0))
                entered = point
            previous = point
    return dict(durations)


def histogram_buckets(
    values: Sequence[float], bounds: Sequence[float] = STAGE_BUCKETS
) -> list[tuple[str, float]]:
    """Cumulative Prometheus buckets (``le`` label, count), ending with +Inf."""
    buckets = [(_le(bound), float(sum(1 for v in values if v <= bound))) for bound in bounds]
    return [*buckets, ("+Inf", float(len(values)))]


def _count(session: Session, table: Any, *where: Any) -> int:
    query = select(func.count()).select_from(table)
    return int(session.exec(query.where(*where) if where else query).one())


@dataclass(frozen=True)
class _Figures:
    """What one scrape read from the side's database (rows as the queries return them)."""

    statuses: Sequence[Any]
    escalated: int
    breaches: Sequence[Any]
    waits: int
    stuck: int
    exceptions: Sequence[Any]
    unacknowledged: int
    dead: int
    reasons: Sequence[Any]
    inbox: Sequence[Any]
    recent: Sequence[Any]


class CaseMetricsCollector(Collector):
    """Case, timeline, inbox and dead-letter figures of one side, queried per scrape."""

    def __init__(self, engine: Engine, side: str, stage_window: int = STAGE_WINDOW) -> None:
        self.engine = engine
        self.side = side
        self.stage_window = stage_window

    def describe(self) -> list[Metric]:
        # Registering must not hit the database; the families are known only per scrape.
        return []

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "medtransfer_db_up",
            "1 when the side's database answered the metrics queries of this scrape.",
            labels=["side"],
        )
        try:
            families = self._families()
        except Exception:
            log.exception("metrics: database query failed for the %s side", self.side)
            up.add_metric([self.side], 0.0)
            yield up
            return
        up.add_metric([self.side], 1.0)
        yield up
        yield from families

    def _families(self) -> list[Metric]:
        figures = self._read()
        return [
            *self._case_families(figures),
            *self._message_families(figures),
            self._stage_durations(figures),
        ]

    def _read(self) -> _Figures:
        with Session(self.engine) as session:
            statuses = session.exec(
                select(CaseRow.status, func.count()).group_by(col(CaseRow.status))
            ).all()
            escalated = _count(
                session, CaseRow, col(CaseRow.escalated).is_(True), col(CaseRow.terminal).is_(False)
            )
            stage = col(CaseEventRow.detail)["stage"].as_string()
            breaches = session.exec(
                select(stage, func.count()).where(CaseEventRow.event == "escalated").group_by(stage)
            ).all()
            waits = _count(
                session, CaseEventRow, CaseEventRow.event == "waiting_for_region_connection"
            )
            stuck = _count(
                session,
                CaseRow,
                col(CaseRow.stuck_since).is_not(None),
                col(CaseRow.terminal).is_(False),
            )
            exceptions = session.exec(
                select(CaseRow.exception_code, func.count())
                .where(col(CaseRow.exception_code).is_not(None))
                .group_by(col(CaseRow.exception_code))
            ).all()
            unacknowledged = _count(
                session, SentDocumentRow, col(SentDocumentRow.receipt_at).is_(None)
            )
            dead = _count(session, DeadLetterRow)
            reasons = session.exec(
                select(DeadLetterRow.reason, func.count()).group_by(col(DeadLetterRow.reason))
            ).all()
            inbox = session.exec(
                select(InboxRow.type, func.count()).group_by(col(InboxRow.type))
            ).all()
            recent = session.exec(
                select(
                    CaseEventRow.case_id,
                    CaseEventRow.sequence,
                    CaseEventRow.status,
                    CaseEventRow.occurred_at,
                )
                .order_by(col(CaseEventRow.id).desc())
                .limit(self.stage_window)
            ).all()
        return _Figures(
            statuses=statuses,
            escalated=escalated,
            breaches=breaches,
            waits=waits,
            stuck=stuck,
            exceptions=exceptions,
            unacknowledged=unacknowledged,
            dead=dead,
            reasons=reasons,
            inbox=inbox,
            recent=recent,
        )

    def _case_families(self, figures: _Figures) -> list[Metric]:
        side = self.side
        cases = GaugeMetricFamily(
            "medtransfer_cases", "Cases by current status.", labels=["side", "status"]
        )
        for status, count in figures.statuses:
            cases.add_metric([side, status], float(count))
        open_escalated = GaugeMetricFamily(
            "medtransfer_cases_escalated",
            "Open cases flagged escalated (a missed limit or a stuck step awaits a clerk).",
            labels=["side"],
        )
        open_escalated.add_metric([side], float(figures.escalated))
        stuck_cases = GaugeMetricFamily(
            "medtransfer_stuck_cases",
            "Open cases whose workflow keeps failing a task or an activity (the stuck-case "
            "sweep); alert on any above zero.",
            labels=["side"],
        )
        stuck_cases.add_metric([side], float(figures.stuck))
        case_exceptions = GaugeMetricFamily(
            "medtransfer_case_exceptions",
            "Cases with an open clerk exception (a document for a closed case, a "
            "counterparty document that does not match), by code; alert on any above zero.",
            labels=["side", "code"],
        )
        for code, count in figures.exceptions:
            case_exceptions.add_metric([side, code or "unknown"], float(count))
        without_receipt = GaugeMetricFamily(
            "medtransfer_documents_without_receipt",
            "Documents this side sent whose receipt has not arrived yet (resent until it "
            "does, services/common/resend.py).",
            labels=["side"],
        )
        without_receipt.add_metric([side], float(figures.unacknowledged))
        breach_total = CounterMetricFamily(
            "medtransfer_deadline_breaches",
            "Escalations on the timelines, by the stage whose limit was missed.",
            labels=["side", "stage"],
        )
        for stage_name, count in figures.breaches:
            breach_total.add_metric([side, stage_name or "unknown"], float(count))
        region_waits = CounterMetricFamily(
            "medtransfer_region_waits",
            "Times a case started waiting for a region to connect to the platform (R23).",
            labels=["side"],
        )
        region_waits.add_metric([side], float(figures.waits))
        return [
            cases,
            open_escalated,
            stuck_cases,
            case_exceptions,
            without_receipt,
            breach_total,
            region_waits,
        ]

    def _message_families(self, figures: _Figures) -> list[Metric]:
        side = self.side
        dead_letters = CounterMetricFamily(
            "medtransfer_dead_letters",
            "Platform messages that could not be acted on.",
            labels=["side"],
        )
        dead_letters.add_metric([side], float(figures.dead))
        refusals = CounterMetricFamily(
            "medtransfer_security_refusals",
            "Platform documents refused as forged, replayed, stale or misaddressed "
            "(dead letters by reason code); alert on any increase.",
            labels=["side", "reason"],
        )
        by_code: dict[str, int] = dict.fromkeys(sorted(SECURITY_REASONS), 0)
        for reason, count in figures.reasons:
            code = reason_code(reason)
            if code in by_code:
                by_code[code] += count
        for code, count in by_code.items():
            refusals.add_metric([side, str(code)], float(count))
        inbox_total = CounterMetricFamily(
            "medtransfer_inbox_messages",
            "Platform messages received (once per message id), by document type.",
            labels=["side", "type"],
        )
        for type_, count in figures.inbox:
            inbox_total.add_metric([side, type_], float(count))
        return [dead_letters, refusals, inbox_total]

    def _stage_durations(self, figures: _Figures) -> Metric:
        side = self.side
        durations = HistogramMetricFamily(
            "medtransfer_stage_duration_seconds",
            f"Time spent in each status, over the newest {self.stage_window} timeline events.",
            labels=["side", "stage"],
        )
        points = (TimelinePoint(*row) for row in figures.recent)
        for stage_name, values in sorted(stage_durations(points).items()):
            durations.add_metric([side, stage_name], histogram_buckets(values), sum(values))
        return durations


def _assigned_partitions(subscriber: Any) -> Iterator[tuple[Any, Any]]:
    """Each (consumer, partition) a subscriber holds: a subscriber with several workers
    (max_workers) keeps one consumer per worker in `consumer_subgroup`."""
    consumers = getattr(subscriber, "consumer_subgroup", None) or [
        getattr(subscriber, "consumer", None)
    ]
    for consumer in consumers:
        if consumer is not None:
            for partition in list(consumer.assignment()):
                yield consumer, partition


class ConsumerLagCollector(Collector):
    """Records not yet handed to the handler, per topic: the partition's highwater minus
    the consumer's position, summed over the partitions assigned to this process.

    The position is only available through an async call, so the /metrics endpoint
    awaits :meth:`refresh` before rendering; the collector reports that snapshot.
    A partition is left out until its first fetch has told the consumer its highwater.
    """

    def __init__(self, side: str) -> None:
        self.side = side
        self._lag: dict[str, int] = {}

    def describe(self) -> list[Metric]:
        return []

    async def refresh(self, broker: Any) -> None:
        lag: dict[str, int] = {}
        for subscriber in getattr(broker, "subscribers", []) if broker is not None else []:
            for consumer, partition in _assigned_partitions(subscriber):
                try:
                    highwater = consumer.highwater(partition)
                    if highwater is None:
                        continue
                    position = await asyncio.wait_for(
                        consumer.position(partition), _POSITION_TIMEOUT
                    )
                except Exception:  # reassigned or not positioned yet: skip this partition
                    continue
                lag[partition.topic] = lag.get(partition.topic, 0) + max(highwater - position, 0)
        self._lag = lag

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "medtransfer_consumer_lag",
            "Kafka records not yet handed to this process's handler, by topic.",
            labels=["side", "topic"],
        )
        for topic, lag in sorted(self._lag.items()):
            family.add_metric([self.side, topic], float(lag))
        yield family


def build_registry(engine: Engine, side: str) -> CollectorRegistry:
    """A fresh registry: the side's case collector plus this process's own metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CaseMetricsCollector(engine, side))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def install_metrics(
    app: FastAPI, service: MeteredService, inbound: InboundCounters | None = None
) -> CollectorRegistry:
    """Add ``GET /metrics`` (Prometheus text format) to an API process.

    Kept out of the OpenAPI document: it is for the monitoring system, not integrators.
    Consumer lag comes from the FastStream broker in ``app.state.broker`` when there is one.
    """
    registry = build_registry(service.engine, service.side)
    lag = ConsumerLagCollector(service.side)
    registry.register(lag)
    if inbound is not None:
        registry.register(inbound.redeliveries)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        await lag.refresh(getattr(app.state, "broker", None))
        # The collector queries the database: keep that off the event loop.
        body = await run_in_threadpool(generate_latest, registry)
        return Response(content=body, media_type=CONTENT_TYPE_LATEST)

    return registry


def worker_metrics_port(side: str, environ: dict[str, str] | None = None) -> int | None:
    """The worker's metrics port: ``MEDTRANSFER_<SIDE>_WORKER_METRICS_PORT`` when set (two
    workers on one machine), else ``MEDTRANSFER_WORKER_METRICS_PORT``; None when unset."""
    env = os.environ if environ is None else environ
    value = env.get(f"MEDTRANSFER_{side.upper()}_WORKER_METRICS_PORT") or env.get(WORKER_PORT_ENV)
    return int(value) if value else None


def start_worker_metrics(
    service: MeteredService, port: int | None = None
) -> tuple[WSGIServer, Thread] | None:
    """Serve the side's metrics and the worker's process metrics on ``port`` (from the
    environment when not given; nothing is started when it is unset there)."""
    port = port if port is not None else worker_metrics_port(service.side)
    if port is None:
        return None
    addr = os.environ.get(WORKER_ADDR_ENV, "127.0.0.1")
    registry = build_registry(service.engine, service.side)
    server, thread = start_http_server(port, addr=addr, registry=registry)
    log.info("worker metrics for the %s side on http://%s:%d/metrics", service.side, addr, port)
    return server, thread


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything the services write is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _le(bound: float) -> str:
    return f"{float(bound)}"
