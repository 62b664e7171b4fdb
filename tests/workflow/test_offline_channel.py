"""The offline channel (R10, R23) as a way to finish a case, never to end it: an offline
switch before transfer-out makes the outgoing agency transfer out by insurance
certificate (参保凭证), which the person brings to the incoming agency; loaded there, the
case goes on as after an information sheet to the credit or the bank payout. Each test
crosses one step and checks that every debit is settled exactly once, by its amount."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from contracts.documents import BankAccount
from tests.support.workflow_fakes import (
    BALANCE_FEN,
    INCOMING_REGION,
    OUTGOING_REGION,
    FakeOutgoingRecords,
    GatedOutgoingActivities,
    InMemoryPlatform,
    refusal_reason,
    running_platform,
    transfer_request,
    wait_until,
)
from workflows.incoming.types import CertificateLoad, WithdrawSignal
from workflows.incoming.workflows import IncomingCaseWorkflow
from workflows.outgoing.workflows import certificate_number
from workflows.types import ClerkAction

pytestmark = pytest.mark.workflow

OFFLINE = ClerkAction(clerk="clerk-3", reason="the person comes to the counter")


def assert_every_debit_settled_once(platform: InMemoryPlatform) -> None:
    """The money invariant: the enrolment was transferred out once, and each debit was
    credited or paid to the bank exactly once, by the amount debited."""
    records = platform.outgoing_records
    assert len(records.transfers) == 1, "one transfer-out, online or by certificate"
    settled: dict[str, list[int]] = {}
    for credit in platform.incoming_records.credits:
        settled.setdefault(credit.remittance_id, []).append(credit.amount_fen)
    for payout in records.payouts:
        settled.setdefault(payout.remittance_id, []).append(payout.amount_fen)
    assert settled == {rid: [amount] for rid, amount in records.debits.items()}


@asynccontextmanager
async def switched_before_transfer_out(
    env: WorkflowEnvironment, client: Client, **options: Any
) -> AsyncIterator[InMemoryPlatform]:
    """A case whose clerk switches it offline while the outgoing agency is still checking
    its records (before transfer-out)."""
    async with running_platform(env, client, gate_outgoing_checks=True, **options) as platform:
        checks = platform.outgoing_activities
        assert isinstance(checks, GatedOutgoingActivities)
        handle = await platform.start_case()
        await checks.entered.wait()
        await handle.signal(IncomingCaseWorkflow.switch_offline, OFFLINE)
        await wait_until(lambda: "withdrawal_requested" in platform.incoming_store.names())
        checks.gate.set()
        yield platform


async def test_r10_r23_offline_switch_before_transfer_out_issues_the_certificate_then_credits_once(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    async with switched_before_transfer_out(time_skipping_env, client) as platform:
        store = platform.incoming_store
        await wait_until(lambda: "insurance_certificate_issued" in store.names())
        # Visible while the person is on the way, with a date and who is awaited.
        view = await platform.view("incoming")
        assert view is not None
        assert view.awaiting is not None
        assert view.status == "offline_certificate_issued"
        assert "insurance certificate" in view.awaiting.what
        assert view.awaiting.by == view.deadlines["certificate_due"]
        assert platform.incoming_records.transfer_ins == []
        await platform.load_certificate()

        assert await platform.results() == ("completed", "completed")
        issued = platform.outgoing_store.one("insurance_certificate_issued")
        number = certificate_number(OUTGOING_REGION, platform.case_id)
        assert issued.detail["certificate_number"] == number
        assert platform.sent("outgoing", "TransferOutCompleted") == []  # no online sheet
        assert [
            e.payload["certificate_number"]
            for e in platform.sent("outgoing", "InsuranceCertificateIssued")
        ] == [number]
        assert platform.sent("outgoing", "WithdrawalAnswered") == []  # answered by the certificate
        names = store.names()
        assert "switched_to_offline_channel" not in names
        for step in (
            "insurance_certificate_loaded",
            "information_sheet_received",
            "balance_credited",
        ):
            assert step in names
        loaded = store.one("insurance_certificate_loaded")
        assert (loaded.detail["clerk"], loaded.detail["certificate_number"]) == ("clerk-5", number)
        assert [t.sheet.balance_fen for t in platform.incoming_records.transfer_ins] == [
            BALANCE_FEN
        ]
        assert [c.amount_fen for c in platform.incoming_records.credits] == [BALANCE_FEN]
        assert_every_debit_settled_once(platform)


async def test_r10_r23_offline_switch_crossing_the_online_sheet_goes_on_online_without_a_second_debit(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    async with running_platform(time_skipping_env, client) as platform:
        platform.hold("outgoing")  # the sheet and the remittance are on their way
        handle = await platform.start_case()
        await wait_until(lambda: "transferred_out" in platform.outgoing_store.names())
        await handle.signal(IncomingCaseWorkflow.switch_offline, OFFLINE)
        await wait_until(lambda: "withdrawal_requested" in platform.incoming_store.names())
        await platform.release("outgoing")

        assert await platform.results() == ("completed", "completed")
        answers = platform.sent("outgoing", "WithdrawalAnswered")
        assert [a.payload["reason_code"] for a in answers] == ["TOO_LATE_TRANSFERRED_OUT"]
        assert platform.certificates.issued(platform.case_id) is None
        assert "insurance_certificate_issued" not in platform.outgoing_store.names()
        assert "insurance_certificate_loaded" not in platform.incoming_store.names()
        assert [c.amount_fen for c in platform.incoming_records.credits] == [BALANCE_FEN]
        assert_every_debit_settled_once(platform)


async def test_r10_a_certificate_loaded_twice_is_taken_once_and_credited_once(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    async with switched_before_transfer_out(time_skipping_env, client) as platform:
        store = platform.incoming_store
        await wait_until(lambda: "insurance_certificate_issued" in store.names())
        await platform.load_certificate("clerk-5")
        await platform.load_certificate("clerk-6")  # a second counter, the same certificate
        await wait_until(lambda: "transfer_in_completed" in store.names())
        await platform.load_certificate("clerk-7")  # and once more, after transfer-in

        assert await platform.results() == ("completed", "completed")
        assert [e.detail["clerk"] for e in store.named("insurance_certificate_loaded")] == [
            "clerk-5"
        ]
        assert len(platform.incoming_records.transfer_ins) == 1
        assert [c.amount_fen for c in platform.incoming_records.credits] == [BALANCE_FEN]
        assert_every_debit_settled_once(platform)


async def test_r10_r13_a_certificate_of_another_case_or_unverified_is_not_loaded(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    async with switched_before_transfer_out(time_skipping_env, client) as platform:
        store = platform.incoming_store
        await wait_until(lambda: "insurance_certificate_issued" in store.names())
        assert platform.incoming is not None
        mine = platform.certificates.issued(platform.case_id)
        assert mine is not None
        # Another case's certificate (the API refuses it; here it reaches the workflow).
        other = mine.model_copy(update={"case_id": "TCANOTHERCASE1"})
        await platform.incoming.signal(
            IncomingCaseWorkflow.load_certificate, CertificateLoad(envelope=other, clerk="c-1")
        )
        # And one the API never verified (a signal sent to Temporal around it).
        platform.verified.unverified_types.add("InsuranceCertificate")
        await platform.load_certificate("clerk-8")
        await wait_until(
            lambda: any(
                e.detail.get("reason_code") == "CERTIFICATE_NOT_VERIFIED"
                for e in store.named("escalated")
            )
        )
        view = await platform.view("incoming")
        assert view is not None
        assert view.status == "offline_certificate_issued"
        assert platform.incoming_records.transfer_ins == []
        assert store.named("insurance_certificate_loaded") == []

        platform.verified.unverified_types.clear()
        await platform.load_certificate("clerk-5")  # the person's own, through the API
        assert await platform.results() == ("completed", "completed")
        assert [e.detail["clerk"] for e in store.named("insurance_certificate_loaded")] == [
            "clerk-5"
        ]
        assert_every_debit_settled_once(platform)


async def test_r16_r23_a_withdrawal_after_the_certificate_was_issued_is_too_late_and_goes_on_to_its_credit(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    async with switched_before_transfer_out(time_skipping_env, client) as platform:
        store = platform.incoming_store
        await wait_until(lambda: "insurance_certificate_issued" in store.names())
        assert platform.incoming is not None
        await platform.incoming.signal(
            IncomingCaseWorkflow.withdraw, WithdrawSignal(reason="changed mind")
        )
        await wait_until(lambda: "withdrawal_refused" in store.names())
        refused = store.one("withdrawal_refused")
        assert refused.detail["reason_code"] == "TOO_LATE_TRANSFERRED_OUT"
        assert not store.events[-1].terminal
        await platform.load_certificate()

        assert await platform.results() == ("completed", "completed")
        # Only the offline switch went to the outgoing agency; the withdrawal did not.
        assert len(platform.sent("incoming", "WithdrawalRequested")) == 1
        assert "application_withdrawn" not in store.names()
        assert [c.amount_fen for c in platform.incoming_records.credits] == [BALANCE_FEN]
        assert_every_debit_settled_once(platform)


async def test_r19_r23_offline_with_an_unconnected_incoming_region_pays_the_balance_to_the_bank(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    records = FakeOutgoingRecords(incoming_connected=False)
    account = BankAccount(
        bank_name="中国工商银行", account_number="6222021234567890123", account_holder="测试参保人"
    )
    async with running_platform(
        time_skipping_env, client, outgoing_records=records, gate_outgoing_checks=True
    ) as platform:
        checks = platform.outgoing_activities
        assert isinstance(checks, GatedOutgoingActivities)
        # The incoming region receives no platform documents; it still sends them.
        platform.connectivity.disconnected.add(INCOMING_REGION)
        today = await platform.today()
        handle = await platform.start_case(request=transfer_request(today, bank_account=account))
        await checks.entered.wait()
        await handle.signal(IncomingCaseWorkflow.switch_offline, OFFLINE)
        await wait_until(lambda: "withdrawal_requested" in platform.incoming_store.names())
        checks.gate.set()
        # R19: paid out at once; the certificate's notice cannot reach the incoming agency.
        await wait_until(lambda: len(records.payouts) == 1)
        issued = platform.outgoing_store.one("insurance_certificate_issued")
        assert issued.detail["incoming_told"] is False
        view = await platform.view("incoming")
        assert view is not None
        assert view.awaiting is not None
        assert view.status == "withdrawal_requested"
        assert "insurance certificate" in view.awaiting.what
        # The person brings the certificate: loaded before its notice could come.
        await platform.load_certificate()
        await wait_until(lambda: "transfer_in_completed" in platform.incoming_store.names())
        platform.connectivity.disconnected.clear()  # the payout notice goes out now

        assert await platform.results() == ("completed", "completed")
        assert [(p.amount_fen, p.rule) for p in records.payouts] == [(BALANCE_FEN, "R19")]
        assert platform.incoming_records.credits == []
        assert platform.sent("outgoing", "BalanceRemitted") == []
        paid = platform.incoming_store.one("balance_paid_to_bank")
        assert (paid.rule, paid.detail["amount_fen"]) == ("R19", BALANCE_FEN)
        assert_every_debit_settled_once(platform)


async def test_r10_r23_an_offline_switch_meeting_a_refusal_transfers_nothing_out(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    """R6-R9: records that refuse the transfer-out cannot issue a certificate either: the
    switch is accepted as a stop, nothing is debited, the enrolment is free again."""
    records = FakeOutgoingRecords(refusals=[[refusal_reason("CONTRIBUTION_ARREARS")]])
    async with switched_before_transfer_out(
        time_skipping_env, client, outgoing_records=records
    ) as platform:
        assert await platform.results() == ("offline_channel", "offline_channel")
        assert records.transfers == []
        assert records.debits == {}
        assert platform.certificates.issued(platform.case_id) is None
        assert set(records.released) == {platform.case_id}
