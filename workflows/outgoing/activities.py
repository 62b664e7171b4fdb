"""The outgoing agency's activities, and the ports they depend on (its records, the
certificates it issued), wired with real adapters in services/outgoing_agency/worker.py.
Every port call runs in a thread (``asyncio.to_thread``; why: workflows/activities.py)."""

from __future__ import annotations

import asyncio
from typing import Protocol

from temporalio import activity

from contracts.documents import InformationSheet
from contracts.envelope import Envelope
from workflows.activities import domain_error, unverified_document
from workflows.outgoing.types import (
    BankPayoutInput,
    BankPayoutResult,
    CheckRequestInput,
    ResidualInput,
    ReturnInput,
    TransferOutFacts,
    TransferOutInput,
)
from workflows.ports import Signer, VerifiedDocuments


class OutgoingRecords(Protocol):
    def check_request(self, request: CheckRequestInput) -> TransferOutFacts: ...

    def transfer_out(self, request: TransferOutInput) -> InformationSheet: ...

    def pay_to_bank(self, request: BankPayoutInput) -> BankPayoutResult: ...

    def post_residual(self, request: ResidualInput) -> str: ...

    def restore_returned(self, request: ReturnInput) -> int: ...

    def release_claim(self, case_id: str) -> None: ...

    def was_transferred_out(self, case_id: str) -> bool: ...


class CertificateStore(Protocol):
    """R10/R23: the insurance certificates this agency issued, kept signed for printing
    (the person carries them; the platform never sends them)."""

    def issued(self, case_id: str) -> Envelope | None:
        """The case's certificate as it was signed, or None."""

    def keep_issued(self, envelope: Envelope) -> Envelope:
        """Keep a signed certificate once per case; return the one kept (the first)."""


class OutgoingActivities:
    def __init__(self, records: OutgoingRecords, verified: VerifiedDocuments) -> None:
        self._records = records
        self._verified = verified

    @activity.defn(name="check_transfer_out")
    async def check_transfer_out(self, request: CheckRequestInput) -> TransferOutFacts:
        return await asyncio.to_thread(self._records.check_request, request)

    @activity.defn(name="transfer_out")
    async def transfer_out(self, request: TransferOutInput) -> InformationSheet:
        if not await asyncio.to_thread(
            self._verified.has_verified,
            request.case_id,
            "TransferRequested",
            request.request.model_dump(mode="json"),
        ):
            raise unverified_document(request.case_id, "transfer request")
        try:
            return await asyncio.to_thread(self._records.transfer_out, request)
        except (LookupError, ValueError) as error:
            raise domain_error(error) from None

    @activity.defn(name="was_transferred_out")
    async def was_transferred_out(self, case_id: str) -> bool:
        return await asyncio.to_thread(self._records.was_transferred_out, case_id)

    @activity.defn(name="release_enrolment_claim")
    async def release_enrolment_claim(self, case_id: str) -> None:
        """R5: the case ended without a transfer-out; the enrolment is free again."""
        await asyncio.to_thread(self._records.release_claim, case_id)

    @activity.defn(name="pay_balance_to_bank")
    async def pay_balance_to_bank(self, request: BankPayoutInput) -> BankPayoutResult:
        return await asyncio.to_thread(self._records.pay_to_bank, request)

    @activity.defn(name="restore_returned_balance")
    async def restore_returned_balance(self, request: ReturnInput) -> int:
        """The amount restored: this agency's own debit for the remittance, whatever the
        other agency claims to return (0 when there is no such debit, or when no verified
        return names the remittance)."""
        if not await asyncio.to_thread(
            self._verified.has_verified,
            request.case_id,
            "BalanceReturned",
            {"remittance_id": request.remittance_id},
        ):
            return 0
        return await asyncio.to_thread(self._records.restore_returned, request)

    @activity.defn(name="post_residual_remittance")
    async def post_residual_remittance(self, request: ResidualInput) -> str:
        return await asyncio.to_thread(self._records.post_residual, request)


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
        kept = await asyncio.to_thread(self._certificates.issued, envelope.case_id)
        if kept is None:
            # Signed with the time it is issued, from Temporal (workflow time in tests).
            issued = envelope.model_copy(
                update={"sent_at": activity.info().current_attempt_scheduled_time}
            )
            kept = await asyncio.to_thread(self._sign_and_keep, issued)
        return kept.message_id

    def _sign_and_keep(self, envelope: Envelope) -> Envelope:
        return self._certificates.keep_issued(self._signer.sign(envelope))
