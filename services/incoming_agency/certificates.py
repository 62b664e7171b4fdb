"""The incoming agency's counter for the offline channel (R10, R23): the person brings the
insurance certificate (参保凭证) the outgoing agency issued, and a clerk loads it into the
case, which then goes on exactly as after an information sheet (docs/offline-channel.md).

The certificate is verified like a platform document (the outgoing region's public key
from the registry, the same envelope signature), then matched against this agency's own
case file: the case, its regions, the person and the scheme, and loaded once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from contracts.documents import FreeText, InsuranceCertificate, TransferRequested
from contracts.envelope import Envelope
from domain.matching import CaseFile, SheetFacts, sheet_mismatch
from services.common.acceptance import InboundProblem, content_digest, parse_and_verify
from services.common.api import ErrorBody, Refused, owned_case
from services.common.auth import Principal, require_party
from services.common.bootstrap import Service
from services.common.tables import CaseRow
from services.incoming_agency.cases import CaseSignal, SignalCase
from workflows.incoming.types import CertificateLoad

log = logging.getLogger("medtransfer.incoming")

# Where a case takes a certificate: its offline switch is on its way to the outgoing
# agency (the certificate may come before its notice), or the certificate was issued.
AWAITING_CERTIFICATE = frozenset({"withdrawal_requested", "offline_certificate_issued"})
LOADED = "certificate_loaded"


class OfflineCertificateIn(BaseModel):
    certificate: dict[str, Any] = Field(
        repr=False,
        description="The signed insurance certificate as the outgoing agency printed it "
        "(its `document`: the envelope JSON). Personal data: never logged.",
    )
    reason: FreeText = ""


def state_problem(row: CaseRow) -> str | None:
    """Why the case takes no certificate now (409), or None."""
    facts = row.facts or {}
    if row.terminal:
        return "the case is closed"
    if facts.get("stop_kind") != "offline_channel":
        return "the case was not switched to the offline channel"
    if row.status not in AWAITING_CERTIFICATE:
        return (
            f"a case in status {row.status} does not wait for an insurance certificate "
            "(transferred out online, or loaded already)"
        )
    return None


def certificate_problem(row: CaseRow, envelope: Envelope) -> tuple[str, str] | None:
    """R9/R13 for the certificate, as for a sheet: this case's, between its regions, about
    its person and scheme. A code and a sentence naming fields, never values."""
    if envelope.type != "InsuranceCertificate":
        return (
            "NOT_A_CERTIFICATE",
            f"the document is a {envelope.type}, not an insurance certificate",
        )
    if envelope.case_id != row.case_id:
        return "CERTIFICATE_OF_ANOTHER_CASE", "the certificate was issued for another case"
    certificate = envelope.document_as(InsuranceCertificate)
    if (envelope.from_region, envelope.to_region, certificate.to_region) != (
        row.from_region,
        row.to_region,
        row.to_region,
    ):
        return (
            "CERTIFICATE_REGION_DOES_NOT_MATCH_CASE",
            "the certificate is not from this case's outgoing region to its incoming region",
        )
    request = TransferRequested.model_validate(row.application)
    sheet = certificate.info_sheet
    mismatch = sheet_mismatch(
        CaseFile(
            case_id=row.case_id,
            id_number=request.person.id_number,
            from_region=row.from_region,
            from_scheme=row.from_scheme,
        ),
        SheetFacts(
            id_number=sheet.person.id_number,
            from_region=sheet.from_region,
            issued_by_region=sheet.issued_by_region,
            scheme=sheet.scheme,
        ),
    )
    if mismatch is not None:
        return mismatch.value, "the certificate's person, region or scheme is not this case's"
    return None


@dataclass(frozen=True)
class Loaded:
    certificate_number: str


@dataclass(frozen=True)
class LoadOfflineCertificate:
    """R10/R23: the certificate the person brought, verified (the route below says what
    is checked) and loaded into the case: recorded, signalled, remembered as loaded."""

    service: Service
    signal: SignalCase  # the Temporal port: the case workflow's signal

    async def __call__(
        self, case_id: str, principal: Principal, body: OfflineCertificateIn
    ) -> Loaded | Refused:
        checked = await asyncio.to_thread(self._verified, case_id, principal, body)
        if isinstance(checked, Refused):
            return checked
        load = CertificateLoad(envelope=checked, clerk=principal.agency, reason=body.reason)
        await self.signal(case_id, CaseSignal("load_certificate", load))
        await asyncio.to_thread(
            self.service.repository.remember,
            checked.message_id,
            case_id,
            checked.type,
            checked.from_region,
            LOADED,
            digest=content_digest(checked),
        )
        log.info("insurance certificate of case %s loaded by %s", case_id, principal.agency)
        return Loaded(checked.document_as(InsuranceCertificate).certificate_number)

    def _verified(
        self, case_id: str, principal: Principal, body: OfflineCertificateIn
    ) -> Envelope | Refused:
        """The certificate, verified and recorded as such, or why it is not loaded."""
        service = self.service
        row = owned_case(service.repository, case_id, principal)
        require_party(principal, row.to_region, "incoming")
        state = state_problem(row)
        if state is not None:
            return Refused(409, "NOT_AWAITING_CERTIFICATE", state, rule="R10")
        raw = json.dumps(body.certificate, ensure_ascii=False).encode("utf-8")
        try:
            envelope = parse_and_verify(raw, service.registry, service.served, service.keys)
        except InboundProblem as refused:  # codes and fields, never the values
            reason = f"the certificate does not verify: {refused.reason}"
            return Refused(422, "CERTIFICATE_NOT_VERIFIED", reason, rule="R10")
        mismatch = certificate_problem(row, envelope)
        if mismatch is not None:
            return Refused(422, mismatch[0], mismatch[1], rule="R13")
        if service.repository.received(envelope.message_id) is not None:
            again = "this insurance certificate was loaded before"
            return Refused(409, "CERTIFICATE_ALREADY_LOADED", again, rule="R10")
        # What the workflow's check finds: a certificate that came any other way is not
        # gone on with.
        service.repository.record_verified(envelope)
        return envelope


def create_certificate_router(load: LoadOfflineCertificate, a_clerk: Any) -> APIRouter:
    router = APIRouter()

    @router.post(
        "/v1/cases/{case_id}/offline-certificate",
        status_code=202,
        responses={409: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    )
    async def load_offline_certificate(
        case_id: str, body: OfflineCertificateIn, principal: Principal = a_clerk
    ) -> JSONResponse:
        """R10/R23: the person brought the insurance certificate; load it into the case.
        Verified first (the outgoing region's signature from the key registry, this case,
        its regions, person and scheme, not loaded before); the case then goes on as after
        an information sheet: transfer-in (R13), continuity, the balance (R18/R19)."""
        outcome = await load(case_id, principal, body)
        if isinstance(outcome, Refused):
            return outcome.response()
        return JSONResponse(
            status_code=202,
            content={
                "case_id": case_id,
                "certificate_number": outcome.certificate_number,
                "certificate": "loaded",
            },
        )

    return router
