"""The remittance reconciliation's matching rules (pure: plain lists in, a report out)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from services.common.metrics import (
    TimelinePoint,
    histogram_buckets,
    stage_durations,
    worker_metrics_port,
)
from services.ops.reconciliation import (
    TABLE_COLUMNS,
    Leg,
    RemittanceMessage,
    match_remittances,
    parse_remittance_message_id,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CASE = "TR-620800-610100-0001"
MAIN = f"{CASE}-main"


def leg(kind: str, amount: int, *, rid: str = MAIN, hours_ago: float = 1, case: str = CASE) -> Leg:
    side = "incoming" if kind == "credit_incoming" else "outgoing"
    return Leg(side, case, rid, kind, amount, NOW - timedelta(hours=hours_ago))


def message(
    type_: str = "BalanceRemitted", *, step: str | None = None, case: str = CASE
) -> RemittanceMessage:
    step = step or f"balance-{case}-main"
    message_id = f"{case}/{type_}/{step}"
    _, _, rid = parse_remittance_message_id(message_id)
    assert rid is not None
    return RemittanceMessage(message_id, case, type_, rid, NOW - timedelta(minutes=30))


def split(legs: list[Leg]) -> tuple[list[Leg], list[Leg]]:
    return [x for x in legs if x.side == "outgoing"], [x for x in legs if x.side == "incoming"]


def test_r18_debit_credit_and_message_are_matched() -> None:
    outgoing, incoming = split([leg("debit_outgoing", 523_400), leg("credit_incoming", 523_400)])
    report = match_remittances(outgoing, incoming, [message()], NOW)
    [item] = report.items
    assert item.status == "matched"
    assert item.missing == ()
    assert item.problems == ()
    assert item.settlement == "credit_incoming"
    assert item.message_type == "BalanceRemitted"
    assert report.unmatched == []
    assert report.totals["debited_fen"] == report.totals["credited_fen"] == 523_400
    assert report.totals["outstanding_fen"] == 0


def test_r16_debit_without_credit_is_unmatched_with_age() -> None:
    report = match_remittances([leg("debit_outgoing", 100_000, hours_ago=50)], [], [message()], NOW)
    [item] = report.unmatched
    assert item.status == "unmatched"
    assert item.missing == ("settlement",)
    # The age runs from the first leg (the debit), not from the message.
    assert item.age_seconds == pytest.approx(50 * 3600)
    assert report.totals["outstanding_fen"] == 100_000
    assert report.totals["unmatched_debit_fen"] == 100_000


def test_r18_remittance_without_message_is_unmatched() -> None:
    outgoing, incoming = split([leg("debit_outgoing", 1_000), leg("credit_incoming", 1_000)])
    [item] = match_remittances(outgoing, incoming, [], NOW).unmatched
    assert item.missing == ("message",)


def test_r16_credit_without_debit_is_unmatched() -> None:
    [item] = match_remittances([], [leg("credit_incoming", 1_000)], [message()], NOW).unmatched
    assert item.missing == ("debit",)
    assert item.debit_fen is None


def test_message_alone_is_unmatched_with_its_own_age() -> None:
    [item] = match_remittances([], [], [message()], NOW).unmatched
    assert item.missing == ("debit", "settlement")
    assert item.age_seconds == pytest.approx(30 * 60)


def test_r15_amount_difference_flagged() -> None:
    outgoing, incoming = split([leg("debit_outgoing", 523_400), leg("credit_incoming", 523_300)])
    report = match_remittances(outgoing, incoming, [message()], NOW)
    [item] = report.unmatched
    assert item.status == "unmatched"
    assert item.missing == ()
    assert item.amount_mismatch
    assert item.difference_fen == -100
    assert report.totals["outstanding_fen"] == 100


def test_r19_bank_payout_matches_debit() -> None:
    legs = [leg("debit_outgoing", 450_000), leg("bank_payout", 450_000)]
    report = match_remittances(legs, [], [message("BalancePaidToBank")], NOW)
    [item] = report.items
    assert item.matched
    assert item.settlement == "bank_payout"
    assert item.message_type == "BalancePaidToBank"
    assert report.totals["paid_to_bank_fen"] == 450_000
    assert report.totals["credited_fen"] == 0
    assert report.totals["outstanding_fen"] == 0


def test_r22_bank_payout_with_other_amount_flagged() -> None:
    legs = [leg("debit_outgoing", 310_000), leg("bank_payout", 300_000)]
    [item] = match_remittances(legs, [], [message("BalancePaidToBank")], NOW).unmatched
    assert item.problems == ("amount_mismatch",)
    assert item.difference_fen == -10_000


def test_r15_returned_to_outgoing_settles_remittance() -> None:
    legs = [leg("debit_outgoing", 200_000), leg("returned_to_outgoing", 200_000)]
    report = match_remittances(legs, [], [message()], NOW)
    [item] = report.items
    assert item.matched
    assert item.settlement == "returned_to_outgoing"
    assert report.totals["returned_fen"] == 200_000
    assert report.totals["outstanding_fen"] == 0


def test_r16_credited_and_returned_is_settled_twice() -> None:
    outgoing, incoming = split(
        [
            leg("debit_outgoing", 200_000),
            leg("returned_to_outgoing", 200_000),
            leg("credit_incoming", 200_000),
        ]
    )
    [item] = match_remittances(outgoing, incoming, [message()], NOW).unmatched
    assert item.problems == ("settled_more_than_once",)


def test_r16_residual_remittance_matched() -> None:
    rid = f"{CASE}-residual-LC-7"
    outgoing, incoming = split(
        [
            leg("debit_outgoing", 523_400),
            leg("credit_incoming", 523_400),
            leg("late_contribution", 12_000, rid=rid),
            leg("debit_outgoing", 12_000, rid=rid),
            leg("credit_incoming", 12_000, rid=rid),
        ]
    )
    messages = [message(), message(step="residual-LC-7")]
    report = match_remittances(outgoing, incoming, messages, NOW)
    assert [i.remittance_id for i in report.items] == sorted([MAIN, rid])
    residual = next(i for i in report.items if i.remittance_id == rid)
    assert residual.residual
    assert residual.matched
    assert residual.late_contribution_fen == 12_000
    assert residual.message_id == f"{CASE}/BalanceRemitted/residual-LC-7"
    assert not next(i for i in report.items if i.remittance_id == MAIN).residual
    assert report.unmatched == []
    assert report.totals["debited_fen"] == 535_400
    assert report.totals["late_contribution_fen"] == 12_000


def test_r16_residual_debited_but_not_credited_is_unmatched() -> None:
    rid = f"{CASE}-residual-LC-8"
    legs = [leg("late_contribution", 500, rid=rid), leg("debit_outgoing", 500, rid=rid)]
    [item] = match_remittances(legs, [], [message(step="residual-LC-8")], NOW).unmatched
    assert item.residual
    assert item.missing == ("settlement",)


def test_unmatched_sorted_by_age_desc() -> None:
    legs = [
        leg("debit_outgoing", 1, rid="a-main", case="a", hours_ago=2),
        leg("debit_outgoing", 1, rid="b-main", case="b", hours_ago=200),
        leg("debit_outgoing", 1, rid="c-main", case="c", hours_ago=20),
    ]
    report = match_remittances(legs, [], [], NOW)
    assert [i.remittance_id for i in report.unmatched] == ["b-main", "c-main", "a-main"]


def test_naive_timestamps_from_sqlite_are_utc() -> None:
    naive = Leg("outgoing", CASE, MAIN, "debit_outgoing", 1, datetime(2026, 11, 20, 11, 0))
    [item] = match_remittances([naive], [], [], NOW).items
    assert item.age_seconds == pytest.approx(3600)


def test_message_id_parsing() -> None:
    assert parse_remittance_message_id(f"{CASE}/BalanceRemitted/balance-{MAIN}") == (
        CASE,
        "BalanceRemitted",
        MAIN,
    )
    assert parse_remittance_message_id(f"{CASE}/BalanceRemitted/residual-LC-1") == (
        CASE,
        "BalanceRemitted",
        f"{CASE}-residual-LC-1",
    )
    assert parse_remittance_message_id(f"{CASE}/Receipt/receipt-x") == (CASE, "Receipt", None)
    with pytest.raises(ValueError, match="not a platform message id"):
        parse_remittance_message_id("no-slashes")


def test_report_json_and_table_rows() -> None:
    outgoing, incoming = split(
        [
            leg("debit_outgoing", 523_400),
            leg("credit_incoming", 523_400),
            leg("debit_outgoing", 99, rid="z-main", case="z", hours_ago=3),
        ]
    )
    report = match_remittances(outgoing, incoming, [message()], NOW)
    document = json.loads(json.dumps(report.to_json()))
    assert document["unmatched"] == ["z-main"]
    assert document["totals"]["remittances"] == 2
    assert {i["status"] for i in document["items"]} == {"matched", "unmatched"}
    rows = report.to_table_rows()
    assert rows[0] == TABLE_COLUMNS
    assert rows[1][0] == "z-main"  # unmatched first
    assert rows[1][5] == "0.99"
    assert rows[2][5] == "5234.00"
    assert all(len(row) == len(TABLE_COLUMNS) for row in rows)
    assert report.to_table_rows(header=False) == rows[1:]


def test_stage_durations_from_consecutive_events() -> None:
    t0 = datetime(2026, 11, 1, 8, 0)
    points = [
        TimelinePoint("x", 1, "submitted", t0),
        TimelinePoint("x", 2, "awaiting_transfer_out", t0 + timedelta(seconds=5)),
        TimelinePoint("x", 3, "awaiting_transfer_out", t0 + timedelta(hours=1)),
        TimelinePoint("x", 4, "transfer_in", t0 + timedelta(hours=2)),
        # A case whose start is outside the window: its first stage is not counted.
        TimelinePoint("y", 7, "awaiting_balance", t0),
        TimelinePoint("y", 8, "completed", t0 + timedelta(hours=5)),
    ]
    durations = stage_durations(reversed(points))
    assert durations == {
        "submitted": [5.0],
        "awaiting_transfer_out": [2 * 3600 - 5.0],
    }
    buckets = histogram_buckets([5.0, 7000.0])
    assert buckets[0] == ("1.0", 0.0)
    assert ("10.0", 1.0) in buckets
    assert buckets[-1] == ("+Inf", 2.0)


def test_worker_metrics_port_from_environment() -> None:
    assert worker_metrics_port("incoming", {}) is None
    assert worker_metrics_port("incoming", {"MEDTRANSFER_WORKER_METRICS_PORT": "9301"}) == 9301
    both = {
        "MEDTRANSFER_WORKER_METRICS_PORT": "9301",
        "MEDTRANSFER_OUTGOING_WORKER_METRICS_PORT": "9302",
    }
    assert worker_metrics_port("outgoing", both) == 9302
    assert worker_metrics_port("incoming", both) == 9301
