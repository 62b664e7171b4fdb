"""The case timeline written by the record_case_event activity: idempotent per event key
(Temporal runs an activity at least once), sequential per case, projected onto the case."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import cast

import pytest
from sqlmodel import SQLModel, select

from services.common.db import create_tables, make_engine, session_scope
from services.common.repository import CaseRepository
from services.common.tables import COMMON_TABLES, CaseEventRow, CaseRow
from workflows.types import CaseEvent

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)


def event(step: int, status: str = "submitted", *, terminal: bool = False) -> CaseEvent:
    return CaseEvent(
        case_id="TR1",
        side="incoming",
        event_key=f"incoming-TR1:{step}",
        event=f"step_{step}",
        status=status,
        occurred_at=T0 + timedelta(seconds=step),
        terminal=terminal,
    )


@pytest.fixture
def repository(tmp_path: Path) -> CaseRepository:
    engine = make_engine(f"sqlite:///{tmp_path / 'incoming.db'}")
    create_tables(engine, cast(list[type[SQLModel]], COMMON_TABLES))
    repo = CaseRepository(engine, "incoming")
    repo.insert_case(
        CaseRow(
            case_id="TR1",
            status="submitted",
            status_since=T0,
            from_region="620800",
            to_region="610100",
            from_scheme="employee",
            to_scheme="employee",
            person_key="k",
            id_masked="6208************39",
            open_key="k:620800:610100",
            created_at=T0,
            updated_at=T0,
        )
    )
    return repo


def test_a_retried_record_writes_the_event_once_with_its_first_sequence(
    repository: CaseRepository,
) -> None:
    first = repository.append_event(event(1))
    again = repository.append_event(event(1))
    assert first is not None
    assert again is not None
    assert again.sequence == first.sequence == 1
    with session_scope(repository.engine) as session:
        rows = session.exec(select(CaseEventRow)).all()
    assert [(r.event_key, r.sequence) for r in rows] == [("incoming-TR1:1", 1)]


def test_events_are_numbered_in_order_and_projected_onto_the_case(
    repository: CaseRepository,
) -> None:
    repository.append_event(event(1))
    repository.append_event(event(2, "awaiting_transfer_out"))
    second = repository.append_event(event(3, "completed", terminal=True))
    repository.append_event(event(2, "awaiting_transfer_out"))  # a late retry changes nothing
    assert second is not None
    assert second.sequence == 3
    case = repository.get_case("TR1")
    assert case is not None
    assert (case.status, case.terminal, case.open_key) == ("completed", True, None)
    assert [e.sequence for e in repository.events("TR1")] == [1, 2, 3]


def test_the_projection_keeps_status_since_merges_facts_and_ignores_late_events(
    repository: CaseRepository,
) -> None:
    repository.append_event(event(1, "awaiting_transfer_out"))
    repository.append_event(
        event(2, "awaiting_transfer_out").model_copy(
            update={
                "facts": {"policy": "v1"},
                "deadlines": {"transfer_out": date(2026, 11, 16)},
                "escalated": True,
                "warnings": ["calendar-fallback-2027"],
            }
        )
    )
    repository.append_event(
        event(3, "awaiting_transfer_out").model_copy(update={"facts": {"x": 1}})
    )
    # Step 2 again, retried from another time zone: older than the case's last update.
    late = event(4, "submitted").model_copy(
        update={"occurred_at": (T0 + timedelta(seconds=2)).astimezone(timezone(timedelta(hours=8)))}
    )
    repository.append_event(late)
    case = repository.get_case("TR1")
    assert case is not None
    assert case.status == "awaiting_transfer_out"
    assert case.status_since.replace(tzinfo=UTC) == T0 + timedelta(seconds=1)  # not step 3
    assert case.facts == {"policy": "v1", "x": 1}
    assert case.deadlines == {"transfer_out": "2026-11-16"}
    assert (case.escalated, case.warnings) == (True, [])
    assert case.updated_at.replace(tzinfo=UTC) == T0 + timedelta(seconds=3)
    assert [e.sequence for e in repository.events("TR1")] == [1, 2, 3, 4]  # still recorded


def test_a_step_re_run_later_gets_the_audit_record_already_written(
    repository: CaseRepository,
) -> None:
    # A workflow task re-run after a worker died records the same step with a later
    # workflow.now(): the audit trail must get the first record again, not a conflicting one.
    first = repository.append_event(event(1))
    rerun = event(1).model_copy(
        update={"occurred_at": T0 + timedelta(minutes=5), "detail": {"attempt": 2}}
    )
    again = repository.append_event(rerun)
    assert first is not None
    assert again == first
