"""The insurance certificates (参保凭证) this outgoing agency issued (R10, R23): the
CertificateStore port, in the ``sent_document`` table.

A certificate is a signed envelope like the platform documents, but the person carries
it: it is kept with its receipt already noted, so the resend sweep never sends it through
the platform, and the print route hands out the same signed document every time.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from contracts.documents import AuditRecord, FreeText, InsuranceCertificate
from contracts.envelope import Envelope
from contracts.keyring import KeyCustodyError
from services.common.api import ErrorBody, Refused, owned_case
from services.common.app_factory import AgencyApp
from services.common.auth import Principal, require_party
from services.common.bootstrap import Service
from services.common.db import session_scope
from services.common.repository import utcnow
from services.common.tables import SentDocumentRow

log = logging.getLogger("medtransfer.outgoing")

CERTIFICATE = "InsuranceCertificate"
SHEET = "TransferOutCompleted"


class CertificateStoreSql:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def issued(self, case_id: str) -> Envelope | None:
        return self._document(case_id, CERTIFICATE)

    def keep_issued(self, envelope: Envelope) -> Envelope:
        if envelope.type != CERTIFICATE:
            raise ValueError(f"{envelope.type} is not an insurance certificate")
        now = utcnow()
        try:
            with session_scope(self.engine) as session:
                if session.get(SentDocumentRow, envelope.message_id) is None:
                    session.add(
                        SentDocumentRow(
                            message_id=envelope.message_id,
                            case_id=envelope.case_id,
                            type=envelope.type,
                            to_region=envelope.to_region,
                            envelope=envelope.model_dump(mode="json"),
                            first_sent_at=now,
                            last_sent_at=now,
                            # With the person, not the platform: nothing to resend.
                            receipt_at=now,
                        )
                    )
        except IntegrityError:
            pass  # a concurrent attempt kept it first
        kept = self.issued(envelope.case_id)
        assert kept is not None
        return kept

    def sheet_sent(self, case_id: str) -> Envelope | None:
        """The information sheet the case's online transfer-out sent, as signed."""
        return self._document(case_id, SHEET)

    def _document(self, case_id: str, doc_type: str) -> Envelope | None:
        with session_scope(self.engine) as session:
            row = session.exec(
                select(SentDocumentRow)
                .where(SentDocumentRow.case_id == case_id, SentDocumentRow.type == doc_type)
                .order_by(col(SentDocumentRow.first_sent_at))
            ).first()
            return None if row is None else Envelope.model_validate(row.envelope)


class PrintIn(BaseModel):
    reason: FreeText = ""


class CertificateOut(BaseModel):
    """What the outgoing agency hands the person at its counter (R10, R23)."""

    case_id: str
    kind: Literal["insurance_certificate", "information_sheet"] = Field(
        description="insurance_certificate: the case went by the offline channel; "
        "information_sheet: it was transferred out online, and this is the sheet it sent "
        "(there is no certificate and no second transfer-out)"
    )
    certificate_number: str | None = None
    document: dict[str, Any] = Field(
        repr=False,
        description="The signed envelope, as the incoming agency loads it "
        "(POST /v1/cases/{case_id}/offline-certificate there). Personal data.",
    )


def create_certificate_router(service: Service, agency: AgencyApp) -> APIRouter:
    """The outgoing agency's certificate route (docs/offline-channel.md)."""
    router = APIRouter()
    certificates = CertificateStoreSql(service.engine)

    @router.post(
        "/v1/cases/{case_id}/insurance-certificate/print",
        response_model=CertificateOut,
        responses={409: {"model": ErrorBody}},
    )
    async def print_certificate(
        case_id: str, body: PrintIn | None = None, principal: Principal = agency.a_clerk
    ) -> CertificateOut | JSONResponse:
        """R10/R23: the insurance certificate (参保凭证) of a case that went by the offline
        channel, signed by its region, printed for the person at the counter as often as
        asked (each print is on the audit trail). A case transferred out online answers
        with the information sheet it sent instead."""
        reason = body.reason if body is not None else ""
        printed = await asyncio.to_thread(
            _printed, service, certificates, case_id, principal, reason
        )
        if isinstance(printed, Refused):
            return printed.response()
        out, record = printed
        if record is not None and agency.publisher is not None:
            await agency.publisher.publish_audit(record)
        log.info("%s of case %s printed by %s", out.kind, case_id, principal.agency)
        return out

    return router


def _printed(
    service: Service,
    certificates: CertificateStoreSql,
    case_id: str,
    principal: Principal,
    reason: str,
) -> tuple[CertificateOut, AuditRecord | None] | Refused:
    """The document to print (the certificate, signed with the current key, or the sheet
    sent) and the print noted on the case (off the event loop: it reads and writes)."""
    row = owned_case(service.repository, case_id, principal)
    require_party(principal, row.from_region, "outgoing")
    document = certificates.issued(case_id)
    kind: Literal["insurance_certificate", "information_sheet"] = "insurance_certificate"
    if document is None:
        document, kind = certificates.sheet_sent(case_id), "information_sheet"
    if document is None:
        return Refused(
            409,
            "NO_CERTIFICATE",
            "the case has not been transferred out: there is no certificate to print",
            rule="R10",
        )
    number = None
    if kind == "insurance_certificate":
        number = document.document_as(InsuranceCertificate).certificate_number
        try:
            document = _signed_with_current_key(service, document)
        except KeyCustodyError:
            return Refused(
                503, "NO_SIGNING_KEY", "no valid key of the region is held here to sign it"
            )
    record = _note_print(service, case_id, kind, principal.agency, reason)
    out = CertificateOut(
        case_id=case_id,
        kind=kind,
        certificate_number=number,
        document=document.model_dump(mode="json"),
    )
    return out, record


def _signed_with_current_key(service: Service, certificate: Envelope) -> Envelope:
    """The certificate as issued, or signed again (same number and contents) when its
    region's key has been rotated since: a receiver refuses a key ended long ago, and the
    person may come weeks later."""
    now = datetime.now(UTC)
    if certificate.key_id == service.signer.current_key_id(certificate.from_region, now):
        return certificate
    return service.signer.sign(certificate.model_copy(update={"sent_at": now}))


def _note_print(
    service: Service, case_id: str, kind: str, clerk: str, reason: str
) -> AuditRecord | None:
    """Who printed the person's document, on the case's timeline and the audit trail."""
    detail = {"kind": kind, "clerk": clerk} | ({"reason": reason} if reason else {})
    for _ in range(3):  # the case's workflow may take the same timeline sequence
        try:
            return service.repository.note_attention(
                case_id,
                event_key=f"certificate_printed:{case_id}:{uuid.uuid4().hex}",
                event="insurance_certificate_printed",
                detail=detail,
                values={},
                rule="R10",
            )
        except IntegrityError:
            continue
    return None
