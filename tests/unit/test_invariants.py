"""The invariant checker of the fault suite (harness/invariants.py) finds each kind
of violation it exists for, on two real SQLite files."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.invariants import check_invariants
from services.common.db import create_tables, make_engine, session_scope
from services.common.tables import CaseEventRow, CaseRow, DeadLetterRow, InboxRow, LedgerEntry
from services.incoming_agency.tables import INCOMING_TABLES
from services.outgoing_agency.tables import OUTGOING_TABLES

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


@dataclass
class Files:
    root: Path
    env: dict[str, str] = field(default_factory=dict)

    def add(self, side: str, *rows: Any) -> None:
        engine = make_engine(f"sqlite:///{self.root / 'data' / f'{side}-agency.db'}")
        with session_scope(engine) as session:
            for row in rows:
                session.add(row)
        engine.dispose()


@pytest.fixture
def files(tmp_path: Path) -> Files:
    sides: list[tuple[str, list[Any]]] = [
        ("incoming", INCOMING_TABLES),
        ("outgoing", OUTGOING_TABLES),
    ]
    for side, tables in sides:
        engine = make_engine(f"sqlite:///{tmp_path / 'data' / f'{side}-agency.db'}")
        create_tables(engine, tables)
        engine.dispose()
    return Files(tmp_path)


def case(case_id: str, status: str, *, terminal: bool, escalated: bool = False) -> CaseRow:
    return CaseRow(
        case_id=case_id,
        status=status,
        status_since=NOW,
        from_region="620800",
        to_region="610100",
        from_scheme="employee",
        to_scheme="employee",
        person_key="k",
        id_masked="6208************39",
        terminal=terminal,
        escalated=escalated,
        created_at=NOW,
        updated_at=NOW,
    )


def event(case_id: str, sequence: int, status: str, name: str = "e") -> CaseEventRow:
    return CaseEventRow(
        case_id=case_id,
        sequence=sequence,
        event_key=f"{case_id}:{sequence}:{status}",
        event=name,
        status=status,
        occurred_at=NOW,
    )


def leg(case_id: str, name: str, amount: int) -> LedgerEntry:
    return LedgerEntry(
        case_id=case_id,
        remittance_id=f"{case_id}-main",
        leg=name,
        amount_fen=amount,
        created_at=NOW,
    )


def completed(files: Files, case_id: str, credit: int = 1000) -> None:
    for side in ("incoming", "outgoing"):
        files.add(
            side,
            case(case_id, "completed", terminal=True),
            event(case_id, 1, "checking"),
            event(case_id, 2, "completed"),
        )
    files.add("outgoing", leg(case_id, "debit_outgoing", 1000))
    files.add(
        "incoming",
        InboxRow(
            message_id=f"{case_id}/BalanceRemitted/balance-{case_id}-main",
            case_id=case_id,
            type="BalanceRemitted",
            from_region="620800",
            received_at=NOW,
            outcome="signalled",
        ),
    )
    if credit:
        files.add("incoming", leg(case_id, "credit_incoming", credit))


def test_a_completed_case_with_its_money_moved_once_holds(files: Files) -> None:
    completed(files, "C1")
    report = check_invariants(files, ["C1"])
    assert report.ok, report.describe()
    assert report.states == {"C1": ("completed", "completed")}


def test_i1_a_case_still_in_flight_or_where_the_sides_disagree(files: Files) -> None:
    files.add("incoming", case("C2", "awaiting_balance", terminal=False))
    files.add("outgoing", case("C2", "awaiting_confirmation", terminal=False))
    files.add("incoming", case("C3", "completed", terminal=True), event("C3", 1, "completed"))
    files.add("outgoing", case("C3", "refused", terminal=True), event("C3", 1, "refused"))
    report = check_invariants(files, ["C2", "C3"])
    found = {(v.case_id, v.detail.split(":")[0]) for v in report.by_invariant("I1")}
    assert ("C2", "incoming still in flight") in found
    assert ("C3", "sides disagree") in found


def test_i1_an_escalated_case_is_visible_not_a_violation(files: Files) -> None:
    files.add("incoming", case("C4", "awaiting_balance", terminal=False, escalated=True))
    files.add("outgoing", case("C4", "awaiting_confirmation", terminal=False, escalated=True))
    files.add("outgoing", leg("C4", "debit_outgoing", 500))
    report = check_invariants(files, ["C4"])
    assert report.by_invariant("I1") == []
    # The money is still in flight: reconciliation says so, the checker reports it.
    assert [v.invariant for v in report.violations] == ["I2"]


def test_i2_a_debit_settled_twice_or_not_at_all(files: Files) -> None:
    completed(files, "C5")
    files.add("outgoing", leg("C5", "bank_payout", 1000))
    completed(files, "C6", credit=0)
    completed(files, "C7", credit=999)
    report = check_invariants(files, ["C5", "C6", "C7"])
    problems = {v.case_id: v.detail for v in report.by_invariant("I2")}
    assert "settled_more_than_once" in problems["C5"]
    assert "settlement" in problems["C6"]
    assert "amount_mismatch" in problems["C7"]


def test_i3_rejections_without_a_reason(files: Files) -> None:
    completed(files, "C8")
    files.add(
        "incoming",
        DeadLetterRow(case_id="C8", reason=" ", topic="t", received_at=NOW),
    )
    request = httpx.Request("POST", "http://agency/v1/applications")
    bare = httpx.Response(422, json={"detail": "no"}, request=request)
    reasoned = httpx.Response(
        422,
        json={"error": "application refused", "reasons": [{"code": "R1_X", "message_en": "x"}]},
        request=request,
    )
    server_error = httpx.Response(500, json={"error": "x", "reasons": []}, request=request)
    report = check_invariants(
        files,
        ["C8"],
        http_rejections=[bare, reasoned, server_error],
        dead_letters=["C8/BalanceRemitted/never-dead-lettered"],
    )
    details = [v.detail for v in report.by_invariant("I3")]
    assert len(details) == 4, details
    assert any("dead letter with no reason" in d for d in details)
    assert any("-> 500" in d for d in details)
    assert any("no dead-letter record" in d for d in details)
