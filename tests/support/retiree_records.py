"""A resettled retiree on the outgoing agency's records (SQLite), for the R21 tests of the
records and their attack guards: the person, the enrolment row, the payout request."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from contracts.documents import BankAccount, PersonIdentity, TransferRequested
from domain.regions import load_region_registry
from services.cli import migrate
from services.common.db import create_tables, make_engine
from services.common.repository import RegionConnectivity
from services.outgoing_agency.records import OutgoingRecordsSql
from services.outgoing_agency.tables import EnrolmentRow

PERSON = PersonIdentity(id_number="11010519491231002X", name="测试参保人")
BALANCE = 2_000_000
BANK = BankAccount(
    bank_name="中国工商银行", account_number="6222020200112233445", account_holder=PERSON.name
)


def outgoing_engine(tmp_path: Path) -> Iterator[Engine]:
    """The outgoing agency's tables in a fresh SQLite file (for a fixture to yield from)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'outgoing.db'}")
    create_tables(engine, migrate.database_models("outgoing"))
    yield engine
    engine.dispose()


def enrol(engine: Engine, **changes: Any) -> None:
    """A retired employee of Beijing, suspended, with BALANCE on the account."""
    values: dict[str, Any] = {
        "id_number": PERSON.id_number,
        "name": PERSON.name,
        "region": "110000",
        "scheme": "employee",
        "status": "suspended",
        "enrolled_since": date(1990, 3, 1),
        "suspended_on": date(2021, 5, 31),
        "balance_fen": BALANCE,
        "contribution_months": 372,
        "retired": True,
    } | changes
    with Session(engine) as session:
        session.add(EnrolmentRow(**values))
        session.commit()


def retiree_request(**changes: Any) -> TransferRequested:
    """A resettled retiree's application from Beijing to Shenzhen (another province)."""
    return TransferRequested(
        person=PERSON,
        from_region="110000",
        to_region="440300",
        from_scheme="employee",
        to_scheme="employee",
        reason="resettled with family",
        applied_on=date(2026, 12, 1),
        channel="online",
        incoming_agency="深圳市医疗保障局",
        resettled_retiree=True,
        bank_account=BANK,
    ).model_copy(update=changes)


def records(engine: Engine) -> OutgoingRecordsSql:
    return OutgoingRecordsSql(engine, RegionConnectivity(engine, load_region_registry()))
