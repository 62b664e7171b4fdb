"""Typed payloads of the outgoing agency's workflows and activities (one pydantic model
each), so fields can be added without breaking callers."""

from __future__ import annotations

from datetime import date

from pydantic import Field

from contracts.documents import RefusalReason, TransferRequested
from contracts.envelope import Envelope
from workflows.types import Payload


class OutgoingCaseInput(Payload):
    case_id: str
    region: str


class CheckRequestInput(Payload):
    case_id: str
    request: TransferRequested


class TransferOutFacts(Payload):
    """What the outgoing agency's records say, for the R5-R9 checks and R18-R22 routing."""

    refusals: list[RefusalReason] = Field(default_factory=list)
    balance_fen: int = 0
    incoming_connected: bool = True
    enrolment_periods_months: int = 0
    retired: bool = False  # R21: from this agency's record


class TransferOutInput(Payload):
    case_id: str
    request: TransferRequested
    balance_action: str
    balance_rule: str
    remittance_id: str
    transferred_out_on: date
    # The balance the check saw and the balance decision used: transfer-out refuses to
    # debit a different one (the records changed under the case).
    expected_balance_fen: int = 0


class BankPayoutInput(Payload):
    case_id: str
    remittance_id: str
    amount_fen: int
    rule: str


class BankPayoutResult(Payload):
    account_last4: str
    paid_on: date


class ReturnInput(Payload):
    case_id: str
    remittance_id: str
    amount_fen: int


class ResidualInput(Payload):
    case_id: str
    contribution_id: str
    amount_fen: int
    region: str
    to_region: str


class StopAnswerInput(Payload):
    """A WithdrawalRequested for a case this agency already closed."""

    envelope: Envelope
    region: str
