"""Ports the activities depend on. Services wire real adapters (SQL, Kafka, keys);
workflow tests register fakes under the same activity names."""

from __future__ import annotations

from datetime import date
from typing import Any, Protocol

from contracts.documents import AuditRecord, InformationSheet
from contracts.envelope import Envelope
from workflows.types import (
    BankPayoutInput,
    BankPayoutResult,
    CaseContext,
    CaseEvent,
    CheckRequestInput,
    CreditInput,
    LoadContextInput,
    ResidualInput,
    ReturnInput,
    TransferInInput,
    TransferInResult,
    TransferOutFacts,
    TransferOutInput,
)


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


class OutgoingRecords(Protocol):
    def check_request(self, request: CheckRequestInput) -> TransferOutFacts: ...

    def transfer_out(self, request: TransferOutInput) -> InformationSheet: ...

    def pay_to_bank(self, request: BankPayoutInput) -> BankPayoutResult: ...

    def post_residual(self, request: ResidualInput) -> str: ...

    def restore_returned(self, request: ReturnInput) -> int: ...

    def release_claim(self, case_id: str) -> None: ...

    def was_transferred_out(self, case_id: str) -> bool: ...


class IncomingRecords(Protocol):
    def complete_transfer_in(self, request: TransferInInput) -> TransferInResult: ...

    def credit(self, request: CreditInput) -> None: ...


class CertificateStore(Protocol):
    """R10/R23: the insurance certificates this agency issued, kept signed for printing
    (the person carries them; the platform never sends them)."""

    def issued(self, case_id: str) -> Envelope | None:
        """The case's certificate as it was signed, or None."""

    def keep_issued(self, envelope: Envelope) -> Envelope:
        """Keep a signed certificate once per case; return the one kept (the first)."""
