"""R5 (one person, one open transfer) at the incoming agency when applications of one
person arrive at the same moment: exactly one case opens, the others are refused 409
OPEN_CASE_ELSEWHERE (tests/integration/test_postgres.py holds the same on PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from domain.identity import fingerprint
from services.common.db import session_scope
from services.common.tables import CaseRow
from tests.support.inprocess import InProcessAgency, inprocess_app, without_broker
from tests.unit.test_r17_progress import KEY, application, person_id

pytestmark = pytest.mark.unit

OTHER_OUTGOING = "620100"  # 兰州市: a second outgoing region for the same person


@pytest.fixture
def agency(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[InProcessAgency]:
    agency = without_broker(inprocess_app("incoming", tmp_path, monkeypatch))
    yield agency
    agency.service.engine.dispose()


def open_cases(agency: InProcessAgency, person_key: str) -> list[CaseRow]:
    with session_scope(agency.service.engine) as session:
        return list(
            session.exec(
                select(CaseRow).where(
                    CaseRow.person_key == person_key, col(CaseRow.open_key).is_not(None)
                )
            ).all()
        )


def test_r5_a_second_application_of_one_person_is_refused(agency: InProcessAgency) -> None:
    """Control: one after the other, the second is refused 409 OPEN_CASE_ELSEWHERE."""
    id_number = person_id()

    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=agency.app)
        async with (
            agency.app.router.lifespan_context(agency.app),
            httpx.AsyncClient(transport=transport, base_url="http://t") as c,
        ):
            a = await c.post("/v1/applications", json=application(id_number), headers=KEY)
            b = await c.post(
                "/v1/applications",
                json=application(id_number, from_region=OTHER_OUTGOING),
                headers=KEY,
            )
            assert "OPEN_CASE_ELSEWHERE" in b.text, b.text
            return [a.status_code, b.status_code]

    assert asyncio.run(run()) == [201, 409]


def test_r5_applications_of_one_person_at_once_open_one_case(agency: InProcessAgency) -> None:
    """150 persons, three applications each from three outgoing regions, all at once: the
    routes run the check and the insert in threads, so without one transaction per person
    (CaseRepository.open_case) some persons got two open cases."""
    people = [person_id() for _ in range(150)]

    regions = ("620800", OTHER_OUTGOING, "350100")

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=agency.app)
        async with (
            agency.app.router.lifespan_context(agency.app),
            httpx.AsyncClient(transport=transport, base_url="http://t") as c,
        ):
            return await asyncio.gather(
                *(
                    c.post(
                        "/v1/applications",
                        json=application(p, from_region=region),
                        headers=KEY,
                    )
                    for p in people
                    for region in regions
                )
            )

    answers = asyncio.run(run())
    doubled = sum(1 for p in people if len(open_cases(agency, fingerprint(p))) > 1)
    assert doubled == 0, f"R5 broken for {doubled}/150 persons: more than one open case each"
    # Each person: one case opened, the other two applications refused with the reason.
    for index in range(len(people)):
        mine = answers[index * len(regions) : (index + 1) * len(regions)]
        assert sorted(a.status_code for a in mine) == [201, 409, 409]
        assert all("OPEN_CASE_ELSEWHERE" in a.text for a in mine if a.status_code == 409)
        assert len(open_cases(agency, fingerprint(people[index]))) == 1
