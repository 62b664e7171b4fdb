"""Enrolment records at the outgoing agency (R5, R16, R21): edited by an operator only,
bounded by the model, on the audit trail (who, and the money and status fields, never the
person's data), and not edited while a case holds the record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from services.common.tables import CaseEventRow
from services.outgoing_agency.tables import EnrolmentRow
from tests.support.inprocess import inprocess_app, kafka_memory

pytestmark = pytest.mark.unit

PERSON_ID = "11010519491231002X"
NAME = "测试参保人"


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
