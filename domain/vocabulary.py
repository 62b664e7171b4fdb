"""The case vocabulary: every status a case can be in on each side and every event its
timeline records, as closed sets. The values are the strings stored in case rows, timeline
events and audit records, so a member compares and serialises as its plain string.
tests/unit/test_vocabulary.py checks the workflows and the README against these sets."""

from __future__ import annotations

from enum import StrEnum


class IncomingStatus(StrEnum):
    """Where an incoming-agency case stands (README: Case states)."""

    STARTING = "starting"  # the workflow has not recorded its first event yet
    SUBMITTED = "submitted"
    WAITING_REGION_CONNECTION = "waiting_region_connection"  # R23
    AWAITING_TRANSFER_OUT = "awaiting_transfer_out"  # R12
    REFUSED_CORRECTABLE = "refused_correctable"  # R5-R9 soft refusal
    REFUSED = "refused"
    WITHDRAWAL_REQUESTED = "withdrawal_requested"
    WITHDRAWN = "withdrawn"
    CANCELLED = "cancelled"
    OFFLINE_CERTIFICATE_ISSUED = "offline_certificate_issued"  # R10/R23
    OFFLINE_CHANNEL = "offline_channel"
    EXCEPTION = "exception"  # a sheet that does not match the case, held for a clerk
    TRANSFER_IN = "transfer_in"  # R13
    AWAITING_BALANCE = "awaiting_balance"  # R15
    BALANCE_MISMATCH = "balance_mismatch"  # R15
    BALANCE_RETURNED = "balance_returned"
    COMPLETED = "completed"


class OutgoingStatus(StrEnum):
    """Where an outgoing-agency case stands (README: Case states)."""

    STARTING = "starting"
    RECEIVED = "received"  # the request is stored, the workflow not yet started
    WAITING_REGION_CONNECTION = "waiting_region_connection"  # R23
    CHECKING = "checking"  # R5-R9, R12
    REFUSED_CORRECTABLE = "refused_correctable"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"
    CANCELLED = "cancelled"
    OFFLINE_CHANNEL = "offline_channel"
    OFFLINE_CERTIFICATE_ISSUED = "offline_certificate_issued"  # R10/R23
    BALANCE = "balance"  # R16, R18-R22
    AWAITING_CONFIRMATION = "awaiting_confirmation"  # R13, R15
    BALANCE_MISMATCH = "balance_mismatch"
    BALANCE_RETURNED = "balance_returned"
    COMPLETED = "completed"


# Statuses a case passes through without waiting on anyone; a case that stays in one is
# stuck (services/common/stuck.py).
INTERNAL_STATUSES: tuple[str, ...] = (
    IncomingStatus.STARTING.value,
    IncomingStatus.SUBMITTED.value,
    OutgoingStatus.RECEIVED.value,
    OutgoingStatus.CHECKING.value,
    IncomingStatus.TRANSFER_IN.value,
    OutgoingStatus.BALANCE.value,
)


class CaseEventName(StrEnum):
    """The name of each timeline event either side records."""

    # both sides
    DECISION = "decision"
    ESCALATED = "escalated"
    REMINDER_SENT = "reminder_sent"
    WAITING_FOR_REGION_CONNECTION = "waiting_for_region_connection"
    REGION_CONNECTED = "region_connected"
    CLERK_RETRY_DELIVERY = "clerk_retry_delivery"
    CLERK_RETRY_STEP = "clerk_retry_step"
    TRANSFER_REFUSED = "transfer_refused"
    TRANSFER_REFUSED_CORRECTABLE = "transfer_refused_correctable"
    CORRECTION_WINDOW_EXPIRED = "correction_window_expired"
    INSURANCE_CERTIFICATE_ISSUED = "insurance_certificate_issued"
    CASE_CLOSED_BALANCE_RETURNED = "case_closed_balance_returned"
    CASE_COMPLETED = "case_completed"
    APPLICATION_WITHDRAWN = "application_withdrawn"
    SWITCHED_TO_OFFLINE_CHANNEL = "switched_to_offline_channel"
    REMINDER_RECEIVED = "reminder_received"  # the other agency's Reminder document
    ESCALATION_RECEIVED = "escalation_received"  # the other agency's Escalation document
    DOCUMENT_NOT_RECEIVED = "document_not_received"  # no receipt after the resends
    # incoming agency
    APPLICATION_ACCEPTED = "application_accepted"
    TRANSFER_REQUEST_SENT = "transfer_request_sent"
    CORRECTION_SUBMITTED = "correction_submitted"
    WITHDRAWAL_REQUESTED = "withdrawal_requested"
    WITHDRAWAL_REFUSED = "withdrawal_refused"
    CASE_CANCELLED_BY_CLERK = "case_cancelled_by_clerk"
    OFFLINE_CHANNEL_REQUESTED = "offline_channel_requested"
    INFORMATION_SHEET_RECEIVED = "information_sheet_received"
    INFORMATION_SHEET_HELD = "information_sheet_held"
    INFORMATION_SHEET_ACCEPTED_BY_CLERK = "information_sheet_accepted_by_clerk"
    INSURANCE_CERTIFICATE_LOADED = "insurance_certificate_loaded"
    CONTINUITY_ASSESSED = "continuity_assessed"
    CONTINUITY_NOT_ASSESSED = "continuity_not_assessed"
    TRANSFER_IN_COMPLETED = "transfer_in_completed"
    BALANCE_NOTICE_HELD = "balance_notice_held"
    BALANCE_CREDITED = "balance_credited"
    BALANCE_MISMATCH = "balance_mismatch"
    MISMATCH_RESOLVED = "mismatch_resolved"
    BALANCE_NOT_TRANSFERRED = "balance_not_transferred"
    BALANCE_PAID_TO_BANK = "balance_paid_to_bank"
    RESIDUAL_BALANCE_CREDITED = "residual_balance_credited"
    # outgoing agency
    TRANSFER_REQUEST_RECEIVED = "transfer_request_received"
    CORRECTED_REQUEST_RECEIVED = "corrected_request_received"
    TRANSFERRED_OUT = "transferred_out"
    ACCOUNT_PAID_OUT = "account_paid_out"
    BALANCE_SETTLED = "balance_settled"
    TRANSFER_IN_CONFIRMED = "transfer_in_confirmed"
    BALANCE_CREDIT_CONFIRMED = "balance_credit_confirmed"
    BALANCE_MISMATCH_REPORTED = "balance_mismatch_reported"
    WITHDRAWAL_REFUSED_TOO_LATE = "withdrawal_refused_too_late"
    CASE_CANCELLED_BY_INCOMING_AGENCY = "case_cancelled_by_incoming_agency"
    RESIDUAL_REMITTED = "residual_remitted"
    RESIDUAL_CREDIT_CONFIRMED = "residual_credit_confirmed"
    ENROLMENT_UPSERTED = "enrolment_upserted"
    INSURANCE_CERTIFICATE_PRINTED = "insurance_certificate_printed"


class ClerkActionName(StrEnum):
    """The incoming agency's clerk actions on a case, as the API paths and the operations
    page name them (services/incoming_agency/clerk_actions.py: the statuses each is
    allowed in, its signal and its label)."""

    RETRY_DELIVERY = "retry-delivery"  # R23: re-check a region now
    RETRY_STEP = "retry-step"  # a failed step or a held sheet, re-run
    OFFLINE_CHANNEL = "offline-channel"  # R10/R23
    CANCEL = "cancel"
    CREDIT_RECEIVED = "credit-received"  # R15: credit what arrived
    RETURN_TO_SENDER = "return-to-sender"  # R15/R16
    ACCEPT_CORRECTION = "accept-correction"  # R5-R8


class RefusalCode(StrEnum):
    """Why a transfer is refused: the incoming agency's acceptance checks (R1-R4, R20-R22)
    and the outgoing agency's checks against its records (R5-R9, R21). domain/eligibility.py
    holds each code's rule, softness and fixed sentences; domain/guidance.py what to do."""

    SAME_REGION = "SAME_REGION"
    INCOMING_NOT_ENROLLED = "INCOMING_NOT_ENROLLED"
    RESIDENT_TOO_EARLY = "RESIDENT_TOO_EARLY"
    CROSS_SCHEME_NOT_READY = "CROSS_SCHEME_NOT_READY"
    DOUBLE_ENROLMENT = "DOUBLE_ENROLMENT"
    ENROLMENT_ACTIVE = "ENROLMENT_ACTIVE"
    CONTRIBUTION_ARREARS = "CONTRIBUTION_ARREARS"
    ACCOUNT_FROZEN = "ACCOUNT_FROZEN"
    PERSON_UNKNOWN = "PERSON_UNKNOWN"
    IDENTITY_MISMATCH = "IDENTITY_MISMATCH"
    ALREADY_TRANSFERRED = "ALREADY_TRANSFERRED"
    ENROLMENT_IN_TRANSFER = "ENROLMENT_IN_TRANSFER"
    BANK_HOLDER_MISMATCH = "BANK_HOLDER_MISMATCH"
    RETIREE_NOT_ON_RECORD = "RETIREE_NOT_ON_RECORD"
    OPEN_CASE_ELSEWHERE = "OPEN_CASE_ELSEWHERE"
    RETIREE_SAME_PROVINCE = "RETIREE_SAME_PROVINCE"
    BANK_ACCOUNT_REQUIRED = "BANK_ACCOUNT_REQUIRED"
    BANK_ACCOUNT_FOR_RESIDENT = "BANK_ACCOUNT_FOR_RESIDENT_SCHEME"
    INVALID_ID_NUMBER = "INVALID_ID_NUMBER"
    UNKNOWN_REGION = "UNKNOWN_REGION"
    INVALID_BANK_ACCOUNT = "INVALID_BANK_ACCOUNT"
    RETIREE_OUTSIDE_TRANSFER = "RETIREE_OUTSIDE_TRANSFER"
    PROVINCE_WIDE_PLATFORM = "PROVINCE_WIDE_PLATFORM"


class LedgerLeg(StrEnum):
    """One kind of money movement in an agency's ledger (services/common/tables.py
    LedgerEntry.leg); (remittance_id, leg) is unique, so each is written once per key."""

    DEBIT_OUTGOING = "debit_outgoing"  # R16: the old account cleared, the balance moved
    CREDIT_INCOMING = "credit_incoming"  # R15: credited once the amount matches
    BANK_PAYOUT = "bank_payout"  # R19, R21, R22: paid to the person's own account
    RETURNED_TO_OUTGOING = "returned_to_outgoing"  # R16: a returned balance restored
    LATE_CONTRIBUTION = "late_contribution"  # a residual remitted after the case


class EscalationReason(StrEnum):
    """Why a case was escalated: a limit passed with the other side's step not done."""

    TRANSFER_OUT_OVERDUE = "TRANSFER_OUT_OVERDUE"  # R12
    TRANSFER_IN_OVERDUE = "TRANSFER_IN_OVERDUE"  # R13
    BALANCE_OVERDUE = "BALANCE_OVERDUE"  # R15: the remittance did not arrive


class StopAnswerCode(StrEnum):
    """The outgoing agency's answer to a withdrawal or cancellation (WithdrawalAnswered)."""

    ACCEPTED_BEFORE_TRANSFER_OUT = "ACCEPTED_BEFORE_TRANSFER_OUT"
    TOO_LATE_TRANSFERRED_OUT = "TOO_LATE_TRANSFERRED_OUT"  # R16: the balance is on its way
