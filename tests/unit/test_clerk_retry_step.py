"""A clerk's retry reaches what waits for it: a held sheet (status ``exception``) and a
step escalated STEP_FAILED (CaseFlow.step) take ``retry-step`` from the API; a case with
nothing to retry refuses it (409)."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session

from services.common.tables import CaseRow
from tests.support.inprocess import inprocess_app, without_broker

pytestmark = pytest.mark.unit

CLERK_KEY = {"X-API-Key": "demo-clerk"}
PERSON_ID = "11010519491231002X"


@pytest.mark.parametrize(
    ("status", "escalated", "expected"),
    [
        ("exception", False, 202),  # a held sheet (R13)
        ("awaiting_balance", True, 202),  # credit_balance escalated STEP_FAILED
        ("awaiting_balance", False, 409),  # nothing failed: nothing to retry
    ],
)
async def test_r13_r15_the_clerk_retry_a_held_case_waits_for_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: str, escalated: bool, expected: int
) -> None:
    agency = without_broker(inprocess_app("incoming", tmp_path, monkeypatch))
    case_id = f"TR20260105{uuid.uuid4().hex[:10].upper()}"
    agency.seed_case(case_id, status, from_region="620800", to_region="610100", person_id=PERSON_ID)
    with Session(agency.service.engine) as session:
        row = session.get(CaseRow, case_id)
        assert row is not None
        row.escalated = escalated
        session.add(row)
        session.commit()
    async with agency.app.router.lifespan_context(agency.app):
        transport = httpx.ASGITransport(app=agency.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.post(
                f"/v1/cases/{case_id}/actions/retry-step",
                json={"reason": "checked with the outgoing agency"},
                headers=CLERK_KEY,
            )
    assert response.status_code == expected, response.text
    if expected == 202:
        assert [s[1] for s in agency.temporal.signals] == ["retry_step"]
