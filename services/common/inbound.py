"""The Kafka entry point both services share: validate, verify, de-duplicate, route to a
workflow, record, acknowledge. Routing is side-specific and injected.

Delivery semantics: the subscriber commits the offset only after this returns (ack policy
NACK_ON_ERROR). A transient failure (Temporal unreachable) raises, so the message is
redelivered; a message that can never be acted on is recorded as a dead letter and
acknowledged, so it never blocks its partition.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from faststream.kafka import KafkaBroker
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from contracts.dead_letter import DeadLetter
from contracts.envelope import Envelope
from contracts.topics import Topics
from domain.regions import RegionRegistry
from services.common.platform import (
    InboundProblem,
    KafkaDocumentPublisher,
    NotAddressedToUs,
    RegionSigner,
    parse_and_verify,
    receipt_for,
)
from services.common.repository import CaseRepository

log = logging.getLogger("medtransfer.inbound")

Route = Callable[[Envelope], Awaitable[str]]
ACCEPTED_OUTCOMES = {"accepted", "started", "signalled"}


class InboundHandler:
    def __init__(
        self,
        *,
        repository: CaseRepository,
        registry: RegionRegistry,
        served: set[str],
        broker: KafkaBroker,
        topics: Topics,
        signer: RegionSigner,
        route: Route,
        publisher: KafkaDocumentPublisher,
    ) -> None:
        self._repository = repository
        self._registry = registry
        self._served = served
        self._signer = signer
        self._route = route
        self._publisher = publisher
        self._dead_letters = broker.publisher(
            topics.dead_letter,
            schema=DeadLetter,
            title="dead letters",
            description="Messages that could not be acted on, with the reason.",
        )

    async def handle(
        self, raw: bytes, *, topic: str, partition: int | None, offset: int | None
    ) -> str:
        try:
            envelope = parse_and_verify(raw, self._registry, self._served)
        except NotAddressedToUs:
            return "not_ours"
        except InboundProblem as problem:
            await self._dead_letter(problem, raw, topic, partition, offset)
            return "dead_letter"
        if self._repository.seen(envelope.message_id):
            log.info("duplicate %s %s ignored", envelope.type, envelope.message_id)
            return "duplicate"
        try:
            outcome = await self._route(envelope)
        except InboundProblem as problem:
            await self._dead_letter(problem, raw, topic, partition, offset)
            return "dead_letter"
        self._repository.remember(
            envelope.message_id, envelope.case_id, envelope.type, envelope.from_region, outcome
        )
        log.info("received %s %s: %s", envelope.type, envelope.message_id, outcome)
        if envelope.type != "Receipt" and outcome in ACCEPTED_OUTCOMES:
            receipt = self._signer.sign(receipt_for(envelope, datetime.now(UTC)))
            await self._publisher.publish_document(receipt)
        return outcome

    async def _dead_letter(
        self,
        problem: InboundProblem,
        raw: bytes,
        topic: str,
        partition: int | None,
        offset: int | None,
    ) -> None:
        # The reason names fields and codes only; never the payload's values.
        log.warning("dead letter from %s[%s]@%s: %s", topic, partition, offset, problem.reason)
        self._repository.dead_letter(
            reason=problem.reason,
            topic=topic,
            message_id=problem.message_id,
            case_id=problem.case_id,
            partition=partition,
            offset=offset,
        )
        record = DeadLetter(
            reason=problem.reason,
            message_id=problem.message_id,
            case_id=problem.case_id,
            topic=topic,
            partition=partition,
            offset=offset,
            raw_base64=base64.b64encode(raw).decode("ascii"),
        )
        await self._dead_letters.publish(
            record.model_dump_json().encode("utf-8"),
            key=(problem.case_id or "unknown").encode("utf-8"),
        )


def raw_body(message: object) -> bytes:
    """FastStream decoder that hands the handler the record's bytes untouched, so a
    malformed message reaches our validation (and the dead-letter path) instead of
    failing in the framework and being redelivered forever."""
    body = getattr(message, "body", b"")
    return body if isinstance(body, bytes) else bytes(body)


async def signal(handle: WorkflowHandle, envelope: Envelope) -> str:
    """Hand a document to a running case workflow; a closed one records it as late."""
    try:
        await handle.signal("document", envelope)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise  # transient: the message is redelivered
        try:
            await handle.describe()
        except RPCError:
            raise InboundProblem(
                "UNKNOWN_CASE: no workflow for this case",
                message_id=envelope.message_id,
                case_id=envelope.case_id,
            ) from None
        return "late_after_close"
    return "signalled"
