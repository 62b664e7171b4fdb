"""The database work of one happy R18 case, alone, in a tight loop: the same repository
and records calls, in the same order and number, that the two APIs and two workers make
for a case (services/common/repository.py, services/*/records.py). SQLite (one file per
side, as deployed) or PostgreSQL (one database per side)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any, cast

from sqlmodel import SQLModel

from bench import people
from contracts.envelope import Envelope
from domain.matching import main_remittance_id
from domain.regions import RegionRegistry
from services.common.bootstrap import Service
from services.common.db import create_tables, make_engine
from services.common.repository import CaseRepository, RegionConnectivity
from services.common.tables import CaseRow
from services.incoming_agency.applications import new_case_row
from services.incoming_agency.records import IncomingRecordsSql
from services.incoming_agency.tables import INCOMING_TABLES
from services.outgoing_agency.inbox import record_case
from services.outgoing_agency.records import OutgoingRecordsSql
from services.outgoing_agency.tables import OUTGOING_TABLES
from workflows.incoming.types import CreditInput, TransferInInput
from workflows.outgoing.types import CheckRequestInput, TransferOutInput
from workflows.types import Awaiting, CaseEvent, Side

# (event, status, terminal) per side, as the workflows record them on the happy R18 path.
INCOMING_EVENTS = [
    ("application_accepted", "submitted", False),
    ("decision", "submitted", False),
    ("decision", "submitted", False),
    ("transfer_request_sent", "awaiting_transfer_out", False),
    ("information_sheet_received", "transfer_in", False),
    ("decision", "transfer_in", False),
    ("continuity_assessed", "transfer_in", False),
    ("decision", "transfer_in", False),
    ("transfer_in_completed", "awaiting_balance", False),
    ("balance_credited", "awaiting_balance", False),
    ("case_completed", "completed", True),
]
OUTGOING_EVENTS = [
    ("transfer_request_received", "checking", False),
    ("decision", "checking", False),
    ("decision", "checking", False),
    ("decision", "checking", False),
    ("transferred_out", "balance", False),
    ("balance_settled", "awaiting_confirmation", False),
    ("transfer_in_confirmed", "awaiting_confirmation", False),
    ("balance_credit_confirmed", "awaiting_confirmation", False),
    ("case_completed", "completed", True),
]
# Documents each API receives for a case: (type, whether it is for a workflow).
INCOMING_INBOX = ["TransferOutCompleted", "BalanceRemitted", "Receipt", "Receipt", "Receipt"]
OUTGOING_INBOX = ["TransferRequested", "TransferInCompleted", "BalanceCredited"]
OUTGOING_INBOX += ["Receipt", "Receipt"]
# Connectivity reads (R23): region_connected before and inside each delivery.
INCOMING_CONNECTIVITY_READS = 6
OUTGOING_CONNECTIVITY_READS = 4


class CaseTransactions:
    def __init__(self, incoming_url: str, outgoing_url: str, registry: RegionRegistry) -> None:
        self.incoming = make_engine(incoming_url)
        self.outgoing = make_engine(outgoing_url)
        create_tables(self.incoming, cast(list[type[SQLModel]], INCOMING_TABLES))
        create_tables(self.outgoing, cast(list[type[SQLModel]], OUTGOING_TABLES))
        self.in_repo = CaseRepository(self.incoming, "incoming")
        self.out_repo = CaseRepository(self.outgoing, "outgoing")
        self.in_connectivity = RegionConnectivity(self.incoming, registry)
        self.out_connectivity = RegionConnectivity(self.outgoing, registry)
        self.in_records = IncomingRecordsSql(self.incoming)
        self.out_records = OutgoingRecordsSql(self.outgoing, self.out_connectivity)
        # record_case needs only the service's engine.
        self.out_service = cast(Service, SimpleNamespace(engine=self.outgoing))

    def dispose(self) -> None:
        self.incoming.dispose()
        self.outgoing.dispose()

    def _events(self, case_id: str, side: Side, events: list[tuple[str, str, bool]]) -> None:
        repo = self.in_repo if side == "incoming" else self.out_repo
        for step, (event, status, terminal) in enumerate(events, 1):
            repo.append_event(
                CaseEvent(
                    case_id=case_id,
                    side=side,
                    event_key=f"{side}-{case_id}:{step}",
                    event=event,
                    status=status,
                    occurred_at=datetime.now(UTC),
                    rule="R18",
                    detail={"message_id": f"{case_id}/x/{step}", "amount_fen": 523_400},
                    awaiting=Awaiting(what="the next step", from_party="an agency", by=None),
                    deadlines={"transfer_out_due": date(2026, 12, 9)},
                    terminal=terminal,
                )
            )

    def _inbox(self, case_id: str, side: str, types: list[str]) -> None:
        repo = self.in_repo if side == "incoming" else self.out_repo
        for n, type_ in enumerate(types):
            message_id = f"{case_id}/{type_}/{side}-{n}"
            if not repo.seen(message_id):
                repo.remember(message_id, case_id, type_, "620800", "signalled")

    def one_case(self, index: int, today: date) -> None:
        p = people.person(index)
        request = people.transfer_request(p, today)
        # Incoming API: the application becomes a case row.
        row: CaseRow = self.in_repo.insert_case(
            new_case_row(request, people.INCOMING_ENROLLED_SINCE)
        )
        case_id = row.case_id
        # Outgoing API: the request arrives, its case row is recorded.
        envelope = Envelope.wrap(
            request,
            case_id=case_id,
            step="request-1",
            from_region=people.TO_REGION,
            to_region=people.FROM_REGION,
            sent_at=datetime.now(UTC),
        )
        self._inbox(case_id, "outgoing", OUTGOING_INBOX[:1])
        record_case(self.out_service, envelope)
        # Outgoing worker: checks, transfer-out with the debit, its timeline.
        facts = self.out_records.check_request(CheckRequestInput(case_id=case_id, request=request))
        sheet = self.out_records.transfer_out(
            TransferOutInput(
                case_id=case_id,
                request=request,
                balance_action="remit",
                balance_rule="R18",
                remittance_id=main_remittance_id(case_id),
                transferred_out_on=today,
                # R16: the balance the check saw, as the workflow passes it.
                expected_balance_fen=facts.balance_fen,
            )
        )
        for _ in range(OUTGOING_CONNECTIVITY_READS):
            self.out_connectivity.is_connected(people.TO_REGION, today)
        self._events(case_id, "outgoing", OUTGOING_EVENTS)
        self._inbox(case_id, "outgoing", OUTGOING_INBOX[1:])
        # Incoming side: documents in, transfer-in, the credit, its timeline.
        self._inbox(case_id, "incoming", INCOMING_INBOX)
        self.in_records.complete_transfer_in(
            TransferInInput(case_id=case_id, sheet=sheet, completed_on=today)
        )
        self.in_records.credit(
            CreditInput(
                case_id=case_id,
                remittance_id=main_remittance_id(case_id),
                amount_fen=sheet.balance_fen,
                credited_on=today,
            )
        )
        for _ in range(INCOMING_CONNECTIVITY_READS):
            self.in_connectivity.is_connected(people.FROM_REGION, today)
        self._events(case_id, "incoming", INCOMING_EVENTS)


def run_loop(
    incoming_url: str,
    outgoing_url: str,
    registry: RegionRegistry,
    seconds: float,
    max_cases: int,
    today: date,
) -> dict[str, Any]:
    """As many cases' transactions as fit in ``seconds`` (one connection per side)."""
    loop = CaseTransactions(incoming_url, outgoing_url, registry)
    try:
        people.load_enrolments(loop.outgoing, [people.person(i) for i in range(max_cases)])
        started = time.perf_counter()
        done = 0
        while done < max_cases and time.perf_counter() - started < seconds:
            loop.one_case(done, today)
            done += 1
        elapsed = time.perf_counter() - started
    finally:
        loop.dispose()
    return {
        "cases": done,
        "seconds": round(elapsed, 2),
        "cases_per_s": round(done / elapsed, 1),
        "transactions_per_case": transactions_per_case(),
    }


def transactions_per_case() -> int:
    """Committed transactions (reads included) per case in the loop above."""
    events = len(INCOMING_EVENTS) + len(OUTGOING_EVENTS)  # each: one transaction
    inbox = 2 * (len(INCOMING_INBOX) + len(OUTGOING_INBOX))  # seen + remember
    reads = INCOMING_CONNECTIVITY_READS + OUTGOING_CONNECTIVITY_READS + 1  # + check's own
    records = 1 + 1 + 2 + 2  # insert_case, record_case, check + transfer_out, in + credit
    return events + inbox + reads + records
