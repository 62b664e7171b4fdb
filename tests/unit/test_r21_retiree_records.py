"""R21 at the outgoing agency's records (SQLite): a retiree on the record is refused an
ordinary transfer; a resettled retiree's payout debits the account once, keeps the
retiree enrolled (not transferred out) and frees the record again (R5)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from contracts.documents import TransferRequested
from domain.matching import main_remittance_id
from services.common.tables import LedgerEntry
from services.outgoing_agency.records import TransferOutRefused
from services.outgoing_agency.tables import EnrolmentRow
from tests.support.retiree_records import (
    BALANCE,
    enrol,
    outgoing_engine,
    records,
    retiree_request,
)
from workflows.outgoing.types import BankPayoutInput, CheckRequestInput, TransferOutInput

pytestmark = pytest.mark.unit

CASE = "TR20261202RETIREE001"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    yield from outgoing_engine(tmp_path)


def row(engine: Engine) -> EnrolmentRow:
    with Session(engine) as session:
        return session.exec(select(EnrolmentRow)).one()


def ledger(engine: Engine) -> list[tuple[str, int]]:
    with Session(engine) as session:
        return [(e.leg, e.amount_fen) for e in session.exec(select(LedgerEntry)).all()]


def payout(request: TransferRequested, balance: int = BALANCE) -> TransferOutInput:
    return TransferOutInput(
        case_id=CASE,
        request=request,
        balance_action="pay_to_bank" if balance else "none",
        balance_rule="R21",
        remittance_id=main_remittance_id(CASE),
        transferred_out_on=date(2026, 12, 2),
        expected_balance_fen=balance,
    )


def test_r21_retiree_on_record_refused_an_ordinary_transfer_and_nothing_claimed(
    engine: Engine,
) -> None:
    enrol(engine)
    facts = records(engine).check_request(
        CheckRequestInput(case_id=CASE, request=retiree_request(resettled_retiree=False))
    )
    assert [(r.code, r.rule, r.soft) for r in facts.refusals] == [
        ("RETIREE_OUTSIDE_TRANSFER", "R21", False)
    ]
    assert row(engine).claimed_by_case is None


@pytest.mark.parametrize("status", ["suspended", "active"])
def test_r21_payout_keeps_the_retiree_enrolled_and_pays_out_once(
    engine: Engine, status: str
) -> None:
    enrol(engine, status=status, suspended_on=None if status == "active" else date(2021, 5, 31))
    agency = records(engine)
    facts = agency.check_request(CheckRequestInput(case_id=CASE, request=retiree_request()))
    assert facts.refusals == []
    assert facts.retired
    assert row(engine).claimed_by_case == CASE

    sheet = agency.transfer_out(payout(retiree_request()))
    again = agency.transfer_out(payout(retiree_request()))  # a retry after the commit
    assert sheet == again
    assert sheet.balance_fen == BALANCE
    after = row(engine)
    # R21: the account is paid out, the enrolment is not transferred out.
    assert (after.status, after.transferred_case_id, after.balance_fen) == (status, None, 0)
    assert ledger(engine) == [("debit_outgoing", BALANCE)]
    assert agency.was_transferred_out(CASE)  # a stop now is too late: the money moved

    paid = agency.pay_to_bank(
        BankPayoutInput(
            case_id=CASE, remittance_id=main_remittance_id(CASE), amount_fen=BALANCE, rule="R21"
        )
    )
    assert paid.account_last4 == "????"  # no case row in this test: no account on file
    assert sorted(ledger(engine)) == [("bank_payout", BALANCE), ("debit_outgoing", BALANCE)]

    # R5: the workflow releases the claim after the payout; the record is free again.
    agency.release_claim(CASE)
    assert row(engine).claimed_by_case is None
    later = agency.check_request(
        CheckRequestInput(case_id="TR20261202RETIREE002", request=retiree_request())
    )
    assert later.refusals == []
    assert later.balance_fen == 0


def test_r21_zero_balance_payout_moves_nothing(engine: Engine) -> None:
    enrol(engine, balance_fen=0)
    agency = records(engine)
    assert (
        agency.check_request(CheckRequestInput(case_id=CASE, request=retiree_request())).refusals
        == []
    )
    sheet = agency.transfer_out(payout(retiree_request(), balance=0))
    assert sheet.balance_fen == 0
    assert ledger(engine) == []
    assert row(engine).status == "suspended"


def test_r21_payout_refused_without_this_case_s_claim(engine: Engine) -> None:
    enrol(engine)
    with pytest.raises(TransferOutRefused, match="not claimed"):
        records(engine).transfer_out(payout(retiree_request()))
    assert row(engine).balance_fen == BALANCE
    assert ledger(engine) == []


def test_r16_ordinary_transfer_still_ends_the_enrolment(engine: Engine) -> None:
    enrol(engine, retired=False)
    agency = records(engine)
    ordinary = retiree_request(resettled_retiree=False, bank_account=None)
    assert agency.check_request(CheckRequestInput(case_id=CASE, request=ordinary)).refusals == []
    agency.transfer_out(
        payout(ordinary).model_copy(update={"balance_action": "remit", "balance_rule": "R18"})
    )
    after = row(engine)
    assert (after.status, after.transferred_case_id, after.balance_fen) == (
        "transferred_out",
        CASE,
        0,
    )
