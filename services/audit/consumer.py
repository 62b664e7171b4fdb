"""The audit topic's consumer: every AuditRecord of both agencies into the audit store.

Delivery semantics: the offset is committed only after the record is stored (ack policy
NACK_ON_ERROR), so a store failure redelivers and nothing is lost; redeliveries and
retried publishes are harmless because the store ignores an identical record. A message
that is not a valid AuditRecord, or whose emitter signature does not verify with the
public-key registry (SIGNATURE_INVALID, REGION_MISMATCH), can never be stored: it is
recorded in ``audit_rejected`` and acknowledged, so it never blocks its partition. A
registry that cannot be read is an error, not a rejection: the record is redelivered.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from faststream import AckPolicy, FastStream
from faststream.kafka.annotations import KafkaMessage
from opentelemetry.sdk.trace import TracerProvider
from pydantic import ValidationError

from contracts.documents import AuditRecord
from services.audit.config import AuditSettings
from services.audit.store import AuditStore, RecordRefused
from services.common.broker import make_broker
from services.common.inbound import raw_body
from services.common.kafka_topics import ensure_topics

log = logging.getLogger("medtransfer.audit")


async def receive(
    store: AuditStore,
    raw: bytes,
    *,
    topic: str,
    partition: int | None = None,
    offset: int | None = None,
    key: bytes | None = None,
) -> str:
    """Validate one message and store it; returns appended, duplicate, conflict or rejected."""

    async def reject(reason: str) -> str:
        await asyncio.to_thread(
            store.reject,
            reason=reason,
            topic=topic,
            raw=raw,
            partition=partition,
            offset=offset,
            key=key,
        )
        return "rejected"

    try:
        record = AuditRecord.model_validate_json(raw)
    except ValidationError as exc:
        # Field locations only: the values may be the personal data that made it invalid.
        fields = ",".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()[:5])
        reason = f"INVALID_AUDIT_RECORD: {fields or 'not JSON'}"
        log.warning("rejected audit message %s[%s]@%s: %s", topic, partition, offset, reason)
        return await reject(reason)
    try:
        outcome = await asyncio.to_thread(store.append, record)
    except RecordRefused as refused:
        # Someone who can write to the audit topic is not the agency they claim to be.
        log.warning(
            "alert: refused audit record %s[%s]@%s of case %s side %s sequence %s: %s",
            topic,
            partition,
            offset,
            record.case_id,
            record.side,
            record.sequence,
            refused.reason,
        )
        return await reject(refused.reason)
    _log_stored(record, outcome)
    return outcome


def _log_stored(record: AuditRecord, outcome: str) -> None:
    if outcome == "conflict":
        log.warning(
            "audit conflict: case %s side %s sequence %s arrived again with different content",
            record.case_id,
            record.side,
            record.sequence,
        )
    else:
        log.info(
            "audit %s: case %s side %s sequence %s",
            outcome,
            record.case_id,
            record.side,
            record.sequence,
        )


def create_app(
    settings: AuditSettings | None = None,
    store: AuditStore | None = None,
    tracer_provider: TracerProvider | None = None,
) -> FastStream:
    """The FastStream application of the audit process (``python -m services.audit run``)."""
    settings = settings or AuditSettings()
    store = store or AuditStore.open(settings.audit_url, keys=settings.lazy_key_registry())
    broker = make_broker(settings, "audit", tracer_provider)
    topic = settings.topics.audit

    @broker.subscriber(
        topic,
        # One group per deployment: each agency's audit consumer reads the whole trail.
        group_id=f"{settings.topic_prefix}-audit-{settings.deployment}",
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=raw_body,
        title="audit trail",
        description="AuditRecords of both agencies, chained per case and side.",
    )
    async def on_audit_record(body: bytes, message: KafkaMessage) -> None:
        record = message.raw_message
        await receive(
            store,
            body,
            topic=topic,
            partition=getattr(record, "partition", None),
            offset=getattr(record, "offset", None),
            key=getattr(record, "key", None),
        )

    return FastStream(broker, logger=log, on_startup=[partial(ensure_topics, settings)])
