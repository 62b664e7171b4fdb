"""The incoming agency's own records: enrolments continued by transfer-in (R13, R24), and
the hashed access secrets of its cases' progress pages (R17)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from services.common.tables import COMMON_TABLES


class TransferInRow(SQLModel, table=True):
    """The information sheet loaded into the local system, once per case."""

    __tablename__ = "transfer_in"

    case_id: str = Field(primary_key=True)
    person_key: str = Field(index=True)
    region: str
    scheme: str
    deemed_contribution_months: int  # R24: counted as contribution years here
    sheet: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    completed_on: date
    created_at: datetime


class CaseAccessRow(SQLModel, table=True):
    """The access secret given to the person once, at acceptance, to query the case's
    progress without an API key (R17): only its hash is kept, bound to the case."""

    __tablename__ = "case_access"

    case_id: str = Field(primary_key=True)
    secret_hash: str
    issued_at: datetime


INCOMING_TABLES = [*COMMON_TABLES, TransferInRow, CaseAccessRow]
