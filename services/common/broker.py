"""Kafka for both services: the broker (idempotent producer, tracing middleware) and the
publisher of the platform documents and audit records a side sends."""

from __future__ import annotations

import logging

from faststream.kafka import KafkaBroker
from opentelemetry.sdk.trace import TracerProvider

from contracts.documents import AuditRecord
from contracts.envelope import Envelope
from contracts.keyring import RegionSigner
from contracts.topics import Topics
from services.common.audit_records import AuditRecordSigner, AuditTimeline
from services.common.config import Settings, Side
from services.common.tracing import kafka_middlewares
from services.common.transport import kafka_security


class KafkaDocumentPublisher:
    """Publishes to the other side's platform topic (key = case_id) and to the audit topic.

    The publishers are declared on the broker, so the AsyncAPI document of each service
    shows what it sends and in which schema.
    """

    def __init__(
        self,
        broker: KafkaBroker,
        topics: Topics,
        side: Side,
        *,
        signer: RegionSigner | None = None,
        timeline: AuditTimeline | None = None,
    ) -> None:
        # With signer and timeline, every audit record goes out signed by its case's
        # region, linked to this side's previous record of the case (docs/audit-trust.md);
        # without them (tests, tools) unsigned, which the audit store refuses.
        if (signer is None) != (timeline is None):
            raise ValueError("signing audit records needs both the signer and the timeline")
        self._audit_signer = (
            AuditRecordSigner(signer, timeline)
            if signer is not None and timeline is not None
            else None
        )
        other = "outgoing" if side == "incoming" else "incoming"
        self._documents = broker.publisher(
            topics.outbox(side),
            schema=Envelope,
            title=f"{side}-agency documents to the {other} agency",
            description="Signed platform documents; Kafka key = case_id.",
        )
        self._audit = broker.publisher(
            topics.audit,
            schema=AuditRecord,
            title=f"{side}-agency audit trail",
            description="Every state change of every case, append-only; key = case_id.",
        )

    async def publish_document(self, envelope: Envelope) -> None:
        await self._documents.publish(
            envelope.model_dump_json().encode("utf-8"),
            key=envelope.kafka_key,
            headers={"content-type": "application/json", "document-type": envelope.type},
        )

    async def publish_audit(self, record: AuditRecord) -> None:
        if self._audit_signer is not None:
            record = await self._audit_signer.sign(record)
        await self._audit.publish(
            record.model_dump_json().encode("utf-8"),
            key=record.case_id.encode("utf-8"),
            headers={"content-type": "application/json", "document-type": "AuditRecord"},
        )


def make_broker(
    settings: Settings, client_id: str, tracer_provider: TracerProvider | None = None
) -> KafkaBroker:
    # Idempotent producer with acks=all: a retried send never duplicates a record.
    return KafkaBroker(
        settings.kafka_servers,
        client_id=client_id,
        security=kafka_security(settings),
        enable_idempotence=True,
        acks="all",
        # FastStream would create a subscribed topic itself with 1 partition and 1
        # replica; the topics are created from settings instead (kafka_topics.py).
        allow_auto_create_topics=False,
        logger=logging.getLogger(f"medtransfer.kafka.{client_id}"),
        # "Received"/"Processed" for every message is debug detail, not an INFO line per
        # record (the inbound handler logs what it did with each document).
        log_level=logging.DEBUG,
        # With tracing on, publish puts the trace context in the record's headers and
        # the subscriber continues the trace from them.
        middlewares=kafka_middlewares(tracer_provider),
    )
