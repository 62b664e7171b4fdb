"""R24 at the incoming agency: the transfer-in record, and so the TransferInCompleted it
reports, deems only the sheet's employee-scheme months as contribution years."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlmodel import Session

from contracts.documents import EnrolmentPeriod, InformationSheet, PersonIdentity
from services.cli.migrate import upgrade as migrate_database
from services.common.db import make_engine
from services.incoming_agency.records import IncomingRecordsSql
from services.incoming_agency.tables import TransferInRow
from workflows.incoming.types import TransferInInput

pytestmark = pytest.mark.unit

PERSON_ID = "11010519491231002X"
CASE_ID = "TR20261116B123456789"


def test_r24_transfer_in_record_deems_employee_months_only(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'incoming-agency.db'}")
    migrate_database(engine, "incoming")
    sheet = InformationSheet(
        person=PersonIdentity(id_number=PERSON_ID, name="测试参保人"),
        from_region="620800",
        scheme="employee",
        enrolment_periods=[
            EnrolmentPeriod(
                region="350100",
                scheme="resident",
                start=date(2012, 1, 1),
                end=date(2016, 12, 31),
                contribution_months=60,
            ),
            EnrolmentPeriod(
                region="620800",
                scheme="employee",
                start=date(2017, 1, 1),
                end=date(2026, 10, 31),
                contribution_months=118,
                last_paid_month=date(2026, 10, 1),
            ),
        ],
        total_contribution_months=178,
        balance_fen=0,
        transferred_out_on=date(2026, 11, 20),
        issued_by_region="620800",
    )
    records = IncomingRecordsSql(engine)
    request = TransferInInput(case_id=CASE_ID, sheet=sheet, completed_on=date(2026, 11, 23))
    result = records.complete_transfer_in(request)
    assert result.deemed_contribution_months == 118  # not 178: resident months are not deemed
    assert records.complete_transfer_in(request) == result  # once per case
    with Session(engine) as session:
        row = session.get(TransferInRow, CASE_ID)
        assert row is not None
        assert row.deemed_contribution_months == 118
        assert row.sheet["total_contribution_months"] == 178  # the sheet keeps every month
