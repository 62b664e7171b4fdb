"""Steps that cross: a withdrawal, cancellation or offline switch is a request the
outgoing agency answers, accepted before transfer-out, refused as too late after it; the
incoming case never closes while a debit for it may exist (R16)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from contracts.documents import BalanceRemitted
from contracts.envelope import Envelope
from domain.matching import main_remittance_id
from tests.support.workflow_fakes import (
    BALANCE_FEN,
    INCOMING_REGION,
    OUTGOING_REGION,
    FakeOutgoingRecords,
    GatedOutgoingActivities,
    refusal_reason,
    running_platform,
    wait_until,
)
from workflows.incoming.types import WithdrawSignal
from workflows.incoming.workflows import IncomingCaseWorkflow
from workflows.types import ClerkAction

pytestmark = pytest.mark.workflow


@pytest.mark.parametrize("answer_first", [False, True], ids=["sheet-first", "answer-first"])
async def test_r16_withdrawal_after_transfer_out_is_refused_and_the_case_goes_on_to_its_credit(
    time_skipping_env: WorkflowEnvironment, client: Client, answer_first: bool
) -> None:
    async with running_platform(time_skipping_env, client) as platform:
        # The sheet and the remittance are on their way (held by the platform) when the
        # person withdraws: the outgoing account is already debited.
        platform.hold(
            "outgoing", None if not answer_first else ["TransferOutCompleted", "BalanceRemitted"]
        )
        handle = await platform.start_case()
        await wait_until(lambda: "transferred_out" in platform.outgoing_store.names())
        await handle.signal(IncomingCaseWorkflow.withdraw, WithdrawSignal(reason="changed mind"))
        await wait_until(lambda: "withdrawal_requested" in platform.incoming_store.names())
        if answer_first:
            await wait_until(lambda: "withdrawal_refused" in platform.incoming_store.names())
            assert not platform.incoming_store.events[-1].terminal
        else:
            await wait_until(lambda: platform.sent("outgoing", "WithdrawalAnswered") != [])
        await platform.release("outgoing")

        assert await platform.results() == ("completed", "completed")
        answers = platform.sent("outgoing", "WithdrawalAnswered")
        assert [a.payload["reason_code"] for a in answers] == ["TOO_LATE_TRANSFERRED_OUT"]
        names = platform.incoming_store.names()
        assert "withdrawal_refused" in names
        assert "application_withdrawn" not in names
        assert [c.amount_fen for c in platform.incoming_records.credits] == [BALANCE_FEN]
        assert "withdrawal_refused_too_late" in platform.outgoing_store.names()


async def test_r16_withdrawal_while_the_region_is_not_connected_takes_effect_at_once(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    async with running_platform(time_skipping_env, client) as platform:
        platform.connectivity.disconnected.add(OUTGOING_REGION)
        handle = await platform.start_case()
        store = platform.incoming_store
        await wait_until(lambda: "waiting_for_region_connection" in store.names())
        await handle.signal(IncomingCaseWorkflow.withdraw, WithdrawSignal(reason="stays"))
        assert await handle.result() == "withdrawn"
        withdrawn = store.one("application_withdrawn")
        assert withdrawn.terminal
        assert withdrawn.detail["before_request"] is True
        # Nothing was ever sent, so nothing can be debited and nobody needs telling.
        assert platform.sent("incoming", "TransferRequested") == []
        assert platform.sent("incoming", "WithdrawalRequested") == []
        platform.connectivity.disconnected.clear()


async def test_r16_withdrawal_in_the_correction_window_is_answered_and_frees_the_enrolment(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    records = FakeOutgoingRecords(refusals=[[refusal_reason("CONTRIBUTION_ARREARS")]])
    async with running_platform(time_skipping_env, client, outgoing_records=records) as platform:
        handle = await platform.start_case()
        await wait_until(lambda: "transfer_refused_correctable" in platform.incoming_store.names())
        await handle.signal(IncomingCaseWorkflow.withdraw, WithdrawSignal(reason="not now"))
        assert await platform.results() == ("withdrawn", "withdrawn")
        assert len(platform.sent("incoming", "WithdrawalRequested")) == 1
        assert records.transfers == []
        assert set(records.released) == {platform.case_id}  # R5: the enrolment is free again


async def test_r23_offline_switch_while_awaiting_the_sheet_is_a_request_too(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    async with running_platform(time_skipping_env, client) as platform:
        platform.hold("outgoing")
        handle = await platform.start_case()
        await wait_until(lambda: "transferred_out" in platform.outgoing_store.names())
        await handle.signal(
            IncomingCaseWorkflow.switch_offline, ClerkAction(clerk="clerk-3", reason="paper")
        )
        await wait_until(lambda: "withdrawal_requested" in platform.incoming_store.names())
        await platform.release("outgoing")
        # Transferred out already: the offline switch is refused, the case is credited.
        assert await platform.results() == ("completed", "completed")
        assert [c.amount_fen for c in platform.incoming_records.credits] == [BALANCE_FEN]


async def test_r16_second_stop_after_a_refusal_is_not_asked_again(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    async with running_platform(time_skipping_env, client) as platform:
        platform.hold("outgoing", ["TransferOutCompleted", "BalanceRemitted"])
        handle = await platform.start_case()
        await wait_until(lambda: "transferred_out" in platform.outgoing_store.names())
        await handle.signal(IncomingCaseWorkflow.withdraw, WithdrawSignal(reason="first"))
        await wait_until(lambda: "withdrawal_refused" in platform.incoming_store.names())
        await handle.signal(IncomingCaseWorkflow.withdraw, WithdrawSignal(reason="again"))
        await platform.release("outgoing")
        assert await platform.results() == ("completed", "completed")
        assert len(platform.sent("incoming", "WithdrawalRequested")) == 1


@pytest.mark.parametrize(
    ("code", "results"),
    [
        ("PERSON_UNKNOWN", ("refused", "refused")),  # hard: the refusal ends both sides
        ("CONTRIBUTION_ARREARS", ("withdrawn", "withdrawn")),  # soft: the stop is accepted
    ],
)
async def test_r16_a_refusal_crossing_the_stop_ends_both_sides_alike(
    time_skipping_env: WorkflowEnvironment, client: Client, code: str, results: tuple[str, str]
) -> None:
    records = FakeOutgoingRecords(refusals=[[refusal_reason(code)]])
    async with running_platform(
        time_skipping_env, client, outgoing_records=records, gate_outgoing_checks=True
    ) as platform:
        checks = platform.outgoing_activities
        assert isinstance(checks, GatedOutgoingActivities)
        handle = await platform.start_case()
        await checks.entered.wait()  # the outgoing agency is checking when the stop comes
        await handle.signal(IncomingCaseWorkflow.withdraw, WithdrawSignal(reason="stays"))
        await wait_until(lambda: "withdrawal_requested" in platform.incoming_store.names())
        checks.gate.set()
        assert await platform.results() == results
        assert records.transfers == []
        assert platform.incoming_records.credits == []


async def test_r15_a_remittance_of_another_case_is_held_and_the_right_one_settles(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    async with running_platform(time_skipping_env, client) as platform:
        platform.hold("outgoing", ["BalanceRemitted"])
        handle = await platform.start_case()
        await wait_until(lambda: "transfer_in_completed" in platform.incoming_store.names())
        foreign = Envelope.wrap(
            BalanceRemitted(
                remittance_id=main_remittance_id("TCOTHERCASE"),
                amount_fen=BALANCE_FEN,
                remitted_on=date(2026, 12, 2),
            ),
            case_id=platform.case_id,
            step="foreign",
            from_region=OUTGOING_REGION,
            to_region=INCOMING_REGION,
            sent_at=datetime.now(UTC),
        )
        await handle.signal("document", foreign)
        await wait_until(lambda: "balance_notice_held" in platform.incoming_store.names())
        held = platform.incoming_store.one("balance_notice_held")
        assert held.detail["reason_code"] == "REMITTANCE_OF_ANOTHER_CASE"
        assert platform.incoming_records.credits == []
        await platform.release("outgoing")
        assert await platform.results() == ("completed", "completed")
        assert [c.remittance_id for c in platform.incoming_records.credits] == [
            main_remittance_id(platform.case_id)
        ]


async def test_r13_a_sheet_about_another_person_is_held_until_a_clerk_checks_it(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    async with running_platform(time_skipping_env, client) as platform:
        platform.hold("outgoing", ["TransferOutCompleted"])
        handle = await platform.start_case()
        await wait_until(lambda: platform.on_hold != [])
        (_, sheet), platform.on_hold = platform.on_hold[0], []
        await platform.release("outgoing")
        payload = dict(sheet.payload)
        info = dict(payload["info_sheet"])
        info["person"] = {"id_number": "110105198001011238", "name": "李四"}
        wrong = sheet.model_copy(update={"payload": {**payload, "info_sheet": info}})
        await handle.signal("document", wrong)
        await wait_until(lambda: "information_sheet_held" in platform.incoming_store.names())
        view = await platform.view("incoming")
        assert view is not None
        assert view.status == "exception"
        assert platform.incoming_records.transfer_ins == []
        await handle.signal(
            IncomingCaseWorkflow.retry_delivery, ClerkAction(clerk="clerk-5", reason="checked")
        )
        assert await platform.results() == ("completed", "completed")
        assert "information_sheet_accepted_by_clerk" in platform.incoming_store.names()
