"""OpenTelemetry traces from the HTTP request through Kafka to the workflow activities.

Each process builds one tracer provider from settings (``MEDTRANSFER_TRACING_*``) and
hands it to the libraries' own instrumentation: FastAPI's server spans (the incoming
``traceparent`` is honoured), FastStream's Kafka middleware (publish injects the context
into the record's headers, subscribe extracts it) and Temporal's TracingInterceptor
(client calls carry the context into workflows, workflows into activities). Tracing off
means no provider: every library falls back to OpenTelemetry's no-op tracer.

Spans carry ids, names of operations and topics, never a person's data: our URLs and
Kafka keys hold case ids only, and as a second line of defence every string on a span is
scrubbed of anything shaped like an ID number, phone or bank account before export
(the same scrubber as the logs).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Status
from temporalio.client import Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor

from services.common.config import Settings
from services.common.logging import scrub

log = logging.getLogger("medtransfer.tracing")

# Polled all the time by health checks and Prometheus: traces of them are only noise.
UNTRACED_URLS = "/health,/metrics"


def configure_tracing(settings: Settings, service_name: str) -> TracerProvider | None:
    """This process's tracer provider, or None when tracing is off."""
    if settings.tracing_exporter == "off":
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if settings.tracing_exporter == "file":
        path = settings.tracing_dir / f"{service_name}.jsonl"
        # One line per span as it ends: nothing waits in a buffer when the process is
        # stopped, and appending a line to a local file costs next to nothing.
        exporter: SpanExporter = JsonLinesSpanExporter(path)
        provider.add_span_processor(SimpleSpanProcessor(ScrubbingSpanExporter(exporter)))
        log.info("tracing to %s", path)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=settings.tracing_otlp_endpoint)
        provider.add_span_processor(BatchSpanProcessor(ScrubbingSpanExporter(exporter)))
        log.info("tracing over OTLP/HTTP")
    return provider


def temporal_interceptors(provider: TracerProvider | None) -> list[Interceptor]:
    """Temporal client interceptors; a worker built on the client inherits them."""
    if provider is None:
        return []
    return [TracingInterceptor(provider.get_tracer("medtransfer.temporal"))]


def kafka_middlewares(provider: TracerProvider | None) -> tuple[KafkaTelemetryMiddleware, ...]:
    if provider is None:
        return ()
    return (KafkaTelemetryMiddleware(tracer_provider=provider),)


def instrument_app(app: FastAPI, provider: TracerProvider | None) -> None:
    """One server span per HTTP request, child of the caller's ``traceparent`` if any."""
    if provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls=UNTRACED_URLS,
        exclude_spans=["receive", "send"],  # one span per request, not one per ASGI message
    )


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, tuple | list):
        return tuple(scrub(v) if isinstance(v, str) else v for v in value)
    return value


def _clean_attributes(attributes: Any) -> dict[str, Any]:
    return {k: _clean(v) for k, v in (attributes or {}).items()}


class ScrubbingSpanExporter(SpanExporter):
    """Masks ID-number-, phone- and account-shaped text in every attribute, event and
    status description before the spans reach the real exporter."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([self._scrubbed(s) for s in spans])

    @staticmethod
    def _scrubbed(span: ReadableSpan) -> ReadableSpan:
        status = span.status
        if status.description:
            status = Status(status.status_code, scrub(status.description))
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=_clean_attributes(span.attributes),
            events=[
                Event(e.name, _clean_attributes(e.attributes), e.timestamp) for e in span.events
            ],
            links=span.links,
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def _iso(nanos: int | None) -> str | None:
    if nanos is None:
        return None
    return datetime.fromtimestamp(nanos / 1e9, UTC).isoformat(timespec="microseconds")


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """One span as a flat JSON object: ids in W3C hex, the parent, the process's
    service.name, the kind, start and end (UTC), attributes, events and links."""
    context = span.context
    parent = span.parent
    return {
        "trace_id": f"{context.trace_id:032x}" if context else None,
        "span_id": f"{context.span_id:016x}" if context else None,
        "parent_span_id": f"{parent.span_id:016x}" if parent else None,
        "parent_is_remote": bool(parent and parent.is_remote),
        "name": span.name,
        "service.name": span.resource.attributes.get("service.name"),
        "kind": span.kind.name,
        "start": _iso(span.start_time),
        "end": _iso(span.end_time),
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "events": [
            {"name": e.name, "time": _iso(e.timestamp), "attributes": dict(e.attributes or {})}
            for e in span.events
        ],
        "links": [
            {"trace_id": f"{k.context.trace_id:032x}", "span_id": f"{k.context.span_id:016x}"}
            for k in span.links
        ],
    }


class JsonLinesSpanExporter(SpanExporter):
    """Appends each span as one JSON line to a file. Lines are written with single
    O_APPEND writes, so two processes sharing the file never interleave within a line."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._fd is None:
            return SpanExportResult.FAILURE
        try:
            for span in spans:
                line = json.dumps(span_record(span), ensure_ascii=False, default=str) + "\n"
                os.write(self._fd, line.encode("utf-8"))
        except OSError as exc:
            log.warning("could not write spans to %s: %s", self._path, exc.strerror)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
