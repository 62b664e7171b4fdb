"""Activities: thin adapters from workflow steps to the ports. Every one is idempotent
(keyed by event_key, message_id or remittance_id) because Temporal runs activities at
least once."""

from __future__ import annotations

from datetime import date, datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.documents import InformationSheet
from contracts.envelope import Envelope
from workflows.clock import CHINA_TZ
from workflows.ports import (
    CaseStore,
    CertificateStore,
    Connectivity,
    ContextSource,
    DocumentPublisher,
    IncomingRecords,
    OutgoingRecords,
    Signer,
    VerifiedDocuments,
)
from workflows.types import (
    BankPayoutInput,
    BankPayoutResult,
    CaseContext,
    CaseEvent,
    CheckRequestInput,
    CreditInput,
    LoadContextInput,
    LoadedCertificateInput,
    ResidualInput,
    ReturnInput,
    TransferInInput,
    TransferInResult,
    TransferOutFacts,
    TransferOutInput,
)

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

    @activity.defn(name="record_case_event")
    async def record_case_event(self, event: CaseEvent) -> None:
        record = self._store.append_event(event)
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
        return self._connectivity.is_connected(region, _today())

    @activity.defn(name="require_region_connected")
    async def require_region_connected(self, region: str) -> None:
        # R23: fails retryably until the region is live; Temporal's backoff is the wait.
        if not self._connectivity.is_connected(region, _today()):
            raise ApplicationError(
                f"region {region} is not connected to the platform", type=REGION_NOT_CONNECTED
            )

    @activity.defn(name="deliver_document")
    async def deliver_document(self, envelope: Envelope) -> str:
        # R23: a region that is not connected cannot receive platform documents; fail
        # retryably so Temporal retries with backoff until the region goes live.
        if not self._connectivity.is_connected(envelope.to_region, _today()):
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
        signed = self._signer.sign(sent)
        await self._publisher.publish_document(signed)
        # Sent until received: the resend sweep sends it again until its receipt.
        self._store.record_sent(signed)
        return envelope.message_id

    @activity.defn(name="load_case_context")
    async def load_case_context(self, request: LoadContextInput) -> CaseContext:
        return self._context.load(request)


DOMAIN_ERROR = "DomainError"


UNVERIFIED_DOCUMENT = "UnverifiedDocument"


def _unverified(case_id: str, what: str) -> ApplicationError:
    """Money is moved only on a document whose signature the inbound path verified: a
    request or remittance that reached the workflow any other way (a signal sent to
    Temporal directly) moves nothing; not retried, so the case is escalated."""
    return ApplicationError(
        f"case {case_id}: no verified {what} matches; nothing is moved",
        type=UNVERIFIED_DOCUMENT,
        non_retryable=True,
    )


def _domain_error(error: Exception) -> ApplicationError:
    """A records error no retry can fix (a vanished record, a lost claim, a changed
    balance): not retried, so the workflow escalates it (CaseFlow.step). The message
    names the case, never the person."""
    return ApplicationError(str(error)[:200], type=DOMAIN_ERROR, non_retryable=True)


class OutgoingActivities:
    def __init__(self, records: OutgoingRecords, verified: VerifiedDocuments) -> None:
        self._records = records
        self._verified = verified

    @activity.defn(name="check_transfer_out")
    async def check_transfer_out(self, request: CheckRequestInput) -> TransferOutFacts:
        return self._records.check_request(request)

    @activity.defn(name="transfer_out")
    async def transfer_out(self, request: TransferOutInput) -> InformationSheet:
        if not self._verified.has_verified(
            request.case_id, "TransferRequested", request.request.model_dump(mode="json")
        ):
            raise _unverified(request.case_id, "transfer request")
        try:
            return self._records.transfer_out(request)
        except (LookupError, ValueError) as error:
            raise _domain_error(error) from None

    @activity.defn(name="was_transferred_out")
    async def was_transferred_out(self, case_id: str) -> bool:
        return self._records.was_transferred_out(case_id)

    @activity.defn(name="release_enrolment_claim")
    async def release_enrolment_claim(self, case_id: str) -> None:
        """R5: the case ended without a transfer-out; the enrolment is free again."""
        self._records.release_claim(case_id)

    @activity.defn(name="pay_balance_to_bank")
    async def pay_balance_to_bank(self, request: BankPayoutInput) -> BankPayoutResult:
        return self._records.pay_to_bank(request)

    @activity.defn(name="restore_returned_balance")
    async def restore_returned_balance(self, request: ReturnInput) -> int:
        """The amount restored: this agency's own debit for the remittance, whatever the
        other agency claims to return (0 when there is no such debit, or when no verified
        return names the remittance)."""
        if not self._verified.has_verified(
            request.case_id, "BalanceReturned", {"remittance_id": request.remittance_id}
        ):
            return 0
        return self._records.restore_returned(request)

    @activity.defn(name="post_residual_remittance")
    async def post_residual_remittance(self, request: ResidualInput) -> str:
        return self._records.post_residual(request)


class CertificateActivities:
    """R10/R23: the outgoing agency's insurance certificate, signed with its region's key
    like the platform documents and kept for printing."""

    def __init__(self, signer: Signer, certificates: CertificateStore) -> None:
        self._signer = signer
        self._certificates = certificates

    @activity.defn(name="issue_insurance_certificate")
    async def issue_insurance_certificate(self, envelope: Envelope) -> str:
        """Sign and keep the case's certificate once; a retry, or a second call for the
        case, finds the one kept. Returns its message id (the certificate is not a
        workflow's to hand out: the print route reads it)."""
        kept = self._certificates.issued(envelope.case_id)
        if kept is None:
            # Signed with the time it is issued, from Temporal (workflow time in tests).
            issued = envelope.model_copy(
                update={"sent_at": activity.info().current_attempt_scheduled_time}
            )
            kept = self._certificates.keep_issued(self._signer.sign(issued))
        return kept.message_id


class IncomingActivities:
    def __init__(self, records: IncomingRecords, verified: VerifiedDocuments) -> None:
        self._records = records
        self._verified = verified

    @activity.defn(name="certificate_verified")
    async def certificate_verified(self, request: LoadedCertificateInput) -> bool:
        """R10/R23: whether the API verified this insurance certificate of the case (a
        certificate signalled to Temporal any other way is not gone on with)."""
        return self._verified.has_verified(
            request.case_id,
            "InsuranceCertificate",
            {**request.certificate, "certificate_number": request.certificate_number},
        )

    @activity.defn(name="complete_transfer_in")
    async def complete_transfer_in(self, request: TransferInInput) -> TransferInResult:
        return self._records.complete_transfer_in(request)

    @activity.defn(name="credit_balance")
    async def credit_balance(self, request: CreditInput) -> None:
        remittance = {"remittance_id": request.remittance_id, "amount_fen": request.amount_fen}
        if not self._verified.has_verified(request.case_id, "BalanceRemitted", remittance):
            raise _unverified(request.case_id, "remittance")
        try:
            self._records.credit(request)
        except LookupError as error:
            raise _domain_error(error) from None


def _today() -> date:
    return datetime.now(CHINA_TZ).date()
