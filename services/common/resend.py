"""The resend sweep: a document is sent until its receipt arrives.

Kafka keeps a published document, but the receiver may still never act on it: it was
dead-lettered for a cause that cleared since (a case not known there yet), or the
receiver was offline past the topic's retention. Every document a workflow delivers is
kept in ``sent_document`` until the receiver's signed Receipt names it. The sweep, run by
each side's worker, publishes an unacknowledged document again (the same message id and
signature: a receiver that has it answers with its receipt again, one that does not acts
on it; signed again with the current key when its key was rotated out or revoked, so a
revocation loses no document in flight) with doubling waits, and after ``escalate_after`` attempts opens a clerk exception
``NO_RECEIPT`` on the case (timeline, audit trail, alert) while it keeps resending.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from contracts.envelope import Envelope
from contracts.keyring import KeyCustodyError, RegionSigner
from services.common.broker import KafkaDocumentPublisher
from services.common.repository import CaseRepository, utcnow

log = logging.getLogger("medtransfer.resend")

MAX_WAIT = timedelta(hours=1)


class ResendSweep:
    def __init__(
        self,
        repository: CaseRepository,
        publisher: KafkaDocumentPublisher,
        signer: RegionSigner,
        *,
        first_wait: timedelta = timedelta(minutes=1),
        escalate_after: int = 10,
    ) -> None:
        self._repository = repository
        self._publisher = publisher
        self._signer = signer
        self._first_wait = first_wait
        self._escalate_after = escalate_after

    def wait_after(self, attempts: int) -> timedelta:
        """How long after its last send a document without receipt is sent again."""
        wait: timedelta = self._first_wait * 2 ** max(0, attempts - 1)
        return min(wait, MAX_WAIT)

    async def sweep_once(self) -> int:
        now = utcnow()
        resent = 0
        due = await asyncio.to_thread(self._repository.unacknowledged, now - self._first_wait)
        for row in due:
            last = (
                row.last_sent_at
                if row.last_sent_at.tzinfo
                else row.last_sent_at.replace(tzinfo=now.tzinfo)
            )
            if now - last < self.wait_after(row.attempts):
                continue
            await self._publisher.publish_document(
                self._current(Envelope.model_validate(row.envelope))
            )
            escalate = row.attempts + 1 >= self._escalate_after and row.escalated_at is None
            await asyncio.to_thread(self._repository.resent, row.message_id, escalated=escalate)
            resent += 1
            if escalate:
                await self._escalate(row.case_id, row.message_id, row.type, row.attempts + 1)
        return resent

    def _current(self, envelope: Envelope) -> Envelope:
        """The envelope as sent, or signed anew when its key is no longer the one to use
        (same message id and content: the receiver takes it as the same document)."""
        now = utcnow()
        try:
            if envelope.key_id == self._signer.current_key_id(envelope.from_region, now):
                return envelope
        except KeyCustodyError:
            return envelope  # no usable key now: the old signature is the best there is
        return self._signer.sign(envelope.model_copy(update={"sent_at": now}))

    async def _escalate(self, case_id: str, message_id: str, doc_type: str, attempts: int) -> None:
        log.warning(
            "alert: %s %s of case %s has no receipt after %d sends",
            doc_type,
            message_id,
            case_id,
            attempts,
        )
        record = await asyncio.to_thread(
            self._repository.note_attention,
            case_id,
            event_key=f"no-receipt:{message_id}",
            event="document_not_received",
            detail={"type": doc_type, "message_id": message_id, "attempts": attempts},
            values={"exception_code": "NO_RECEIPT", "exception_since": utcnow()},
        )
        if record is not None:
            await self._publisher.publish_audit(record)

    async def run_forever(self, interval: timedelta) -> None:
        while True:
            try:
                resent = await self.sweep_once()
                if resent:
                    log.info("resend sweep: %d documents sent again (no receipt yet)", resent)
            except Exception:  # the sweep must outlive a database or Kafka blip
                log.exception("resend sweep failed; next in %s", interval)
            await asyncio.sleep(interval.total_seconds())
