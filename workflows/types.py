"""Typed payloads of workflows, activities and signals (one pydantic model each), so fields
can be added without breaking callers. Platform documents themselves are in contracts/."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.documents import FreeText, InformationSheet, RefusalReason, TransferRequested
from contracts.envelope import Envelope

Side = Literal["incoming", "outgoing"]
AuditValue = str | int | bool | None


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True)


class Awaiting(_Payload):
    """What a case waits for, from whom, by when (R17)."""

    what: str
    from_party: str
    by: date | None = None


class CaseEvent(_Payload):
    """One state change of a case, written to the case's timeline and the audit topic.

    ``event_key`` is unique per case (workflow id + step), so a retried activity writes
    the event once.
    """

    case_id: str
    side: Side
    event_key: str
    event: str
    status: str
    occurred_at: datetime
    rule: str | None = None
    detail: dict[str, AuditValue] = Field(default_factory=dict)
    awaiting: Awaiting | None = None
    deadlines: dict[str, date] = Field(default_factory=dict)
    escalated: bool | None = None
    warnings: list[str] = Field(default_factory=list)
    terminal: bool = False
    # Structured facts merged into the case (policy version, continuity assessment).
    facts: dict[str, Any] = Field(default_factory=dict)


class CaseContext(_Payload):
    """Calendar and limits a case uses, loaded once by an activity so replay is stable."""

    calendar: dict[str, Any]
    limits: dict[str, int]
    intra_province_balance: dict[str, str]
    employee_to_resident_balance: str
    policy_version: str
    # The ResolvedPolicy (domain.policy) of this side's region, as data.
    policy: dict[str, Any] = Field(default_factory=dict)
    delivery_retry_initial_seconds: float = 5.0
    delivery_retry_max_seconds: float = 600.0
    # This side's and the counterpart's region names (code -> Chinese name), so the
    # sentences a case writes name agencies as a person reads them.
    region_names: dict[str, str] = Field(default_factory=dict)


class LoadContextInput(_Payload):
    region: str
    start: date
    side: Side = "incoming"
    counterpart: str | None = None  # the other agency's region: its limits apply too


class IncomingCaseInput(_Payload):
    case_id: str
    request: TransferRequested
    accepted_on: date
    incoming_enrolled_since: date | None = None  # for the continuity assessment (R24-R28)


class OutgoingCaseInput(_Payload):
    case_id: str
    region: str


class TransferOutFacts(_Payload):
    """What the outgoing agency's records say, for the R5-R9 checks and R18-R22 routing."""

    refusals: list[RefusalReason] = Field(default_factory=list)
    balance_fen: int = 0
    incoming_connected: bool = True
    enrolment_periods_months: int = 0
    retired: bool = False  # R21: from this agency's record


class CheckRequestInput(_Payload):
    case_id: str
    request: TransferRequested


class TransferOutInput(_Payload):
    case_id: str
    request: TransferRequested
    balance_action: str
    balance_rule: str
    remittance_id: str
    transferred_out_on: date
    # The balance the check saw and the balance decision used: transfer-out refuses to
    # debit a different one (the records changed under the case).
    expected_balance_fen: int = 0


class ReturnInput(_Payload):
    case_id: str
    remittance_id: str
    amount_fen: int


class BankPayoutInput(_Payload):
    case_id: str
    remittance_id: str
    amount_fen: int
    rule: str


class BankPayoutResult(_Payload):
    account_last4: str
    paid_on: date


class TransferInInput(_Payload):
    case_id: str
    sheet: InformationSheet
    completed_on: date


class TransferInResult(_Payload):
    deemed_contribution_months: int


class CreditInput(_Payload):
    case_id: str
    remittance_id: str
    amount_fen: int
    credited_on: date
    residual: bool = False


class WithdrawSignal(_Payload):
    reason: FreeText
    clerk: str | None = None  # set when an agency clerk cancels the case


class StopRequest(_Payload):
    """What the incoming side asked the outgoing agency to stop the case for (a
    withdrawal, a clerk's cancellation or offline switch), kept by the workflow until
    it is answered."""

    kind: Literal["withdrawal", "cancellation", "offline_channel"]
    reason: FreeText = ""
    clerk: str | None = None


class ClerkAction(_Payload):
    """Who asked for a clerk action (authenticated by the API) and why."""

    clerk: str
    reason: FreeText = ""


class CorrectionSignal(_Payload):
    """A corrected application after a soft refusal, with who submitted it (the API
    caller: an integrator's system or a clerk on the operations page) and why."""

    request: TransferRequested
    submitted_by: str
    reason: FreeText = ""


class MismatchResolution(_Payload):
    """A clerk's decision on an amount mismatch (R15): credit what arrived, or return it."""

    decision: Literal["credit_received", "return_to_sender"]
    clerk: str = ""  # set by the API from the caller's key
    note: FreeText = ""


class StopAnswerInput(_Payload):
    """A WithdrawalRequested for a case this agency already closed."""

    envelope: Envelope
    region: str


class ResidualInput(_Payload):
    case_id: str
    contribution_id: str
    amount_fen: int
    region: str
    to_region: str


class IncomingResidualInput(_Payload):
    envelope: Envelope


class CertificateLoad(_Payload):
    """R10/R23: the person brought the insurance certificate to the incoming agency's
    counter; its clerk loads it (the API verified it first: the outgoing region's
    signature, this case's person, regions and scheme, not loaded before). ``envelope``
    is the signed InsuranceCertificate."""

    envelope: Envelope
    clerk: str
    reason: FreeText = ""


class LoadedCertificateInput(_Payload):
    """Which certificate a case is about to go on with (the verified-document check)."""

    case_id: str
    certificate_number: str
    # The whole certificate the case would go on with: verified field by field, so a
    # changed one with a verified number is not loaded.
    certificate: dict[str, Any] = Field(default_factory=dict)


class CaseView(_Payload):
    """The workflow's own answer to "where does this case stand" (a Temporal query)."""

    case_id: str
    side: Side
    status: str
    awaiting: Awaiting | None
    deadlines: dict[str, date]
    escalated: bool
