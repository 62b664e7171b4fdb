"""Synthetic people for the benchmark: unique, valid resident ID numbers by index (random
ones collide by the birthday paradox at 100,000 people), their enrolment records, and
their applications."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Engine

from contracts.documents import PersonIdentity, TransferRequested
from domain.identity import resident_id_check_char
from harness.agencies import Person
from services.outgoing_agency.tables import EnrolmentRow

FROM_REGION = "620800"  # Pingliang, Gansu: served by the outgoing agency under test
TO_REGION = "610100"  # Xi'an, Shaanxi: cross-province, so the balance is remitted (R18)
SILENT_REGION = "510100"  # no outgoing agency answers for it in the bench stack
BALANCE_FEN = 523_400
ENROLLED_SINCE = date(2016, 3, 1)
SUSPENDED_ON = date(2026, 10, 31)
INCOMING_ENROLLED_SINCE = date(2026, 11, 1)
_FIRST_BIRTHDAY = date(1960, 1, 1)
_NAMES = "赵钱孙李周吴郑王冯陈"


def person(index: int, region: str = FROM_REGION) -> Person:
    """Person ``index``: 1,000 serial numbers per birthday, so ids never repeat."""
    birth = _FIRST_BIRTHDAY + timedelta(days=index // 1000)
    first17 = f"{region}{birth:%Y%m%d}{index % 1000:03d}"
    return Person(first17 + resident_id_check_char(first17), _NAMES[index % 10] + "测试", region)


def enrolment(p: Person) -> dict[str, Any]:
    """An enrolment record the R5-R9 checks accept (suspended here, no arrears)."""
    return {
        "id_number": p.id_number,
        "name": p.name,
        "region": p.region,
        "scheme": "employee",
        "status": "suspended",
        "enrolled_since": ENROLLED_SINCE,
        "suspended_on": SUSPENDED_ON,
        "arrears_fen": 0,
        "account_status": "normal",
        "balance_fen": BALANCE_FEN,
        "contribution_months": 120,
    }


def load_enrolments(engine: Engine, people: list[Person]) -> None:
    """Bulk insert into the outgoing agency's table (its own model; not timed)."""
    if people:
        with engine.begin() as connection:
            connection.execute(insert(EnrolmentRow), [enrolment(p) for p in people])


def application(p: Person, to_region: str = TO_REGION) -> dict[str, Any]:
    """The JSON body an integrator posts to the incoming agency."""
    return {
        "person": {"id_number": p.id_number, "name": p.name},
        "from_region": p.region,
        "to_region": to_region,
        "from_scheme": "employee",
        "to_scheme": "employee",
        "reason": "new job",
        "channel": "online",
        "incoming_enrolled_since": INCOMING_ENROLLED_SINCE.isoformat(),
    }


def transfer_request(p: Person, applied_on: date, to_region: str = TO_REGION) -> TransferRequested:
    """The contact letter the incoming API builds from that application."""
    return TransferRequested(
        person=PersonIdentity(id_number=p.id_number, name=p.name),
        from_region=p.region,
        to_region=to_region,
        from_scheme="employee",
        to_scheme="employee",
        reason="new job",
        applied_on=applied_on,
        channel="online",
        incoming_agency=f"medical insurance agency of region {to_region}",
    )
