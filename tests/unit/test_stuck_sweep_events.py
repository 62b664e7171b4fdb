"""Found by a second review (each a bug before its fix): the stuck sweep's new event keys (services/common/stuck.py _note). The
stuck_detected key is reason + the row's updated_at; marking and clearing do not change
updated_at, so a case stuck again for the same reason (a flapping step) gets no second
stuck_detected event, no audit record: the timeline says "cleared" while the row says stuck."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlmodel import SQLModel, select
from temporalio.client import WorkflowExecutionStatus

from services.common.db import create_tables, make_engine, session_scope
from services.common.repository import CaseRepository
from services.common.stuck import StuckCaseSweep
from services.common.tables import COMMON_TABLES, CaseEventRow, CaseRow

pytestmark = pytest.mark.unit


def _description(failing: bool) -> Any:
    activities = (
        [
            SimpleNamespace(
                attempt=7,
                last_failure=SimpleNamespace(
                    application_failure_info=SimpleNamespace(type="DbDown")
                ),
                activity_type=SimpleNamespace(name="credit_balance"),
            )
        ]
        if failing
        else []
    )
    return SimpleNamespace(
        status=WorkflowExecutionStatus.RUNNING,
        raw_description=SimpleNamespace(pending_workflow_task=None, pending_activities=activities),
    )


class FakeClient:
    def __init__(self) -> None:
        self.failing = True

    def get_workflow_handle(self, _: str) -> Any:
        client = self

        class Handle:
            async def describe(self) -> Any:
                return _description(client.failing)

        return Handle()


async def test_a_case_stuck_again_for_the_same_reason_is_noted_again(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'incoming.db'}")
    create_tables(engine, cast(list[type[SQLModel]], COMMON_TABLES))
    repository = CaseRepository(engine, "incoming")
    then = datetime.now(UTC) - timedelta(hours=2)
    with session_scope(engine) as session:
        session.add(
            CaseRow(
                case_id="C1",
                status="balance",
                status_since=then,
                from_region="620800",
                to_region="350100",
                from_scheme="employee",
                to_scheme="employee",
                person_key="pk",
                id_masked="1101**********002X",
                created_at=then,
                updated_at=then,
            )
        )
    client = FakeClient()
    sweep = StuckCaseSweep(repository, client=client, workflow_id=lambda c: c)  # type: ignore[arg-type]
    assert (await sweep.sweep_once()).marked == ["C1"]
    client.failing = False
    assert (await sweep.sweep_once()).cleared == ["C1"]
    client.failing = True
    assert (await sweep.sweep_once()).marked == ["C1"]
    with session_scope(engine) as session:
        events = [
            e.event
            for e in session.exec(select(CaseEventRow).where(CaseEventRow.case_id == "C1")).all()
        ]
        row = session.get(CaseRow, "C1")
        assert row is not None
        assert row.stuck_since is not None  # the row says stuck
    assert events == ["stuck_detected", "stuck_cleared", "stuck_detected"], events
