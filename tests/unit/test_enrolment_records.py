"""Enrolment records at the outgoing agency (R5, R16, R21): edited by an operator only,
bounded by the model, on the audit trail (who, and the money and status fields, never the
person's data), and not edited while a case holds the record."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from contracts.documents import EnrolmentPeriod, InformationSheet, PersonIdentity, TransferRequested
from domain.continuity import EnrolmentSpan
from services.common.tables import CaseEventRow
from services.outgoing_agency.records import OutgoingRecordsSql
from services.outgoing_agency.tables import EnrolmentRow
from tests.support.inprocess import inprocess_app, kafka_memory
from workflows.outgoing.types import TransferOutInput

pytestmark = pytest.mark.unit

PERSON_ID = "11010519491231002X"
NAME = "测试参保人"
CASE_ID = "TR20261116A123456789"


def body(**changes: Any) -> dict[str, Any]:
    return {
        "id_number": PERSON_ID,
        "name": NAME,
        "region": "620800",
        "scheme": "employee",
        "status": "suspended",
        "enrolled_since": "2016-03-01",
        "suspended_on": "2026-10-31",
        "balance_fen": 100_000,
        "contribution_months": 120,
    } | changes


async def test_r16_enrolment_edits_need_an_operator_go_on_the_audit_trail_and_wait_for_a_claim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agency = inprocess_app("outgoing", tmp_path, monkeypatch)
    async with kafka_memory(agency):
        transport = httpx.ASGITransport(app=agency.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:

            async def put(key: str, **changes: Any) -> httpx.Response:
                return await client.put(
                    "/v1/enrolments", json=body(**changes), headers={"X-API-Key": key}
                )

            assert (await put("demo-clerk")).status_code == 403
            assert (await put("demo-operator")).status_code == 200
            assert (await put("demo-operator", balance_fen=120_000)).status_code == 200
            too_much = await put("demo-operator", balance_fen=2**63)
            assert too_much.status_code == 422
            with Session(agency.service.engine) as session:
                row = session.exec(select(EnrolmentRow)).one()
                row.claimed_by_case = "TR20261202ACLAIMED01"  # an open case holds it
                session.add(row)
                session.commit()
                subject = f"ENROLMENT-620800-{row.id}"
            held = await put("demo-operator", balance_fen=1)
            assert held.status_code == 409
            assert held.json()["reasons"][0]["code"] == "ENROLMENT_IN_TRANSFER"
    with Session(agency.service.engine) as session:
        events = session.exec(select(CaseEventRow).where(CaseEventRow.case_id == subject)).all()
    assert [(e.sequence, e.detail["balance_fen"]) for e in events] == [(1, 100_000), (2, 120_000)]
    assert all(e.detail["operator"] == "operator" for e in events)
    text = str([e.detail for e in events])
    assert PERSON_ID not in text
    assert NAME not in text


async def test_r25_r27_the_record_carries_the_last_paid_month_onto_the_information_sheet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The suspension was recorded on 31 October; the last payment was for August.
    agency = inprocess_app("outgoing", tmp_path, monkeypatch)
    async with kafka_memory(agency):
        transport = httpx.ASGITransport(app=agency.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            saved = await client.put(
                "/v1/enrolments",
                json=body(last_paid_month="2026-08-01"),
                headers={"X-API-Key": "demo-operator"},
            )
            assert saved.status_code == 200
    engine = agency.service.engine
    with Session(engine) as session:
        row = session.exec(select(EnrolmentRow)).one()
        assert row.last_paid_month == date(2026, 8, 1)
        row.claimed_by_case = CASE_ID
        session.add(row)
        session.commit()
        events = session.exec(select(CaseEventRow)).all()
    assert events[-1].detail["last_paid_month"] == "2026-08-01"

    records = OutgoingRecordsSql(engine, agency.service.connectivity)
    sheet = records.transfer_out(
        TransferOutInput(
            case_id=CASE_ID,
            request=TransferRequested(
                person=PersonIdentity(id_number=PERSON_ID, name=NAME),
                from_region="620800",
                to_region="610100",
                from_scheme="employee",
                to_scheme="employee",
                reason="new job",
                applied_on=date(2026, 11, 16),
                channel="online",
                incoming_agency="incoming agency",
            ),
            balance_action="remit",
            balance_rule="R18",
            remittance_id=f"{CASE_ID}-main",
            transferred_out_on=date(2026, 11, 20),
            expected_balance_fen=100_000,
        )
    )
    (period,) = sheet.enrolment_periods
    assert (period.end, period.last_paid_month) == (date(2026, 10, 31), date(2026, 8, 1))
    # Read at the incoming agency: September and October unpaid before a November start.
    span = EnrolmentSpan(**period.model_dump())
    assert span.paid_through(date(2026, 11, 1)) == date(2026, 8, 1)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"last_paid_month": "2026-11-01"}, "after the suspension"),
        ({"last_paid_month": "2026-08-15"}, "first day"),
        ({"last_paid_month": "2016-02-01"}, "before the enrolment starts"),
        (
            {"status": "active", "suspended_on": None, "last_paid_month": "2099-01-01"},
            "in the future",
        ),
    ],
)
async def test_r25_r27_a_last_paid_month_that_cannot_be_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, changes: dict[str, Any], message: str
) -> None:
    agency = inprocess_app("outgoing", tmp_path, monkeypatch)
    async with kafka_memory(agency):
        transport = httpx.ASGITransport(app=agency.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            refused = await client.put(
                "/v1/enrolments", json=body(**changes), headers={"X-API-Key": "demo-operator"}
            )
    assert refused.status_code == 422
    assert message in refused.text
    assert PERSON_ID not in refused.text


def test_r25_r27_the_information_sheet_refuses_a_paid_month_after_its_transfer_out() -> None:
    period = EnrolmentPeriod(
        region="620800",
        scheme="employee",
        start=date(2016, 3, 1),
        end=None,
        contribution_months=120,
        last_paid_month=date(2026, 12, 1),
    )
    with pytest.raises(ValueError, match="after the sheet's transfer-out month"):
        InformationSheet(
            person=PersonIdentity(id_number=PERSON_ID, name=NAME),
            from_region="620800",
            scheme="employee",
            enrolment_periods=[period],
            total_contribution_months=120,
            balance_fen=0,
            transferred_out_on=date(2026, 11, 20),
            issued_by_region="620800",
        )
