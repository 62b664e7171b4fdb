"""Tables both services keep, each in its own database: the case projection, the
append-only timeline, the inbox of received messages, the money ledger, region
connectivity. Side-specific tables live in each service's package."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, UniqueConstraint
from sqlmodel import Field, SQLModel


class CaseRow(SQLModel, table=True):
    __tablename__ = "case_record"

    case_id: str = Field(primary_key=True)
    status: str = Field(index=True)
    status_since: datetime
    from_region: str = Field(index=True)
    to_region: str = Field(index=True)
    from_scheme: str
    to_scheme: str
    person_key: str = Field(index=True)  # fingerprint of the ID number, never the number
    id_masked: str
    # Set while the case is open: one open case per person and pair of regions.
    open_key: str | None = Field(default=None, unique=True)
    awaiting_what: str | None = None
    awaiting_from: str | None = None
    awaiting_by: date | None = None
    deadlines: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    escalated: bool = False
    warnings: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    terminal: bool = False
    # The application as submitted (incoming side); it holds personal data, never logged.
    application: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    # Facts the workflow established: policy version, continuity assessment (R24-R28).
    facts: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    # Set by the stuck-case sweep while the case's workflow keeps failing a task or an
    # activity (services/common/stuck.py); the reason names a step and an error type,
    # never personal data. Cleared when the case moves again.
    stuck_since: datetime | None = Field(default=None, index=True)
    stuck_reason: str | None = None
    # A clerk exception: a document that cannot be acted on automatically (one arriving
    # for a closed case, a counterparty document that does not match this agency's
    # records). Open until a clerk resolves it; never a silent park.
    exception_code: str | None = Field(default=None, index=True)
    exception_since: datetime | None = None
    created_at: datetime
    updated_at: datetime


class CaseEventRow(SQLModel, table=True):
    """Append-only: rows are inserted, never updated or deleted."""

    __tablename__ = "case_event"
    __table_args__ = (UniqueConstraint("case_id", "sequence"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(index=True)
    sequence: int
    event_key: str = Field(unique=True)
    event: str
    status: str
    occurred_at: datetime
    rule: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class InboxRow(SQLModel, table=True):
    """Every platform message received, once (message_id is the idempotency key)."""

    __tablename__ = "inbox"

    message_id: str = Field(primary_key=True)
    case_id: str = Field(index=True)
    type: str
    from_region: str
    received_at: datetime
    outcome: str
    # SHA-256 of the message without its signing time and signature: a redelivery with
    # the same digest is a duplicate, one with another digest is a replay (refused).
    digest: str | None = None


class VerifiedDocumentRow(SQLModel, table=True):
    """A platform document whose signature this side verified, written before it is handed
    to a workflow: the money-moving activities act only on what is here (a signal sent
    to Temporal by anyone else finds nothing and moves nothing)."""

    __tablename__ = "verified_document"

    message_id: str = Field(primary_key=True)
    case_id: str = Field(index=True)
    type: str
    from_region: str
    key_id: str
    payload_json: str
    verified_at: datetime


class LedgerEntry(SQLModel, table=True):
    """One money movement. (remittance_id, leg) is unique: a retried activity or a
    redelivered message can never move the same money twice."""

    __tablename__ = "ledger"
    __table_args__ = (UniqueConstraint("remittance_id", "leg"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(index=True)
    remittance_id: str
    leg: str  # debit_outgoing | credit_incoming | bank_payout | late_contribution
    amount_fen: int = Field(sa_type=BigInteger)  # 64-bit: MAX_FEN is 2**53 - 1
    created_at: datetime


class RegionStatusRow(SQLModel, table=True):
    """Connectivity to the national platform as this side knows it (R23)."""

    __tablename__ = "region_status"

    region: str = Field(primary_key=True)
    connected: bool
    changed_at: datetime


class DeadLetterRow(SQLModel, table=True):
    """A message that could not be acted on, with the reason (never silently dropped)."""

    __tablename__ = "dead_letter"

    id: int | None = Field(default=None, primary_key=True)
    message_id: str | None = None
    case_id: str | None = None
    reason: str
    topic: str
    partition: int | None = None
    offset: int | None = None
    received_at: datetime
    # The record as received (base64, at most the document size limit), so a dead letter
    # whose cause can clear (a case not known here yet) is re-driven (InboundHandler).
    raw_base64: str | None = None
    redriven_at: datetime | None = None
    redrive_outcome: str | None = None


class SentDocumentRow(SQLModel, table=True):
    """A platform document this side sent, kept until the receiver's signed Receipt
    arrives: the resend sweep (services/common/resend.py) sends it again, the same message
    id and signature, until then, and escalates a case whose document is never received."""

    __tablename__ = "sent_document"

    message_id: str = Field(primary_key=True)
    case_id: str = Field(index=True)
    type: str
    to_region: str
    # The signed envelope as sent; it may hold personal data (a contact letter), like the
    # case row's application, and is never logged.
    envelope: dict[str, Any] = Field(sa_column=Column(JSON))
    first_sent_at: datetime
    last_sent_at: datetime = Field(index=True)
    attempts: int = 1
    receipt_at: datetime | None = Field(default=None, index=True)
    escalated_at: datetime | None = None


COMMON_TABLES = [
    CaseRow,
    CaseEventRow,
    InboxRow,
    VerifiedDocumentRow,
    LedgerEntry,
    RegionStatusRow,
    DeadLetterRow,
    SentDocumentRow,
]
