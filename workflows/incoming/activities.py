"""The incoming agency's activities, and the port they depend on (its records), wired
with real adapters in services/incoming_agency/worker.py. Every port call runs in a thread
(``asyncio.to_thread``; why: workflows/activities.py)."""

from __future__ import annotations

import asyncio
from typing import Protocol

from temporalio import activity

from workflows.activities import domain_error, unverified_document
from workflows.incoming.types import (
    CreditInput,
    LoadedCertificateInput,
    TransferInInput,
    TransferInResult,
)
from workflows.ports import VerifiedDocuments


class IncomingRecords(Protocol):
    def complete_transfer_in(self, request: TransferInInput) -> TransferInResult: ...

    def credit(self, request: CreditInput) -> None: ...


class IncomingActivities:
    def __init__(self, records: IncomingRecords, verified: VerifiedDocuments) -> None:
        self._records = records
        self._verified = verified

    @activity.defn(name="certificate_verified")
    async def certificate_verified(self, request: LoadedCertificateInput) -> bool:
        """R10/R23: whether the API verified this insurance certificate of the case (a
        certificate signalled to Temporal any other way is not gone on with)."""
        return await asyncio.to_thread(
            self._verified.has_verified,
            request.case_id,
            "InsuranceCertificate",
            {**request.certificate, "certificate_number": request.certificate_number},
        )

    @activity.defn(name="complete_transfer_in")
    async def complete_transfer_in(self, request: TransferInInput) -> TransferInResult:
        return await asyncio.to_thread(self._records.complete_transfer_in, request)

    @activity.defn(name="credit_balance")
    async def credit_balance(self, request: CreditInput) -> None:
        remittance = {"remittance_id": request.remittance_id, "amount_fen": request.amount_fen}
        verified = self._verified.has_verified
        if not await asyncio.to_thread(verified, request.case_id, "BalanceRemitted", remittance):
            raise unverified_document(request.case_id, "remittance")
        try:
            await asyncio.to_thread(self._records.credit, request)
        except LookupError as error:
            raise domain_error(error) from None
