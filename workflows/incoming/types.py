"""Typed payloads of the incoming agency's workflows, activities and signals (one pydantic
model each), so fields can be added without breaking callers."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import Field

from contracts.documents import FreeText, InformationSheet, TransferRequested
from contracts.envelope import Envelope
from workflows.types import Payload


class IncomingCaseInput(Payload):
    case_id: str
    request: TransferRequested
    accepted_on: date
    incoming_enrolled_since: date | None = None  # for the continuity assessment (R24-R28)


class TransferInInput(Payload):
    case_id: str
    sheet: InformationSheet
    completed_on: date


class TransferInResult(Payload):
    deemed_contribution_months: int


class CreditInput(Payload):
    case_id: str
    remittance_id: str
    amount_fen: int
    credited_on: date
    residual: bool = False


class WithdrawSignal(Payload):
    reason: FreeText
    clerk: str | None = None  # set when an agency clerk cancels the case


class StopRequest(Payload):
    """What the incoming side asked the outgoing agency to stop the case for (a
    withdrawal, a clerk's cancellation or offline switch), kept by the workflow until
    it is answered."""

    kind: Literal["withdrawal", "cancellation", "offline_channel"]
    reason: FreeText = ""
    clerk: str | None = None


class CorrectionSignal(Payload):
    """A corrected application after a soft refusal, with who submitted it (the API
    caller: an integrator's system or a clerk on the operations page) and why."""

    request: TransferRequested
    submitted_by: str
    reason: FreeText = ""


class MismatchResolution(Payload):
    """A clerk's decision on an amount mismatch (R15): credit what arrived, or return it."""

    decision: Literal["credit_received", "return_to_sender"]
    clerk: str = ""  # set by the API from the caller's key
    note: FreeText = ""


class IncomingResidualInput(Payload):
    envelope: Envelope


class CertificateLoad(Payload):
    """R10/R23: the person brought the insurance certificate to the incoming agency's
    counter; its clerk loads it (the API verified it first: the outgoing region's
    signature, this case's person, regions and scheme, not loaded before). ``envelope``
    is the signed InsuranceCertificate."""

    envelope: Envelope
    clerk: str
    reason: FreeText = ""


class LoadedCertificateInput(Payload):
    """Which certificate a case is about to go on with (the verified-document check)."""

    case_id: str
    certificate_number: str
    # The whole certificate the case would go on with: verified field by field, so a
    # changed one with a verified number is not loaded.
    certificate: dict[str, Any] = Field(default_factory=dict)
