"""The three invariants of issue 6, checked over both agencies' databases after a test.

I1  every case ends in exactly one terminal state or sits visibly escalated, and the two
    sides agree (a terminal state on one side is matched by the other, or the other side
    shows the case escalated to a clerk);
I2  money is conserved: each debit has exactly one settlement (credit, bank payout or
    return) of the same amount, and each (remittance_id, leg) ledger key is unique;
I3  every rejected input left a reasoned record: an HTTP 4xx with a reason code, a refusal
    with its codes and rule, or a dead-letter row with its reason.

Usage (the API is these three names; everything else is detail)::

    from harness.invariants import assert_invariants, check_invariants, wait_for_invariants

    report = check_invariants(stack, case_ids, http_rejections=responses, dead_letters=ids)
    assert report.ok, report.describe()
    assert_invariants(stack, case_ids)              # the same, raising AssertionError
    await wait_for_invariants(stack, case_ids, timeout=120)  # poll until they hold

Arguments:
    stack            an ``AgencyStack`` (harness/agencies.py), or anything with
                     ``root`` and ``env`` (the databases are the URLs in
                     MEDTRANSFER_{INCOMING,OUTGOING}_DATABASE_URL, else the SQLite files
                     ``<root>/data/<side>-agency.db``).
    case_ids         the cases the test created (others in the same database are ignored).
    http_rejections  HTTP responses the test got and expects to be refusals (each must be
                     a 4xx whose JSON body has ``error`` and ``reasons[].code``).
    dead_letters     message ids the test expects dead-lettered (on either side) with a
                     reason. Every dead-letter row of the given cases must carry a reason.
    peer_regions     outgoing regions the test plays itself (no outgoing database holds
                     their cases or debits, so I1 and I2 look at the incoming side
                     only); default: ``PEER_REGION``.

The report's ``violations`` list says which invariant failed, for which case, and why;
``states`` gives each case's (incoming, outgoing) status and ``reconciliation`` the
remittance report of services/ops/reconciliation.py, which does the I2 matching.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from harness.agencies import PEER_REGION
from services.ops.reconciliation import (
    AMOUNT_MISMATCH,
    MISSING_DEBIT,
    Report,
    reconcile,
)

# Statuses a case workflow ends in (workflows/*/workflows.py, ``terminal=True``).
TERMINAL_STATUSES = frozenset(
    {"completed", "refused", "withdrawn", "cancelled", "balance_returned", "offline_channel"}
)
# incoming terminal status -> outgoing statuses that agree with it (None: the request
# never reached the outgoing agency, e.g. withdrawn while its region was not connected).
AGREEING: dict[str, frozenset[str | None]] = {
    "completed": frozenset({"completed"}),
    "refused": frozenset({"refused"}),
    # A stop reaching an outgoing case that closed refused meanwhile is accepted there
    # (OutgoingStopAnswerWorkflow): both sides say "no transfer".
    "withdrawn": frozenset({"withdrawn", "refused", None}),
    "cancelled": frozenset({"cancelled", "refused", None}),
    "balance_returned": frozenset({"balance_returned"}),
    "offline_channel": frozenset({"offline_channel", "refused", None}),
}
SIDES = ("incoming", "outgoing")


class HasStackFiles(Protocol):
    root: Path
    env: dict[str, str]


@dataclass(frozen=True)
class Violation:
    invariant: str  # I1 | I2 | I3
    case_id: str | None
    detail: str

    def __str__(self) -> str:
        return f"{self.invariant} {self.case_id or '-'}: {self.detail}"


@dataclass
class InvariantReport:
    case_ids: tuple[str, ...]
    violations: list[Violation] = field(default_factory=list)
    # case_id -> (incoming status, outgoing status); None where a side has no row.
    states: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    reconciliation: Report | None = None
    dead_letter_count: int = 0
    http_rejection_count: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations

    def by_invariant(self, name: str) -> list[Violation]:
        return [v for v in self.violations if v.invariant == name]

    def describe(self) -> str:
        head = (
            f"{len(self.case_ids)} case(s), {len(self.violations)} violation(s); "
            f"states: {json.dumps(self.states)[:1500]}"
        )
        return "\n".join([head, *(f"  {v}" for v in self.violations[:50])])


# --- database access ---------------------------------------------------------------------
def database_url(stack: HasStackFiles, side: str) -> str:
    explicit = stack.env.get(f"MEDTRANSFER_{side.upper()}_DATABASE_URL")
    return explicit or f"sqlite:///{stack.root / 'data' / f'{side}-agency.db'}"


@contextmanager
def _engines(stack: HasStackFiles) -> Iterator[dict[str, Engine]]:
    engines = {}
    for side in SIDES:
        url = database_url(stack, side)
        args = {"timeout": 30} if url.startswith("sqlite") else {}
        engines[side] = create_engine(url, connect_args=args)
    try:
        yield engines
    finally:
        for engine in engines.values():
            engine.dispose()


def _rows(engine: Engine, sql: str, **params: Any) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [dict(r._mapping) for r in connection.execute(text(sql), params)]


def _in(case_ids: Collection[str]) -> tuple[str, dict[str, str]]:
    """An ``IN (:c0, :c1, ...)`` clause and its parameters."""
    names = {f"c{i}": case_id for i, case_id in enumerate(case_ids)}
    return "(" + ", ".join(f":{n}" for n in names) + ")", names


# --- the check ---------------------------------------------------------------------------
def check_invariants(
    stack: HasStackFiles,
    case_ids: Iterable[str],
    *,
    http_rejections: Iterable[httpx.Response] = (),
    dead_letters: Iterable[str] = (),
    peer_regions: Collection[str] = (PEER_REGION,),
    strict: bool = False,
) -> InvariantReport:
    """Check I1, I2 and I3 for ``case_ids``; never raises for a violation (see the report).

    ``strict`` (the crossing schedules): an escalation forgives nothing: an amount
    mismatch is a violation even with a clerk, a stuck case or an open clerk exception
    is one, and an enrolment transferred out by more than one case is one (R5)."""
    cases = tuple(dict.fromkeys(case_ids))
    report = InvariantReport(case_ids=cases)
    with _engines(stack) as engines:
        rows = {side: _case_rows(engines[side], cases) for side in SIDES}
        events = {side: _terminal_events(engines[side], cases) for side in SIDES}
        for case_id in cases:
            incoming, outgoing = rows["incoming"].get(case_id), rows["outgoing"].get(case_id)
            report.states[case_id] = (
                incoming["status"] if incoming else None,
                outgoing["status"] if outgoing else None,
            )
            # A case whose outgoing agency the test played has no outgoing row of ours.
            played = incoming is not None and incoming["from_region"] in peer_regions
            report.violations += _check_i1(
                case_id,
                incoming,
                None if played else outgoing,
                {s: events[s].get(case_id, []) for s in SIDES},
                outgoing_played_by_test=played,
            )
        report.violations += _check_i2(
            stack, engines, cases, rows, peer_regions, report, strict=strict
        )
        if strict:
            report.violations += _check_strict(engines, cases, rows)
        report.violations += _check_i3(engines, cases, rows, http_rejections, dead_letters, report)
    return report


def assert_invariants(
    stack: HasStackFiles,
    case_ids: Iterable[str],
    **kwargs: Any,
) -> InvariantReport:
    """:func:`check_invariants`, raising AssertionError with every violation listed."""
    report = check_invariants(stack, case_ids, **kwargs)
    assert report.ok, report.describe()
    return report


async def wait_for_invariants(
    stack: HasStackFiles,
    case_ids: Iterable[str],
    *,
    timeout: float = 120,
    **kwargs: Any,
) -> InvariantReport:
    """Poll until the invariants hold (cases still moving settle), then return the
    report; after ``timeout`` seconds raise AssertionError with the last violations."""
    cases = list(case_ids)
    deadline = time.monotonic() + timeout
    while True:
        report = check_invariants(stack, cases, **kwargs)
        if report.ok:
            return report
        if time.monotonic() > deadline:
            raise AssertionError(f"invariants did not hold within {timeout}s\n{report.describe()}")
        await asyncio.sleep(0.5)


# --- I1: one terminal state, or visibly escalated; both sides agree -----------------------
def _case_rows(engine: Engine, cases: Collection[str]) -> dict[str, dict[str, Any]]:
    if not cases:
        return {}
    clause, params = _in(cases)
    found = _rows(
        engine,
        f"SELECT case_id, status, terminal, escalated, from_region, stuck_since, "
        f"stuck_reason, exception_code FROM case_record "
        f"WHERE case_id IN {clause}",
        **params,
    )
    return {r["case_id"]: r for r in found}


def _terminal_events(engine: Engine, cases: Collection[str]) -> dict[str, list[str]]:
    """Per case, the statuses of its timeline in order, from the first terminal one on."""
    if not cases:
        return {}
    clause, params = _in(cases)
    found = _rows(
        engine,
        f"SELECT case_id, status FROM case_event WHERE case_id IN {clause} "
        f"ORDER BY case_id, sequence",
        **params,
    )
    tails: dict[str, list[str]] = {}
    for row in found:
        tail = tails.get(row["case_id"])
        if tail is not None:
            tail.append(row["status"])
        elif row["status"] in TERMINAL_STATUSES:
            tails[row["case_id"]] = [row["status"]]
    return tails


def _check_i1(
    case_id: str,
    incoming: dict[str, Any] | None,
    outgoing: dict[str, Any] | None,
    tails: dict[str, list[str]],
    *,
    outgoing_played_by_test: bool = False,
) -> list[Violation]:
    found: list[Violation] = []

    def bad(detail: str) -> None:
        found.append(Violation("I1", case_id, detail))

    if incoming is None:
        bad("no incoming case row (an accepted application always has one)")
        return found
    for side, row in (("incoming", incoming), ("outgoing", outgoing)):
        if row is None:
            continue
        status, terminal, escalated = row["status"], bool(row["terminal"]), bool(row["escalated"])
        if terminal and status not in TERMINAL_STATUSES:
            bad(f"{side} is marked terminal in status {status!r}")
        if status in TERMINAL_STATUSES and not terminal:
            bad(f"{side} is in terminal status {status!r} but not marked terminal")
        if not terminal and not escalated:
            bad(f"{side} still in flight: status {status!r}, not escalated")
        tail = tails[side]
        if terminal and not tail:
            bad(f"{side} is terminal but its timeline has no terminal event")
        if tail and set(tail) != {status}:
            bad(f"{side} timeline after its first terminal event: {tail} (row: {status!r})")
    if outgoing_played_by_test:
        return found
    in_status = incoming["status"] if incoming["terminal"] else None
    out_status = outgoing["status"] if outgoing and outgoing["terminal"] else None
    if in_status is not None:
        agreeing = AGREEING.get(in_status, frozenset())
        if outgoing is None:
            if None not in agreeing:
                bad(f"incoming {in_status!r} but the outgoing agency has no case")
        elif out_status is None:
            if not outgoing["escalated"]:
                bad(f"incoming {in_status!r}, outgoing still {outgoing['status']!r}")
        elif out_status not in agreeing:
            bad(f"sides disagree: incoming {in_status!r}, outgoing {out_status!r}")
    elif out_status is not None and not incoming["escalated"]:
        bad(f"outgoing {out_status!r}, incoming still {incoming['status']!r}")
    return found


# --- I2: money conserved ------------------------------------------------------------------
def _check_i2(
    stack: HasStackFiles,
    engines: dict[str, Engine],
    cases: Collection[str],
    rows: dict[str, dict[str, dict[str, Any]]],
    peer_regions: Collection[str],
    report: InvariantReport,
    *,
    strict: bool = False,
) -> list[Violation]:
    found: list[Violation] = []
    # The unique constraint should make this impossible; the checker does not trust it.
    if cases:
        clause, params = _in(cases)
        for side in SIDES:
            for dup in _rows(
                engines[side],
                f"SELECT case_id, remittance_id, leg, COUNT(*) AS n FROM ledger "
                f"WHERE case_id IN {clause} GROUP BY case_id, remittance_id, leg "
                f"HAVING COUNT(*) > 1",
                **params,
            ):
                found.append(
                    Violation(
                        "I2",
                        dup["case_id"],
                        f"{side} ledger key ({dup['remittance_id']}, {dup['leg']}) "
                        f"appears {dup['n']} times",
                    )
                )
    recon = reconcile(engines["outgoing"], engines["incoming"], datetime.now(UTC), case_ids=cases)
    report.reconciliation = recon
    for item in recon.items:
        incoming = rows["incoming"].get(item.case_id) or {}
        missing = list(item.missing)
        if MISSING_DEBIT in missing and incoming.get("from_region") in peer_regions:
            missing.remove(MISSING_DEBIT)  # the test itself played the outgoing agency
        problems = list(item.problems)
        if AMOUNT_MISMATCH in problems and incoming.get("escalated") and not strict:
            problems.remove(AMOUNT_MISMATCH)  # R15: visibly with a clerk, never absorbed
        if missing or problems:
            found.append(
                Violation(
                    "I2",
                    item.case_id,
                    f"remittance {item.remittance_id}: missing {missing or '-'}, "
                    f"problems {problems or '-'} (debit {item.debit_fen}, "
                    f"{item.settlement} {item.settled_fen})",
                )
            )
    return found


def _check_strict(
    engines: dict[str, Engine], cases: Collection[str], rows: dict[str, dict[str, dict[str, Any]]]
) -> list[Violation]:
    found: list[Violation] = []
    for side in SIDES:
        for case_id, row in rows[side].items():
            if row.get("stuck_since") is not None and not row["terminal"]:
                found.append(Violation("I1", case_id, f"{side} stuck: {row.get('stuck_reason')}"))
            if row.get("exception_code"):
                found.append(
                    Violation("I1", case_id, f"{side} clerk exception {row['exception_code']}")
                )
    if cases:
        # R5: one enrolment, one transfer: at most one case debits or transfers it out.
        clause, params = _in(cases)
        for row in _rows(
            engines["outgoing"],
            f"SELECT c.person_key AS person, c.from_region AS region, "
            f"COUNT(DISTINCT l.case_id) AS n FROM ledger l "
            f"JOIN case_record c ON c.case_id = l.case_id "
            f"WHERE l.leg = 'debit_outgoing' AND l.remittance_id = l.case_id || '-main' "
            f"AND l.case_id IN {clause} GROUP BY c.person_key, c.from_region "
            f"HAVING COUNT(DISTINCT l.case_id) > 1",
            **params,
        ):
            found.append(
                Violation(
                    "I2", "-", f"one enrolment in {row['region']} debited by {row['n']} cases"
                )
            )
    return found


# --- I3: every rejection has a reason -----------------------------------------------------
def _check_i3(
    engines: dict[str, Engine],
    cases: Collection[str],
    rows: dict[str, dict[str, dict[str, Any]]],
    http_rejections: Iterable[httpx.Response],
    dead_letters: Iterable[str],
    report: InvariantReport,
) -> list[Violation]:
    found: list[Violation] = []
    for response in http_rejections:
        report.http_rejection_count += 1
        problem = _http_problem(response)
        if problem:
            found.append(Violation("I3", None, problem))

    letters: list[dict[str, Any]] = []
    for side in SIDES:
        for row in _rows(engines[side], "SELECT message_id, case_id, reason FROM dead_letter"):
            letters.append(row | {"side": side})
    report.dead_letter_count = sum(1 for d in letters if d["case_id"] in cases)
    for letter in letters:
        if letter["case_id"] in cases and not (letter["reason"] or "").strip():
            found.append(
                Violation("I3", letter["case_id"], f"{letter['side']} dead letter with no reason")
            )
    reasons = {d["message_id"]: d["reason"] for d in letters if d["message_id"]}
    for message_id in dead_letters:
        if not (reasons.get(message_id) or "").strip():
            found.append(Violation("I3", None, f"message {message_id} has no dead-letter record"))

    # A refused case carries its codes and rule on the refusal event, on both sides.
    for side in SIDES:
        refused = [c for c in cases if (rows[side].get(c) or {}).get("status") == "refused"]
        if not refused:
            continue
        clause, params = _in(refused)
        recorded = {
            r["case_id"]: r
            for r in _rows(
                engines[side],
                f"SELECT case_id, rule, detail FROM case_event WHERE case_id IN {clause} "
                f"AND event IN ('transfer_refused', 'transfer_refused_correctable')",
                **params,
            )
        }
        for case_id in refused:
            event = recorded.get(case_id)
            detail = _json(event["detail"]) if event else {}
            if event is None or not event["rule"] or not detail.get("codes"):
                found.append(Violation("I3", case_id, f"{side} refusal without its codes and rule"))
    return found


def _http_problem(response: httpx.Response) -> str | None:
    where = f"{response.request.method} {response.request.url.path} -> {response.status_code}"
    if not 400 <= response.status_code < 500:
        return f"{where}: a rejection must be a 4xx"
    try:
        body = response.json()
    except ValueError:
        return f"{where}: body is not JSON"
    reasons = body.get("reasons") if isinstance(body, dict) else None
    if not body.get("error") or not reasons or not all(r.get("code") for r in reasons):
        return f"{where}: no error with reason codes in {str(body)[:200]}"
    if "Traceback" in response.text:
        return f"{where}: a stack trace in the body"
    return None


def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    try:
        loaded = json.loads(value or "{}")
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}
