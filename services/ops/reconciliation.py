"""Remittance reconciliation across the two agencies' records.

Every remittance (``<case_id>-main``, residual ``<case_id>-residual-<contribution_id>``)
is matched three ways:

(a) the debit of the outgoing personal account (outgoing ledger, ``debit_outgoing``; R16);
(b) its settlement: the credit of the new account (incoming ledger, ``credit_incoming``;
    R15), the payment into the person's own bank account (outgoing ledger,
    ``bank_payout``; R19, R21, R22) or the money sent back after a mismatch (outgoing
    ledger, ``returned_to_outgoing``; R15/R16);
(c) the remittance message: a ``BalanceRemitted`` or ``BalancePaidToBank`` in the incoming
    agency's inbox (R18).

A remittance missing any of the three, settled more than once, or settled with another
amount than was debited is unmatched; the oldest come first. The matching is a pure
function over plain lists (:func:`match_remittances`); :func:`reconcile` only reads them.

``python -m services.ops.reconciliation [--json]`` prints the report for the configured
databases.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from domain.money import format_fen
from domain.vocabulary import LedgerLeg
from services.common.tables import InboxRow, LedgerEntry

SETTLEMENT_LEGS = (LedgerLeg.CREDIT_INCOMING, LedgerLeg.BANK_PAYOUT, LedgerLeg.RETURNED_TO_OUTGOING)
REMITTANCE_MESSAGE_TYPES = ("BalanceRemitted", "BalancePaidToBank")

MISSING_DEBIT = "debit"
MISSING_SETTLEMENT = "settlement"
MISSING_MESSAGE = "message"
AMOUNT_MISMATCH = "amount_mismatch"
SETTLED_TWICE = "settled_more_than_once"

TABLE_COLUMNS = (
    "remittance_id",
    "case_id",
    "status",
    "missing",
    "problems",
    "debit_yuan",
    "settlement",
    "settled_yuan",
    "message",
    "age_hours",
)


@dataclass(frozen=True)
class Leg:
    """One ledger row as the reconciliation sees it."""

    side: str  # outgoing | incoming: whose ledger holds it
    case_id: str
    remittance_id: str
    leg: str
    amount_fen: int
    created_at: datetime


@dataclass(frozen=True)
class RemittanceMessage:
    """A remittance document received by the incoming agency (one inbox row)."""

    message_id: str
    case_id: str
    type: str
    remittance_id: str
    received_at: datetime
    outcome: str = "accepted"


@dataclass(frozen=True)
class RemittanceStatus:
    remittance_id: str
    case_id: str
    residual: bool
    status: str  # matched | unmatched
    missing: tuple[str, ...]  # debit | settlement | message
    problems: tuple[str, ...]  # amount_mismatch | settled_more_than_once
    debit_fen: int | None
    settlement: str | None  # credit_incoming | bank_payout | returned_to_outgoing
    settled_fen: int | None
    difference_fen: int  # settled - debited; 0 unless both are known and differ
    late_contribution_fen: int | None
    message_type: str | None
    message_id: str | None
    first_seen: datetime
    age_seconds: float

    @property
    def matched(self) -> bool:
        return self.status == "matched"

    @property
    def amount_mismatch(self) -> bool:
        return AMOUNT_MISMATCH in self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "remittance_id": self.remittance_id,
            "case_id": self.case_id,
            "residual": self.residual,
            "status": self.status,
            "missing": list(self.missing),
            "problems": list(self.problems),
            "debit_fen": self.debit_fen,
            "settlement": self.settlement,
            "settled_fen": self.settled_fen,
            "difference_fen": self.difference_fen,
            "late_contribution_fen": self.late_contribution_fen,
            "message_type": self.message_type,
            "message_id": self.message_id,
            "first_seen": self.first_seen.isoformat(),
            "age_seconds": round(self.age_seconds, 3),
        }

    def to_table_row(self) -> tuple[str, ...]:
        return (
            self.remittance_id,
            self.case_id,
            self.status,
            ",".join(self.missing),
            ",".join(self.problems),
            _yuan(self.debit_fen),
            self.settlement or "",
            _yuan(self.settled_fen),
            self.message_type or "",
            f"{self.age_seconds / 3600:.1f}",
        )


@dataclass(frozen=True)
class Report:
    generated_at: datetime
    items: tuple[RemittanceStatus, ...]
    totals: dict[str, int] = field(default_factory=dict)

    @property
    def unmatched(self) -> list[RemittanceStatus]:
        """Everything a clerk must look at, the oldest first."""
        return sorted(
            (i for i in self.items if not i.matched),
            key=lambda i: (-i.age_seconds, i.remittance_id),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "generated_at": self.generated_at.isoformat(),
            "totals": dict(self.totals),
            "items": [i.to_json() for i in self.items],
            "unmatched": [i.remittance_id for i in self.unmatched],
        }

    def to_table_rows(self, header: bool = True) -> list[tuple[str, ...]]:
        """One row of text cells per remittance (amounts in yuan), unmatched first."""
        unmatched = self.unmatched
        matched = [i for i in self.items if i.matched]
        rows = [i.to_table_row() for i in [*unmatched, *matched]]
        return [TABLE_COLUMNS, *rows] if header else rows


def parse_remittance_message_id(message_id: str) -> tuple[str, str, str | None]:
    """``<case_id>/<Type>/<step>`` -> (case_id, type, remittance_id).

    The main remittance's step is ``balance-<remittance_id>``; a residual's is
    ``residual-<contribution_id>`` with remittance id ``<case_id>-residual-<contribution_id>``.
    The remittance id is None for any other step. Raises ValueError when the id does not
    have three parts.
    """
    parts = message_id.rsplit("/", 2)
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"not a platform message id: {message_id!r}")
    case_id, type_, step = parts
    if step.startswith("balance-"):
        return case_id, type_, step.removeprefix("balance-")
    if step.startswith("residual-"):
        return case_id, type_, f"{case_id}-residual-{step.removeprefix('residual-')}"
    return case_id, type_, None


def match_remittances(
    outgoing_legs: Iterable[Leg],
    incoming_legs: Iterable[Leg],
    messages: Iterable[RemittanceMessage],
    now: datetime,
) -> Report:
    """Match debits, settlements and messages by remittance id (pure: no I/O)."""
    legs: dict[str, dict[str, Leg]] = defaultdict(dict)
    case_of: dict[str, str] = {}
    for leg in [*outgoing_legs, *incoming_legs]:
        legs[leg.remittance_id][leg.leg] = leg
        case_of.setdefault(leg.remittance_id, leg.case_id)
    received: dict[str, RemittanceMessage] = {}
    for message in messages:
        earlier = received.get(message.remittance_id)
        if earlier is None or _utc(message.received_at) < _utc(earlier.received_at):
            received[message.remittance_id] = message
        case_of.setdefault(message.remittance_id, message.case_id)

    now = _utc(now)
    items = [
        _status(rid, case_of[rid], legs.get(rid, {}), received.get(rid), now)
        for rid in sorted(case_of)
    ]
    return Report(generated_at=now, items=tuple(items), totals=_totals(items))


def _status(
    remittance_id: str,
    case_id: str,
    legs: dict[str, Leg],
    message: RemittanceMessage | None,
    now: datetime,
) -> RemittanceStatus:
    debit = legs.get(LedgerLeg.DEBIT_OUTGOING)
    settlements = [legs[name] for name in SETTLEMENT_LEGS if name in legs]
    settled = settlements[0] if settlements else None
    missing = [
        name
        for name, present in (
            (MISSING_DEBIT, debit),
            (MISSING_SETTLEMENT, settled),
            (MISSING_MESSAGE, message),
        )
        if present is None
    ]
    problems = []
    difference = 0
    if debit is not None and settled is not None and settled.amount_fen != debit.amount_fen:
        difference = settled.amount_fen - debit.amount_fen  # R15: never silently absorbed
        problems.append(AMOUNT_MISMATCH)
    if len(settlements) > 1:
        problems.append(SETTLED_TWICE)
    stamps = [_utc(leg.created_at) for leg in legs.values()]
    first_seen = min(stamps) if stamps else _utc(message.received_at) if message else now
    late = legs.get(LedgerLeg.LATE_CONTRIBUTION)
    return RemittanceStatus(
        remittance_id=remittance_id,
        case_id=case_id,
        residual="-residual-" in remittance_id or late is not None,
        status="unmatched" if missing or problems else "matched",
        missing=tuple(missing),
        problems=tuple(problems),
        debit_fen=debit.amount_fen if debit else None,
        settlement=settled.leg if settled else None,
        settled_fen=settled.amount_fen if settled else None,
        difference_fen=difference,
        late_contribution_fen=late.amount_fen if late else None,
        message_type=message.type if message else None,
        message_id=message.message_id if message else None,
        first_seen=first_seen,
        age_seconds=max((now - first_seen).total_seconds(), 0.0),
    )


def _totals(items: Sequence[RemittanceStatus]) -> dict[str, int]:
    def settled(kind: str) -> int:
        return sum(i.settled_fen or 0 for i in items if i.settlement == kind)

    debited = sum(i.debit_fen or 0 for i in items)
    credited = settled(LedgerLeg.CREDIT_INCOMING)
    paid = settled(LedgerLeg.BANK_PAYOUT)
    returned = settled(LedgerLeg.RETURNED_TO_OUTGOING)
    unmatched = [i for i in items if not i.matched]
    return {
        "remittances": len(items),
        "matched": len(items) - len(unmatched),
        "unmatched": len(unmatched),
        "debited_fen": debited,
        "credited_fen": credited,
        "paid_to_bank_fen": paid,
        "returned_fen": returned,
        "late_contribution_fen": sum(i.late_contribution_fen or 0 for i in items),
        # Debited but not (yet) settled anywhere: money in flight.
        "outstanding_fen": debited - credited - paid - returned,
        "unmatched_debit_fen": sum(i.debit_fen or 0 for i in unmatched),
    }


# --- reading the two databases ---------------------------------------------------------------
def read_legs(engine: Engine, side: str) -> list[Leg]:
    with Session(engine) as session:
        rows = session.exec(select(LedgerEntry).order_by(col(LedgerEntry.id))).all()
    return [Leg(side, r.case_id, r.remittance_id, r.leg, r.amount_fen, r.created_at) for r in rows]


def read_remittance_messages(engine: Engine) -> list[RemittanceMessage]:
    with Session(engine) as session:
        rows = session.exec(
            select(InboxRow).where(col(InboxRow.type).in_(REMITTANCE_MESSAGE_TYPES))
        ).all()
    messages = []
    for row in rows:
        try:
            _, _, remittance_id = parse_remittance_message_id(row.message_id)
        except ValueError:
            remittance_id = None
        messages.append(
            RemittanceMessage(
                message_id=row.message_id,
                case_id=row.case_id,
                type=row.type,
                # An unparseable id still shows up, on its own, as a message with no money.
                remittance_id=remittance_id or row.message_id,
                received_at=row.received_at,
                outcome=row.outcome,
            )
        )
    return messages


def reconcile(
    outgoing_engine: Engine,
    incoming_engine: Engine,
    now: datetime,
    *,
    case_ids: Collection[str] | None = None,
) -> Report:
    """The reconciliation report over both agencies' databases (optionally a few cases)."""
    outgoing = read_legs(outgoing_engine, "outgoing")
    incoming = read_legs(incoming_engine, "incoming")
    messages = read_remittance_messages(incoming_engine)
    if case_ids is not None:
        wanted = set(case_ids)
        outgoing = [leg for leg in outgoing if leg.case_id in wanted]
        incoming = [leg for leg in incoming if leg.case_id in wanted]
        messages = [m for m in messages if m.case_id in wanted]
    return match_remittances(outgoing, incoming, messages, now)


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every timestamp the services write is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _yuan(fen: int | None) -> str:
    return "" if fen is None else format_fen(fen)


def main(argv: Sequence[str] | None = None) -> int:
    from services.common.config import Settings
    from services.common.db import make_engine

    settings = Settings()
    parser = argparse.ArgumentParser(prog="python -m services.ops.reconciliation")
    parser.add_argument("--outgoing-db", default=settings.database_url("outgoing"))
    parser.add_argument("--incoming-db", default=settings.database_url("incoming"))
    parser.add_argument("--json", action="store_true", help="the whole report as JSON")
    args = parser.parse_args(argv)
    report = reconcile(
        make_engine(args.outgoing_db), make_engine(args.incoming_db), datetime.now(UTC)
    )
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    else:
        rows = report.to_table_rows()
        widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_COLUMNS))]
        for row in rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        print(json.dumps(report.totals))
    return 1 if report.unmatched else 0


if __name__ == "__main__":
    raise SystemExit(main())
