"""The Kafka entry point both services share: validate, verify, de-duplicate, route to a
workflow, record, acknowledge. Routing is side-specific and injected.

Delivery semantics: the subscriber commits the offset only after this returns (ack policy
NACK_ON_ERROR). A transient failure (Temporal unreachable) raises, so the message is
redelivered; a message that can never be acted on is recorded as a dead letter and
acknowledged, so it never blocks its partition.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from faststream.kafka import KafkaBroker
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from contracts.dead_letter import DeadLetter, DeadLetterCode
from contracts.envelope import Envelope
from contracts.keyring import KeyRegistrySource, RegionSigner
from contracts.topics import Topics
from domain.regions import RegionRegistry
from services.common.acceptance import (
    DEFAULT_REPLAY_WINDOW,
    MAX_DOCUMENT_BYTES,
    SECURITY_REASONS,
    InboundProblem,
    NotAddressedToUs,
    content_digest,
    misaddressed_problem,
    parse_and_verify,
    reason_code,
    receipt_for,
    stale_problem,
)
from services.common.broker import KafkaDocumentPublisher
from services.common.faults import crash_point
from services.common.metrics import InboundCounters
from services.common.repository import CaseRepository, utcnow

log = logging.getLogger("medtransfer.inbound")

Route = Callable[[Envelope], Awaitable[str]]
# Outcomes that answer with a signed receipt: the document is received and recorded
# (acted on, or held for a clerk), so the sender stops resending it.
ACCEPTED_OUTCOMES = {
    "accepted",
    "started",
    "signalled",
    "late_after_close",
    "duplicate_residual",
    "answered_after_close",
}
# A route's outcome "held:<CODE>": the document is received but not acted on; a clerk
# exception with that code is opened on the case.
HELD = "held:"
# Dead-letter causes that can clear: the case is not known here yet (its first document
# is still on its way), or the sender's region is not in the registry yet.
REDRIVABLE = frozenset({DeadLetterCode.UNKNOWN_CASE, DeadLetterCode.UNKNOWN_SENDER_REGION})
# Documents that may meet a closed case without harm: notices, and the answer to a stop
# of a case that ended otherwise meanwhile (an insurance certificate's notice follows the
# balance when the region was off, R10/R23: the person may have brought it already).
# Anything else for a closed case (a sheet, a remittance, a confirmation) may carry money:
# a clerk exception, never a silent park.
HARMLESS_AFTER_CLOSE = frozenset(
    {
        "Reminder",
        "Escalation",
        "WithdrawalRequested",
        "WithdrawalAnswered",
        "InsuranceCertificateIssued",
    }
)


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
        keys: KeyRegistrySource,
        route: Route,
        publisher: KafkaDocumentPublisher,
        replay_window: timedelta = DEFAULT_REPLAY_WINDOW,
        counters: InboundCounters | None = None,
    ) -> None:
        self._repository = repository
        self._replay_window = replay_window
        self._counters = counters or InboundCounters()
        self._registry = registry
        self._served = served
        self._signer = signer
        self._keys = keys
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
            envelope = parse_and_verify(raw, self._registry, self._served, self._keys)
        except NotAddressedToUs:
            return "not_ours"
        except InboundProblem as problem:
            await self._dead_letter(problem, raw, topic, partition, offset)
            return "dead_letter"
        digest = content_digest(envelope)
        earlier = await asyncio.to_thread(self._repository.received, envelope.message_id)
        if earlier is not None and earlier.digest in (None, digest):
            # Kafka delivers at least once: the same message again is a silent no-op.
            self._counters.redeliveries.labels(self._repository.side, envelope.type).inc()
            log.info("duplicate %s %s ignored", envelope.type, envelope.message_id)
            # The first delivery may have died between its inbox commit and its receipt:
            # send the receipt again (same message id, so the sender records it once).
            await self._send_receipt(envelope, earlier.outcome)
            return "duplicate"
        refusal = await asyncio.to_thread(self._refusal, envelope, replayed=earlier is not None)
        if refusal is not None:
            await self._dead_letter(refusal, raw, topic, partition, offset)
            return "dead_letter"
        # Before the workflow hears of it: what the money-moving activities may act on.
        await asyncio.to_thread(self._repository.record_verified, envelope)
        try:
            outcome = await self._route(envelope)
        except InboundProblem as problem:
            await self._dead_letter(problem, raw, topic, partition, offset)
            return "dead_letter"
        await self._after_route(envelope, outcome, digest)
        return outcome

    async def _after_route(self, envelope: Envelope, outcome: str, digest: str) -> None:
        """Record the document once, open a clerk exception where it cannot be acted on,
        and answer with the receipt."""
        await asyncio.to_thread(
            self._repository.remember,
            envelope.message_id,
            envelope.case_id,
            envelope.type,
            envelope.from_region,
            outcome,
            digest=digest,
        )
        if outcome == "late_after_close" and envelope.type not in HARMLESS_AFTER_CLOSE:
            await self._open_exception(envelope, "DOCUMENT_AFTER_CLOSE", "document_after_close")
        elif outcome.startswith(HELD):
            await self._open_exception(envelope, outcome.removeprefix(HELD), "document_held")
        crash_point("after-inbox-commit", envelope.type)  # test-only hook (faults.py)
        log.info("received %s %s: %s", envelope.type, envelope.message_id, outcome)
        await self._send_receipt(envelope, outcome)

    async def _open_exception(self, envelope: Envelope, code: str, event: str) -> None:
        """A document that may move money and cannot be acted on (it arrived for a closed
        case, or the route held it): the case gets a clerk exception on its row and
        timeline (and the audit trail), and an alert."""
        log.warning(
            "alert: %s %s for case %s held (%s): clerk exception opened",
            envelope.type,
            envelope.message_id,
            envelope.case_id,
            code,
        )
        record = await asyncio.to_thread(
            self._repository.note_attention,
            envelope.case_id,
            event_key=f"{event}:{envelope.message_id}",
            event=event,
            detail={"type": envelope.type, "message_id": envelope.message_id, "code": code},
            values={"exception_code": code, "exception_since": utcnow()},
        )
        if record is not None:
            await self._publisher.publish_audit(record)

    async def redrive(self, older_than: timedelta = timedelta(0)) -> dict[str, int]:
        """Hand the dead letters whose cause can clear to the route again (the schedule in
        each API and ``POST /v1/admin/dead-letters/redrive``): acted on now, or left with
        the cause it still has. Returns outcomes by count."""
        counts: dict[str, int] = {}
        now = datetime.now(UTC)
        redrivable = await asyncio.to_thread(
            self._repository.redrivable, REDRIVABLE, now - timedelta(days=30)
        )
        for row in redrivable:
            if row.id is None or row.raw_base64 is None:
                continue
            received = (
                row.received_at if row.received_at.tzinfo else row.received_at.replace(tzinfo=UTC)
            )
            if now - received < older_than:
                continue
            outcome = await self._redrive_one(base64.b64decode(row.raw_base64))
            await asyncio.to_thread(self._repository.redriven, row.id, outcome)
            counts[outcome] = counts.get(outcome, 0) + 1
        if counts:
            log.info("dead letters re-driven: %s", counts)
        return counts

    async def _redrive_one(self, raw: bytes) -> str:
        try:
            envelope = parse_and_verify(raw, self._registry, self._served, self._keys)
        except InboundProblem as problem:
            return reason_code(problem.reason)
        earlier = await asyncio.to_thread(self._repository.received, envelope.message_id)
        if earlier is not None:
            return "duplicate"
        refusal = await asyncio.to_thread(self._refusal, envelope, replayed=False)
        if refusal is not None:
            return reason_code(refusal.reason)
        await asyncio.to_thread(self._repository.record_verified, envelope)
        try:
            outcome = await self._route(envelope)
        except InboundProblem as problem:
            return reason_code(problem.reason)
        await self._after_route(envelope, outcome, content_digest(envelope))
        return outcome

    def _refusal(self, envelope: Envelope, *, replayed: bool) -> InboundProblem | None:
        """Replay safety: a validly signed document that must still not be acted on."""
        if replayed:
            return InboundProblem(
                f"{DeadLetterCode.REPLAYED}: this message_id was received before with other content",
                message_id=envelope.message_id,
                case_id=envelope.case_id,
            )
        late = stale_problem(envelope, datetime.now(UTC), self._replay_window)
        if late is not None:
            # Not refused: replays are caught by message id and content (above), and a
            # document is not lost to a receiver offline for long or to a skewed clock.
            log.warning("late or skewed document accepted: %s", late.reason)
        return misaddressed_problem(
            envelope, self._repository.side, self._repository.case_regions(envelope.case_id)
        )

    async def _send_receipt(self, envelope: Envelope, outcome: str) -> None:
        if envelope.type == "Receipt":
            # The other side has our document: stop resending it (services/common/resend.py).
            acknowledged = envelope.payload.get("acknowledges_message_id")
            if isinstance(acknowledged, str):
                await asyncio.to_thread(
                    self._repository.receipt_received,
                    acknowledged,
                    case_id=envelope.case_id,
                    from_region=envelope.from_region,
                )
            return
        if outcome in ACCEPTED_OUTCOMES or outcome.startswith(HELD):
            receipt = self._signer.sign(receipt_for(envelope, datetime.now(UTC)))
            await self._publisher.publish_document(receipt)

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
        code = reason_code(problem.reason)
        if code in SECURITY_REASONS:
            # The alert: a forged, replayed or misaddressed document (counted in
            # medtransfer_security_refusals_total from the dead_letter table).
            log.warning(
                "security refusal %s on %s[%s]@%s: not acted on", code, topic, partition, offset
            )
        raw_base64 = base64.b64encode(raw[:MAX_DOCUMENT_BYTES]).decode("ascii")
        await asyncio.to_thread(
            self._repository.dead_letter,
            reason=problem.reason,
            topic=topic,
            message_id=problem.message_id,
            case_id=problem.case_id,
            partition=partition,
            offset=offset,
            raw_base64=raw_base64 if reason_code(problem.reason) in REDRIVABLE else None,
        )
        record = DeadLetter(
            reason=problem.reason,
            message_id=problem.message_id,
            case_id=problem.case_id,
            topic=topic,
            partition=partition,
            offset=offset,
            # An oversized record keeps only its head, so the dead letter itself always
            # fits the topic's max.message.bytes.
            raw_base64=raw_base64,
            raw_truncated=len(raw) > MAX_DOCUMENT_BYTES,
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


async def signal(handle: WorkflowHandle[Any, Any], envelope: Envelope) -> str:
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
                f"{DeadLetterCode.UNKNOWN_CASE}: no workflow for this case",
                message_id=envelope.message_id,
                case_id=envelope.case_id,
            ) from None
        return "late_after_close"
    return "signalled"
