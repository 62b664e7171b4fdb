"""The stuck-case sweep's candidate query (services/common/stuck.py candidates), a
regression found by a review:

Every document a side sends is answered by a Receipt, and the inbound handler stores the
Receipt in the inbox (outcome "receipt") with received_at = now. A case that sent a
document and then waits for the other agency therefore has "a document received after
the case's last change" for ever: ``documents_after`` holds for every waiting case. With
many open cases the query's ``ORDER BY updated_at LIMIT 500`` is filled by those oldest
waiting cases, and a case that really sits in an internal status (or one already marked
stuck, which must be re-examined to be cleared) is never looked at.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlmodel import SQLModel

from services.common.db import create_tables, make_engine, session_scope
from services.common.repository import CaseRepository
from services.common.stuck import SWEEP_LIMIT, StuckCaseSweep
from services.common.tables import COMMON_TABLES, CaseRow, InboxRow

pytestmark = pytest.mark.unit


def _case(case_id: str, status: str, updated_at: datetime, **extra: Any) -> CaseRow:
    return CaseRow(
        case_id=case_id,
        status=status,
        status_since=updated_at,
        from_region="620800",
        to_region="350100",
        from_scheme="employee",
        to_scheme="employee",
        person_key=f"pk-{case_id}",
        id_masked="1101**********002X",
        created_at=updated_at,
        updated_at=updated_at,
        **extra,
    )


def test_receipts_do_not_starve_the_stuck_and_resting_cases(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'incoming.db'}")
    create_tables(engine, cast(list[type[SQLModel]], COMMON_TABLES))
    repository = CaseRepository(engine, "incoming")
    now = datetime.now(UTC)
    long_ago = now - timedelta(days=3)
    with session_scope(engine) as session:
        for n in range(SWEEP_LIMIT):
            # Waiting for the outgoing agency; its receipt came in after the last event.
            session.add(_case(f"W{n:04d}", "awaiting_transfer_out", long_ago))
            session.add(
                InboxRow(
                    message_id=f"W{n:04d}/Receipt/request-1",
                    case_id=f"W{n:04d}",
                    type="Receipt",
                    from_region="620800",
                    received_at=long_ago + timedelta(seconds=1),
                    outcome="receipt",
                )
            )
        # A case resting in an internal status (its own step fails) for an hour, and one
        # already marked stuck that must be re-examined.
        session.add(_case("STUCK-INTERNAL", "transfer_in", now - timedelta(hours=1)))
        session.add(
            _case(
                "STUCK-MARKED",
                "balance",
                now - timedelta(hours=1),
                stuck_since=now - timedelta(minutes=30),
                stuck_reason="ACTIVITY_FAILING:x:y",
            )
        )
    sweep = StuckCaseSweep(repository, client=None, workflow_id=lambda c: c)  # type: ignore[arg-type]
    looked_at = {row.case_id for row in sweep.candidates(now)}
    waiting = sum(1 for c in looked_at if c.startswith("W"))
    assert {"STUCK-INTERNAL", "STUCK-MARKED"} <= looked_at, (
        f"{waiting} merely-waiting cases (a receipt after their last event) fill the "
        f"{SWEEP_LIMIT} slots; the stuck ones are never looked at"
    )
