"""Ports both sides' activities depend on; each side's records ports sit beside its
activities (workflows/incoming|outgoing/activities.py). Services wire real adapters (SQL,
Kafka, keys); workflow tests register fakes under the same activity names."""

from __future__ import annotations

from datetime import date
from typing import Any, Protocol

from contracts.documents import AuditRecord
from contracts.envelope import Envelope
from workflows.types import CaseContext, CaseEvent, LoadContextInput


class CaseStore(Protocol):
    def append_event(self, event: CaseEvent) -> AuditRecord | None:
        """Write the event once (keyed by event_key); return the audit record to publish,
        or None when it was already written."""

    def record_sent(self, envelope: Envelope) -> None:
        """Keep a published document until its receipt (the resend sweep's work list)."""


class VerifiedDocuments(Protocol):
    def has_verified(self, case_id: str, doc_type: str, fields: dict[str, Any]) -> bool:
        """Whether the inbound path verified the signature of a document of ``doc_type``
        of the case whose payload has these JSON ``fields`` (what a money-moving activity
        may act on)."""


class DocumentPublisher(Protocol):
    async def publish_document(self, envelope: Envelope) -> None: ...

    async def publish_audit(self, record: AuditRecord) -> None: ...


class Signer(Protocol):
    def sign(self, envelope: Envelope) -> Envelope: ...


class Connectivity(Protocol):
    def is_connected(self, region: str, on: date) -> bool: ...


class ContextSource(Protocol):
    def load(self, request: LoadContextInput) -> CaseContext: ...
