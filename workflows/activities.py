"""Activities both sides share (the timeline and audit trail, delivery, the case context)
and the failures every side's activities raise. Thin adapters from workflow steps to the
ports; every one is idempotent (keyed by event_key, message_id or remittance_id) because
Temporal runs activities at least once. Each side's own activities are in
workflows/incoming|outgoing/activities.py.

The ports are synchronous (SQL sessions, file reads, signing), so every activity here and
on both sides calls them through ``asyncio.to_thread``: the worker's event loop keeps
polling, heartbeating and running other activities while a query waits for a lock. The
activities stay ``async def`` rather than plain ``def`` on an activity executor because
the worker configures none and the shared ones await the async Kafka publisher between
two port calls; one way for all of them."""

from __future__ import annotations

import asyncio
import threading
from datetime import date, datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.envelope import Envelope
from workflows.clock import CHINA_TZ
from workflows.ports import CaseStore, Connectivity, ContextSource, DocumentPublisher, Signer
from workflows.types import CaseContext, CaseEvent, LoadContextInput

REGION_NOT_CONNECTED = "RegionNotConnected"


class CaseActivities:
    """Activities both sides share: the timeline/audit trail, delivery, case context."""

    def __init__(
        self,
        store: CaseStore,
        publisher: DocumentPublisher,
        signer: Signer,
        connectivity: Connectivity,
        context: ContextSource,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._signer = signer
        self._connectivity = connectivity
        self._context = context
        # The context source re-reads its policy and calendar files when they change and
        # records the versions it loaded: one load at a time, as when loads ran on the loop.
        self._loading = threading.Lock()

    @activity.defn(name="record_case_event")
    async def record_case_event(self, event: CaseEvent) -> None:
        record = await asyncio.to_thread(self._store.append_event, event)
        # Publish even when the row existed: the earlier attempt may have died between
        # its commit and its publish. The audit consumer de-duplicates by (case, sequence).
        if record is not None:
            await self._publisher.publish_audit(record)

    @activity.defn(name="record_case_events")
    async def record_case_events(self, events: list[CaseEvent]) -> None:
        """Consecutive events of one workflow task, in their order (CaseFlow.together)."""
        for event in events:
            await self.record_case_event(event)

    @activity.defn(name="region_connected")
    async def region_connected(self, region: str) -> bool:
        return await asyncio.to_thread(self._connectivity.is_connected, region, _today())

    @activity.defn(name="require_region_connected")
    async def require_region_connected(self, region: str) -> None:
        # R23: fails retryably until the region is live; Temporal's backoff is the wait.
        if not await asyncio.to_thread(self._connectivity.is_connected, region, _today()):
            raise ApplicationError(
                f"region {region} is not connected to the platform", type=REGION_NOT_CONNECTED
            )

    @activity.defn(name="deliver_document")
    async def deliver_document(self, envelope: Envelope) -> str:
        # R23: a region that is not connected cannot receive platform documents; fail
        # retryably so Temporal retries with backoff until the region goes live.
        connected = self._connectivity.is_connected
        if not await asyncio.to_thread(connected, envelope.to_region, _today()):
            raise ApplicationError(
                f"region {envelope.to_region} is not connected to the platform",
                type=REGION_NOT_CONNECTED,
            )
        # Signed with the time it is sent, not the time the workflow wrote it: a document
        # may wait for its region for weeks (R23), and receivers refuse one signed outside
        # their replay window. The time comes from Temporal, so it is workflow time in tests.
        sent = envelope.model_copy(
            update={"sent_at": activity.info().current_attempt_scheduled_time}
        )
        signed = await asyncio.to_thread(self._signer.sign, sent)
        await self._publisher.publish_document(signed)
        # Sent until received: the resend sweep sends it again until its receipt.
        await asyncio.to_thread(self._store.record_sent, signed)
        return envelope.message_id

    @activity.defn(name="load_case_context")
    async def load_case_context(self, request: LoadContextInput) -> CaseContext:
        return await asyncio.to_thread(self._load_context, request)

    def _load_context(self, request: LoadContextInput) -> CaseContext:
        with self._loading:
            return self._context.load(request)


DOMAIN_ERROR = "DomainError"
UNVERIFIED_DOCUMENT = "UnverifiedDocument"


def unverified_document(case_id: str, what: str) -> ApplicationError:
    """Money is moved only on a document whose signature the inbound path verified: a
    request or remittance that reached the workflow any other way (a signal sent to
    Temporal directly) moves nothing; not retried, so the case is escalated."""
    return ApplicationError(
        f"case {case_id}: no verified {what} matches; nothing is moved",
        type=UNVERIFIED_DOCUMENT,
        non_retryable=True,
    )


def domain_error(error: Exception) -> ApplicationError:
    """A records error no retry can fix (a vanished record, a lost claim, a changed
    balance): not retried, so the workflow escalates it (CaseFlow.step). The message
    names the case, never the person."""
    return ApplicationError(str(error)[:200], type=DOMAIN_ERROR, non_retryable=True)


def _today() -> date:
    return datetime.now(CHINA_TZ).date()
