"""The outgoing agency's own records: enrolments of the regions it serves, bank payouts."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel

from services.common.tables import COMMON_TABLES


class EnrolmentRow(SQLModel, table=True):
    __tablename__ = "enrolment"

    id: int | None = Field(default=None, primary_key=True)
    id_number: str = Field(index=True)
    name: str
    region: str = Field(index=True)
    scheme: str
    status: str  # active | suspended | transferred_out
    enrolled_since: date
    suspended_on: date | None = None
    # R25-R27: the last month contributed for (its first day), often weeks before the
    # suspension is recorded; the interruption before a transfer counts from it.
    last_paid_month: date | None = None
    arrears_fen: int = Field(default=0, sa_type=BigInteger)
    account_status: str = "normal"  # normal | frozen
    balance_fen: int = Field(default=0, sa_type=BigInteger)
    contribution_months: int = 0
    also_active_in: str | None = None
    # R21: whether the person is retired is this record's fact, not the applicant's.
    retired: bool = False
    transferred_case_id: str | None = None
    # R5: the one open case that may transfer this enrolment out, set by a conditional
    # update when its request passes the checks and cleared when it ends without a
    # transfer-out; a second concurrent case is refused (ENROLMENT_IN_TRANSFER).
    claimed_by_case: str | None = Field(default=None, index=True)


class PayoutRow(SQLModel, table=True):
    """A payment of a balance into the person's own bank account (R19, R21, R22)."""

    __tablename__ = "bank_payout"

    remittance_id: str = Field(primary_key=True)
    case_id: str = Field(index=True)
    amount_fen: int = Field(sa_type=BigInteger)
    account_last4: str
    rule: str
    paid_on: date
    created_at: datetime


OUTGOING_TABLES = [*COMMON_TABLES, EnrolmentRow, PayoutRow]
