"""Platform message contracts: one envelope, one model per document, topic names.

Signing (``contracts.signing``) is imported separately so this package stays light.
"""

from contracts.documents import (
    DOCUMENT_TYPES,
    AuditRecord,
    BalanceCredited,
    BalanceMismatch,
    BalanceNotTransferred,
    BalancePaidToBank,
    BalanceRemitted,
    BalanceReturned,
    BankAccount,
    Document,
    EnrolmentPeriod,
    Escalation,
    InformationSheet,
    PersonIdentity,
    Receipt,
    RefusalReason,
    Reminder,
    TransferInCompleted,
    TransferOutCompleted,
    TransferRefused,
    TransferRequested,
    WithdrawalAnswered,
    WithdrawalRequested,
)
from contracts.envelope import SCHEMA_VERSION, Envelope
from contracts.topics import Topics

__all__ = [
    "DOCUMENT_TYPES",
    "SCHEMA_VERSION",
    "AuditRecord",
    "BalanceCredited",
    "BalanceMismatch",
    "BalanceNotTransferred",
    "BalancePaidToBank",
    "BalanceRemitted",
    "BalanceReturned",
    "BankAccount",
    "Document",
    "EnrolmentPeriod",
    "Envelope",
    "Escalation",
    "InformationSheet",
    "PersonIdentity",
    "Receipt",
    "RefusalReason",
    "Reminder",
    "Topics",
    "TransferInCompleted",
    "TransferOutCompleted",
    "TransferRefused",
    "TransferRequested",
    "WithdrawalAnswered",
    "WithdrawalRequested",
]
