"""R16 residual remittances go only where the case's settlement allows: after the main
balance was remitted and confirmed credited (never one paid to the bank, kept usable
under R20 or bound for a resident scheme), never before it settled."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session

from services.common.tables import CaseRow
from tests.support.inprocess import inprocess_app, without_broker

pytestmark = pytest.mark.unit

OPERATOR_KEY = {"X-API-Key": "demo-operator"}
PERSON_ID = "11010519491231002X"


@pytest.mark.parametrize(
    ("status", "balance_action", "expected"),
    [
        ("awaiting_confirmation", "remit", "NOT_SETTLED_YET"),
        ("balance_mismatch", "remit", "NOT_SETTLED_YET"),
        ("completed", "pay_to_bank", "RESIDUAL_NOT_ALLOWED"),
        ("completed", "keep_usable", "RESIDUAL_NOT_ALLOWED"),
        ("completed", "remit", None),
    ],
)
async def test_r16_a_late_contribution_follows_only_a_remitted_and_credited_balance(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    status: str,
    balance_action: str,
    expected: str | None,
) -> None:
    agency = without_broker(inprocess_app("outgoing", tmp_path, monkeypatch))
    case_id = f"TR20260105{uuid.uuid4().hex[:10].upper()}"
    agency.seed_case(case_id, status, from_region="620800", to_region="610100", person_id=PERSON_ID)
    with Session(agency.service.engine) as session:
        row = session.get(CaseRow, case_id)
        assert row is not None
        row.application = {"balance_action": balance_action}
        session.add(row)
        session.commit()
    async with agency.app.router.lifespan_context(agency.app):
        transport = httpx.ASGITransport(app=agency.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.post(
                f"/v1/cases/{case_id}/late-contributions",
                json={"contribution_id": "c-1", "amount_fen": 500},
                headers=OPERATOR_KEY,
            )
    if expected is None:
        assert response.status_code == 202, response.text
    else:
        assert response.status_code == 409, response.text
        assert response.json()["reasons"][0]["code"] == expected
