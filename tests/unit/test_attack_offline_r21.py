"""Attacks on the resettled-retiree payout (R21) at the outgoing records (SQLite) and on the
offline channel's incoming counter (R10/R23). Each FINDING test fails on the code as it
stands and names the invariant it breaks; each GUARD test passes and keeps a crossing
that held closed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from contracts.documents import (
    BankAccount,
    EnrolmentPeriod,
    InformationSheet,
    InsuranceCertificate,
    PersonIdentity,
    TransferRequested,
)
from contracts.envelope import Envelope
from domain.balance import BalancePolicy, decide_balance
from domain.matching import main_remittance_id
from services.common.tables import CaseRow, LedgerEntry, SentDocumentRow
from services.incoming_agency.applications import new_case_row
from services.outgoing_agency.records import OutgoingRecordsSql
from services.outgoing_agency.tables import EnrolmentRow
from tests.support.inprocess import InProcessAgency, inprocess_app, kafka_memory
from tests.support.retiree_records import (
    BALANCE,
    BANK,
    enrol,
    outgoing_engine,
    records,
    retiree_request,
)
from workflows.outgoing.types import BankPayoutInput, CheckRequestInput, TransferOutInput
from workflows.outgoing.workflows import certificate_number

pytestmark = pytest.mark.unit

CASE = "TR20261202ATTACK0001"


# --- the outgoing records (SQLite) ------------------------------------------------------------
@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    yield from outgoing_engine(tmp_path)


def row(engine: Engine) -> EnrolmentRow:
    with Session(engine) as session:
        return session.exec(select(EnrolmentRow)).one()


def ledger(engine: Engine) -> list[tuple[str, int]]:
    with Session(engine) as session:
        return [(e.leg, e.amount_fen) for e in session.exec(select(LedgerEntry)).all()]


def case_row(engine: Engine, request: TransferRequested) -> None:
    """The outgoing view of the case as record_case keeps it (the application, for the
    bank payout's account)."""
    now = datetime.now(UTC)
    with Session(engine) as session:
        session.add(
            CaseRow(
                case_id=CASE,
                status="checking",
                status_since=now,
                from_region=request.from_region,
                to_region=request.to_region,
                from_scheme=request.from_scheme,
                to_scheme=request.to_scheme,
                person_key="fingerprint",
                id_masked="110105********002X",
                application=request.model_dump(mode="json"),
                created_at=now,
                updated_at=now,
            )
        )
        session.commit()


def as_the_workflow_does(
    agency: OutgoingRecordsSql, request: TransferRequested
) -> tuple[list[str], TransferOutInput | None]:
    """check_transfer_out, _decide and _transfer_out of OutgoingCaseWorkflow, in order."""
    case_row(agency.engine, request)
    facts = agency.check_request(CheckRequestInput(case_id=CASE, request=request))
    if facts.refusals:
        return [r.code for r in facts.refusals], None
    decision = decide_balance(
        from_region=request.from_region,
        to_region=request.to_region,
        from_scheme=request.from_scheme,
        to_scheme=request.to_scheme,
        balance_fen=facts.balance_fen,
        resettled_retiree=request.resettled_retiree and facts.retired,
        incoming_connected=True,
        has_bank_account=request.bank_account is not None,
        policy=BalancePolicy(),
    )
    step = TransferOutInput(
        case_id=CASE,
        request=request,
        balance_action=decision.action,
        balance_rule=decision.rule,
        remittance_id=main_remittance_id(CASE),
        transferred_out_on=date(2026, 12, 2),
        expected_balance_fen=facts.balance_fen,
    )
    agency.transfer_out(step)
    return [], step


def test_attack_r21_finding_resident_scheme_retiree_sheet_sent_but_enrolment_never_ended(
    engine: Engine,
) -> None:
    """FINDING (I1, R5/R6): a retired resident-scheme person whose application ticks
    resettled_retiree (the incoming acceptance checks R21 only for the employee scheme)
    passes check_transfer_out with an ACTIVE enrolment (payout_only skips R6), the balance
    decision is an ordinary R12 one (R21 needs the employee scheme), yet transfer_out takes
    the payout branch on ``req.resettled_retiree and row.retired``: the sheet goes out as a
    transfer (the incoming side transfers the person in), the enrolment here stays active
    and claimed by the case for ever (the workflow releases only for rule R21), and
    was_transferred_out says False (a later stop would be answered "accepted")."""
    enrol(engine, scheme="resident", status="active", suspended_on=None, balance_fen=0)
    request = retiree_request(from_scheme="resident", to_scheme="resident", bank_account=None)
    refusals, step = as_the_workflow_does(records(engine), request)
    if step is None:  # refused (a fix): nothing claimed
        assert row(engine).claimed_by_case is None or refusals
        return
    if step.balance_rule != "R21":  # an ordinary transfer: the enrolment must end here
        after = row(engine)
        assert (after.status, after.transferred_case_id) == ("transferred_out", CASE), (
            f"rule {step.balance_rule}: sheet sent, enrolment {after.status}, "
            f"claimed by {after.claimed_by_case}"
        )
        assert records(engine).was_transferred_out(CASE)


def test_attack_r21_finding_zero_balance_payout_is_not_transferred_out_for_a_late_stop(
    engine: Engine,
) -> None:
    """FINDING (I1/I3): an R21 payout of an empty account sends the sheet (rule R21) and
    closes the outgoing case at once, but leaves neither transferred_case_id nor a ledger
    debit, so was_transferred_out is False: a stop reaching the closed case is answered by
    OutgoingStopAnswerWorkflow "accepted: nothing was transferred out; the case ends here"
    while the incoming case goes on with the sheet (STOP_ACCEPTED_AFTER_SHEET)."""
    enrol(engine, balance_fen=0)
    agency = records(engine)
    refusals, step = as_the_workflow_does(agency, retiree_request())
    assert refusals == []
    assert step is not None
    assert (step.balance_action, step.balance_rule) == ("none", "R21")
    # The workflow delivers the sheet (kept in sent_document until its receipt), then
    # releases the claim after the payout notice.
    with Session(engine) as session:
        now = datetime.now(UTC)
        session.add(
            SentDocumentRow(
                message_id=f"{CASE}-sheet",
                case_id=CASE,
                type="TransferOutCompleted",
                to_region="110000",
                envelope={},
                first_sent_at=now,
                last_sent_at=now,
            )
        )
        session.commit()
    agency.release_claim(CASE)
    assert agency.was_transferred_out(CASE), "the R21 sheet went out: a stop now is too late"


@pytest.mark.parametrize("account", [None, BANK], ids=["no_account", "guard_with_account"])
def test_attack_r21_finding_payout_without_a_bank_account_pays_to_no_account(
    engine: Engine, account: BankAccount | None
) -> None:
    """FINDING (I2, R21): a resettled-retiree request that carries no bank account (trust
    nothing from the incoming agency: a correction, an older client, a bug) is not refused
    by check_transfer_out; decide_balance says pay_to_bank with awaiting_bank_account, which
    no workflow reads; the account is debited and "paid" to account ????."""
    enrol(engine)
    agency = records(engine)
    refusals, step = as_the_workflow_does(agency, retiree_request(bank_account=account))
    if step is None:
        assert refusals  # refused with a reason (a fix): nothing debited
        assert ledger(engine) == []
        return
    paid = agency.pay_to_bank(
        BankPayoutInput(
            case_id=CASE,
            remittance_id=main_remittance_id(CASE),
            amount_fen=BALANCE,
            rule=step.balance_rule,
        )
    )
    assert paid.account_last4 != "????", f"debited {ledger(engine)} and paid to no account"


def test_attack_r21_guard_payout_retried_debits_and_pays_once(engine: Engine) -> None:
    """GUARD (I2): Temporal runs activities at least once: transfer_out and pay_to_bank
    each retried after their commit debit once and pay once."""
    enrol(engine)
    agency = records(engine)
    refusals, step = as_the_workflow_does(agency, retiree_request())
    assert refusals == []
    assert step is not None
    agency.transfer_out(step)
    payout = BankPayoutInput(
        case_id=CASE, remittance_id=main_remittance_id(CASE), amount_fen=BALANCE, rule="R21"
    )
    agency.pay_to_bank(payout)
    agency.pay_to_bank(payout)
    assert sorted(ledger(engine)) == [("bank_payout", BALANCE), ("debit_outgoing", BALANCE)]
    agency.release_claim(CASE)
    agency.release_claim(CASE)
    assert row(engine).claimed_by_case is None
    assert row(engine).status == "suspended"


def test_attack_r21_guard_ticked_but_not_retired_on_record_is_refused_with_a_reason(
    engine: Engine,
) -> None:
    """GUARD (I3): the applicant's checkbox is not trusted: not retired on the record is a
    soft refusal RETIREE_NOT_ON_RECORD; nothing is claimed or debited."""
    enrol(engine, retired=False)
    refusals, step = as_the_workflow_does(records(engine), retiree_request())
    assert step is None
    assert "RETIREE_NOT_ON_RECORD" in refusals
    assert row(engine).claimed_by_case is None
    assert ledger(engine) == []


# --- the incoming counter (in-process app) -------------------------------------------------
OUTGOING, INCOMING = "620800", "610100"
CLERK = {"X-API-Key": "demo-clerk"}
PERSON_ID = "11010519491231002X"


def _request() -> TransferRequested:
    return TransferRequested(
        person=PersonIdentity(id_number=PERSON_ID, name="测试参保人"),
        from_region=OUTGOING,
        to_region=INCOMING,
        from_scheme="employee",
        to_scheme="employee",
        reason="new job",
        applied_on=date(2026, 11, 30),
        channel="online",
        incoming_agency=f"medical insurance agency of region {INCOMING}",
    )


def _certificate(case: str, *, from_region: str = OUTGOING) -> Envelope:
    sheet = InformationSheet(
        person=PersonIdentity(id_number=PERSON_ID, name="测试参保人"),
        from_region=OUTGOING,
        scheme="employee",
        enrolment_periods=[
            EnrolmentPeriod(
                region=OUTGOING,
                scheme="employee",
                start=date(2018, 7, 1),
                end=date(2026, 10, 31),
                contribution_months=96,
            )
        ],
        total_contribution_months=96,
        balance_fen=123_456,
        transferred_out_on=date(2026, 12, 2),
        issued_by_region=OUTGOING,
    )
    document = InsuranceCertificate(
        certificate_number=certificate_number(OUTGOING, case),
        issued_on=date(2026, 12, 2),
        to_region=INCOMING,
        info_sheet=sheet,
        balance_action="remit",
        balance_rule="R18",
    )
    return Envelope.wrap(
        document,
        case_id=case,
        step="certificate",
        from_region=from_region,
        to_region=INCOMING,
        sent_at=datetime.now(UTC),
    )


@pytest.fixture
def agencies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[InProcessAgency, InProcessAgency]:
    return inprocess_app("outgoing", tmp_path, monkeypatch), inprocess_app(
        "incoming", tmp_path, monkeypatch
    )


@asynccontextmanager
async def http(agency: InProcessAgency) -> AsyncIterator[httpx.AsyncClient]:
    async with kafka_memory(agency):
        transport = httpx.ASGITransport(app=agency.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


def seed_incoming(agency: InProcessAgency, case: str, status: str, **changes: Any) -> str:
    row = new_case_row(_request(), None)
    row.case_id, row.status, row.open_key = case, status, None
    row.facts = {**(row.facts or {}), "stop_kind": "offline_channel"}
    for name, value in changes.items():
        setattr(row, name, value)
    agency.service.repository.insert_case(row)
    agency.temporal.running.add(f"incoming-{row.case_id}")
    return row.case_id


async def _load(agency: InProcessAgency, case: str, document: Envelope) -> httpx.Response:
    async with http(agency) as client:
        return await client.post(
            f"/v1/cases/{case}/offline-certificate",
            json={"certificate": document.model_dump(mode="json")},
            headers=CLERK,
        )


def _tampered(envelope: Envelope, **payload: Any) -> Envelope:
    return envelope.model_copy(update={"payload": {**envelope.payload, **payload}})


@pytest.mark.parametrize(
    "tamper",
    ["balance_action_changed", "amount_changed", "another_regions_key", "signed_by_incoming"],
)
async def test_attack_r10_guard_a_changed_or_foreign_signed_certificate_is_refused(
    agencies: tuple[InProcessAgency, InProcessAgency], tamper: str
) -> None:
    """GUARD (I2/I3): the amount or balance action changed after signing, a certificate of
    this case signed with another region's key, or one the incoming region signed itself:
    422 with a code, nothing signalled, nothing recorded as verified."""
    outgoing, incoming = agencies
    case = seed_incoming(incoming, "TR20261202ATTACKC01", "offline_certificate_issued")
    genuine = outgoing.service.signer.sign(_certificate(case))
    sheet = dict(genuine.payload["info_sheet"])
    document = {
        "balance_action_changed": lambda: _tampered(
            genuine, balance_action="pay_to_bank", balance_rule="R19"
        ),
        "amount_changed": lambda: _tampered(genuine, info_sheet=sheet | {"balance_fen": 999_999}),
        "another_regions_key": lambda: incoming.service.signer.sign(
            _certificate(case, from_region=INCOMING)
        ).model_copy(update={"from_region": OUTGOING}),
        "signed_by_incoming": lambda: incoming.service.signer.sign(
            _certificate(case, from_region=INCOMING)
        ),
    }[tamper]()
    answer = await _load(incoming, case, document)
    assert answer.status_code == 422, answer.text
    assert answer.json()["reasons"][0]["code"] in (
        "CERTIFICATE_NOT_VERIFIED",
        "CERTIFICATE_REGION_DOES_NOT_MATCH_CASE",
    )
    assert incoming.temporal.signals == []
    assert not incoming.service.repository.has_verified(case, "InsuranceCertificate", {})


async def test_attack_r10_guard_a_certificate_replayed_after_the_case_completed_is_refused(
    agencies: tuple[InProcessAgency, InProcessAgency],
) -> None:
    """GUARD (I1): the person's genuine certificate brought again after the case closed."""
    outgoing, incoming = agencies
    case = seed_incoming(incoming, "TR20261202ATTACKC02", "completed", terminal=True)
    answer = await _load(incoming, case, outgoing.service.signer.sign(_certificate(case)))
    assert answer.status_code == 409, answer.text
    assert answer.json()["reasons"][0]["code"] == "NOT_AWAITING_CERTIFICATE"
    assert incoming.temporal.signals == []
