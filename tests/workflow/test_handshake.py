"""The handshake end to end between the two case workflows: happy path, redelivery,
withdrawal and the R15 amount check."""

from __future__ import annotations

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from contracts.documents import BalanceMismatch, TransferOutCompleted
from domain.calendar import build_calendar
from domain.matching import main_remittance_id
from tests.support.workflow_fakes import (
    BALANCE_FEN,
    INCOMING_REGION,
    OUTGOING_REGION,
    FakeOutgoingRecords,
    GatedOutgoingActivities,
    running_platform,
    wait_until,
)
from workflows.clock import china_date
from workflows.incoming.types import MismatchResolution, WithdrawSignal
from workflows.incoming.workflows import IncomingCaseWorkflow

pytestmark = pytest.mark.workflow

INCOMING_HAPPY_EVENTS = [
    "application_accepted",
    "transfer_request_sent",
    "information_sheet_received",
    "transfer_in_completed",
    "balance_credited",
    "case_completed",
]
OUTGOING_HAPPY_EVENTS = [
    "transfer_request_received",
    "transferred_out",
    "balance_settled",
    "transfer_in_confirmed",
    "balance_credit_confirmed",
    "case_completed",
]


async def test_r18_happy_path_cross_province_remits_and_credits_once(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    async with running_platform(time_skipping_env, client) as platform:
        accepted_on = await platform.today()
        await platform.start_case(accepted_on)

        assert await platform.results() == ("completed", "completed")

        incoming, outgoing = platform.incoming_store, platform.outgoing_store
        assert incoming.names() == INCOMING_HAPPY_EVENTS
        assert outgoing.names() == OUTGOING_HAPPY_EVENTS
        assert incoming.sequences == list(range(1, len(incoming.events) + 1))
        path = [e for e in incoming.events if e.event in INCOMING_HAPPY_EVENTS]
        assert [e.status for e in path] == [
            "submitted",
            "awaiting_transfer_out",
            "transfer_in",
            "awaiting_balance",
            "awaiting_balance",
            "completed",
        ]
        assert incoming.events[-1].terminal
        assert outgoing.events[-1].terminal
        assert not any(e.escalated for e in incoming.events + outgoing.events)

        # R12/R14 on the real calendar, from the acceptance day (the day itself not counted).
        calendar = build_calendar([accepted_on.year, accepted_on.year + 1], None)
        expected = {
            "transfer_out_due": calendar.add_working_days(accepted_on, 10).due,
            "total_due": calendar.add_working_days(accepted_on, 15).due,
        }
        assert incoming.events[0].deadlines == expected
        assert outgoing.events[0].deadlines == expected
        sheet_received = incoming.one("information_sheet_received")
        # R13: five working days from the day the sheet arrived.
        assert sheet_received.deadlines["transfer_in_due"] == (
            calendar.add_working_days(china_date(sheet_received.occurred_at), 5).due
        )

        # R18: cross-province, the balance follows the person, credited exactly once.
        sheet = platform.sent("outgoing", "TransferOutCompleted")
        assert len(sheet) == 1
        completed = sheet[0].document_as(TransferOutCompleted)
        assert (completed.balance_action, completed.balance_rule) == ("remit", "R18")
        assert [(c.remittance_id, c.amount_fen) for c in platform.incoming_records.credits] == [
            (main_remittance_id(platform.case_id), BALANCE_FEN)
        ]
        assert [d.to_region for d in platform.publishers["incoming"].documents] == [
            OUTGOING_REGION
        ] * 3
        assert {d.to_region for d in platform.publishers["outgoing"].documents} == {INCOMING_REGION}
        assert len(platform.publishers["incoming"].audit) == len(incoming.events)
        assert platform.late == []  # nothing reached a closed workflow

        # Why: every decision names its rule, the policy versions and a reason in both
        # languages; the continuity assessment (R24-R28) is on the case.
        assert {"R12", "R13", "R14", "R24"} <= set(incoming.decisions())
        assert {"R12", "R14", "R18"} <= set(outgoing.decisions())
        for decision in [*incoming.decisions().values(), *outgoing.decisions().values()]:
            assert "national-" in str(decision.detail["policy_version"])
            assert decision.detail["explanation_en"]
            assert decision.detail["explanation_zh"]
        continuity = incoming.one("continuity_assessed").facts["continuity"]
        assert (
            continuity["total_contribution_months"]
            == incoming.one("information_sheet_received").detail["contribution_months"]
        )

        # R17: the workflows answer "where does this case stand" themselves.
        view = await platform.view("incoming")
        assert view is not None
        assert (view.status, view.awaiting, view.escalated) == ("completed", None, False)
        assert view.deadlines["total_due"] == expected["total_due"]
        outgoing_view = await platform.view("outgoing")
        assert outgoing_view is not None
        assert outgoing_view.status == "completed"


async def test_r15_redelivered_documents_are_processed_once_and_credited_once(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    async with running_platform(time_skipping_env, client) as platform:
        platform.copies = 2  # every platform document arrives twice
        await platform.start_case()

        assert await platform.results() == ("completed", "completed")

        documents = len(platform.publishers["incoming"].documents) + len(
            platform.publishers["outgoing"].documents
        )
        assert platform.deliveries == 2 * documents  # every signal really went twice
        assert len(platform.incoming_records.credits) == 1
        assert len(platform.outgoing_records.transfers) == 1
        assert len(platform.outgoing_records.checks) == 1
        assert platform.incoming_store.names() == INCOMING_HAPPY_EVENTS
        assert platform.outgoing_store.names() == OUTGOING_HAPPY_EVENTS


async def test_r15_amount_mismatch_waits_for_a_clerk_then_credits_once(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    # The sheet says 1,500.00 yuan, the remittance carries the real balance.
    records = FakeOutgoingRecords(sheet_balance_fen=150_000)
    async with running_platform(time_skipping_env, client, outgoing_records=records) as platform:
        handle = await platform.start_case()
        store = platform.incoming_store
        await wait_until(lambda: "balance_mismatch" in store.names())

        view = await platform.view("incoming")
        assert view is not None
        assert view.status == "balance_mismatch"
        assert view.escalated
        assert view.awaiting is not None
        assert "clerk" in view.awaiting.from_party
        assert platform.incoming_records.credits == []
        mismatch = store.one("balance_mismatch")
        assert mismatch.rule == "R15"
        assert (mismatch.detail["expected_fen"], mismatch.detail["received_fen"]) == (
            150_000,
            BALANCE_FEN,
        )
        notice = platform.sent("incoming", "BalanceMismatch")
        assert len(notice) == 1
        assert notice[0].document_as(BalanceMismatch).received_fen == BALANCE_FEN
        await wait_until(lambda: "balance_mismatch_reported" in platform.outgoing_store.names())

        await handle.signal(
            IncomingCaseWorkflow.resolve_mismatch,
            MismatchResolution(decision="credit_received", clerk="clerk-7", note="sheet typo"),
        )

        assert await platform.results() == ("completed", "completed")
        assert [c.amount_fen for c in platform.incoming_records.credits] == [BALANCE_FEN]
        assert store.names()[-4:] == [
            "balance_mismatch",
            "mismatch_resolved",
            "balance_credited",
            "case_completed",
        ]


async def test_r15_r16_balance_returned_after_mismatch_is_restored_not_lost(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    records = FakeOutgoingRecords(sheet_balance_fen=150_000)
    async with running_platform(time_skipping_env, client, outgoing_records=records) as platform:
        handle = await platform.start_case()
        await wait_until(lambda: "balance_mismatch_reported" in platform.outgoing_store.names())
        await handle.signal(
            IncomingCaseWorkflow.resolve_mismatch,
            MismatchResolution(decision="return_to_sender", clerk="clerk-7", note="wrong person"),
        )

        assert await platform.results() == ("balance_returned", "balance_returned")
        assert platform.incoming_records.credits == []
        returned = platform.sent("incoming", "BalanceReturned")
        assert len(returned) == 1
        assert [r.amount_fen for r in records.returns] == [BALANCE_FEN]
        assert platform.outgoing_store.one("escalated").detail["reason_code"] == "BALANCE_RETURNED"
        assert platform.incoming_store.names()[-1] == "case_closed_balance_returned"


async def test_r12_withdrawal_while_awaiting_transfer_out_ends_both_sides(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    async with running_platform(time_skipping_env, client, gate_outgoing_checks=True) as platform:
        checks = platform.outgoing_activities
        assert isinstance(checks, GatedOutgoingActivities)
        handle = await platform.start_case()
        await checks.entered.wait()  # the outgoing agency is still checking its records
        await wait_until(lambda: "transfer_request_sent" in platform.incoming_store.names())
        view = await platform.view("incoming")
        assert view is not None
        assert view.status == "awaiting_transfer_out"

        await handle.signal(IncomingCaseWorkflow.withdraw, WithdrawSignal(reason="stays"))
        await wait_until(lambda: "withdrawal_requested" in platform.incoming_store.names())
        checks.gate.set()

        assert await platform.results() == ("withdrawn", "withdrawn")
        withdrawn = platform.sent("incoming", "WithdrawalRequested")
        assert [e.to_region for e in withdrawn] == [OUTGOING_REGION]
        answers = platform.sent("outgoing", "WithdrawalAnswered")
        assert [a.payload["reason_code"] for a in answers] == ["ACCEPTED_BEFORE_TRANSFER_OUT"]
        assert platform.outgoing_records.transfers == []  # nothing transferred out
        assert platform.incoming_store.events[-1].event == "application_withdrawn"
        assert platform.incoming_store.events[-1].terminal
        assert platform.outgoing_store.events[-1].event == "application_withdrawn"
        assert platform.incoming_records.credits == []
