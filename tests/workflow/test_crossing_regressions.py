"""Crossings a review staged against the stop protocol (withdrawal, cancellation and
offline as requests the outgoing agency answers), each a bug before its fix: a stop after
the sheet, a stop reaching a closed outgoing case, a false R12 escalation, a failed
transfer-out with a withdrawal, an outgoing step a clerk retries. Each docstring says what
went wrong before."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from contracts.documents import InformationSheet
from domain.limits import CaseLimits
from tests.support.workflow_fakes import (
    OUTGOING_REGION,
    FakeContextSource,
    FakeIncomingRecords,
    FakeOutgoingRecords,
    refusal_reason,
    running_platform,
    wait_until,
)
from workflows.incoming.types import WithdrawSignal
from workflows.incoming.workflows import IncomingCaseWorkflow
from workflows.outgoing.types import TransferOutInput
from workflows.types import ClerkAction

pytestmark = pytest.mark.workflow


async def test_r16_a_stop_after_the_sheet_is_refused_as_too_late_not_dropped(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    """After the sheet, the incoming case delivers TransferInCompleted; the outgoing region
    is not connected, so the case shows ``waiting_region_connection`` - a status in
    OPEN_FOR_WITHDRAWAL and in the offline-channel action's allowed set. The API answers
    202 "requested" and signals the workflow. ``_ask_stop`` stores the stop, but only
    ``_await_reply`` ever sent one: the stop was neither sent, refused nor recorded."""
    incoming_records = FakeIncomingRecords(transfer_in_outage=timedelta(hours=1))
    async with running_platform(
        time_skipping_env, client, incoming_records=incoming_records
    ) as platform:
        handle = await platform.start_case()
        store = platform.incoming_store
        await wait_until(lambda: "information_sheet_received" in store.names())
        platform.connectivity.disconnected.add(OUTGOING_REGION)
        await time_skipping_env.sleep(timedelta(hours=2))  # transfer-in retried, then delivery
        await wait_until(lambda: "waiting_for_region_connection" in store.names())
        view = await platform.view("incoming")
        assert view is not None
        assert view.status == "waiting_region_connection"
        # What the API / ops page let through in this status (202 to the caller).
        await handle.signal(IncomingCaseWorkflow.withdraw, WithdrawSignal(reason="changed mind"))
        await handle.signal(
            IncomingCaseWorkflow.switch_offline, ClerkAction(clerk="clerk-1", reason="paper")
        )
        await time_skipping_env.sleep(timedelta(hours=1))
        platform.connectivity.disconnected.clear()
        assert await platform.results() == ("completed", "completed")
        # The stop was accepted by the API: it is refused as too late, on the timeline,
        # with its reason (it used to leave no trace); the second is not asked again.
        refused = store.named("withdrawal_refused")
        assert [e.detail["reason_code"] for e in refused] == ["TOO_LATE_TRANSFERRED_OUT"]
        assert platform.sent("incoming", "WithdrawalRequested") == []


async def test_r16_a_stop_reaching_a_closed_outgoing_case_is_still_answered(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    """Soft refusal; the person withdraws inside the correction window; the platform (or an
    R23 disconnection of the outgoing region) delays the WithdrawalRequested past the end of
    the window. The outgoing case closes ``refused`` (correction_window_expired) and never
    answers; the stop meets a closed case (HARMLESS_AFTER_CLOSE: nobody told). The incoming
    case waits in ``_await_reply`` for an answer that never comes: open for ever in
    ``withdrawal_requested`` while the outgoing side says ``refused``."""
    records = FakeOutgoingRecords(refusals=[[refusal_reason("CONTRIBUTION_ARREARS")]])
    async with running_platform(time_skipping_env, client, outgoing_records=records) as platform:
        handle = await platform.start_case()
        store = platform.incoming_store
        await wait_until(lambda: "transfer_refused_correctable" in store.names())
        platform.hold("incoming", ["WithdrawalRequested"])
        await handle.signal(IncomingCaseWorkflow.withdraw, WithdrawSignal(reason="not now"))
        await wait_until(lambda: "withdrawal_requested" in store.names())
        assert platform.outgoing is not None
        # Its window runs out meanwhile (skipped by hand: awaiting a result would let the
        # test server skip on to the incoming workflow's 10-year timeout).
        await time_skipping_env.sleep(timedelta(days=20))
        await wait_until(lambda: "correction_window_expired" in platform.outgoing_store.names())
        await platform.release("incoming")  # the stop arrives late
        # The closed outgoing case still answers (OutgoingStopAnswerWorkflow): no transfer.
        # (Waited for in real time: a pending workflow task does not hold the test
        # server's clock, which could skip to the incoming workflow's 10-year timeout.)
        await wait_until(lambda: platform.sent("outgoing", "WithdrawalAnswered") != [])
        assert await handle.result() == "withdrawn"
        answers = platform.sent("outgoing", "WithdrawalAnswered")
        assert [a.payload["accepted"] for a in answers] == [True]


async def test_r12_a_stop_in_the_correction_window_escalates_nobody(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    """The outgoing agency refused (softly) in time. The correction window outlasts the R12
    limit. A stop asked in the window re-enters ``_await_reply`` with the *old* R12 due,
    already past: the escalation stage fires at once and a TRANSFER_OUT_OVERDUE escalation
    is recorded and sent to the outgoing agency, which did nothing late (the clarification:
    R12 runs again only from a corrected request)."""
    limits = CaseLimits(transfer_out_days=2, reminder_before_days=1, soft_refusal_window_days=8)
    records = FakeOutgoingRecords(refusals=[[refusal_reason("CONTRIBUTION_ARREARS")]])
    async with running_platform(
        time_skipping_env,
        client,
        outgoing_records=records,
        context=FakeContextSource(limits=limits),
    ) as platform:
        handle = await platform.start_case()
        store = platform.incoming_store
        await wait_until(lambda: "transfer_refused_correctable" in store.names())
        await time_skipping_env.sleep(timedelta(days=6))  # past R12 due, inside the window
        assert "correction_window_expired" not in store.names()
        platform.hold("outgoing", ["WithdrawalAnswered"])
        await handle.signal(IncomingCaseWorkflow.withdraw, WithdrawSignal(reason="not now"))
        await wait_until(lambda: "withdrawal_requested" in store.names())
        await time_skipping_env.sleep(timedelta(minutes=5))
        overdue = [
            e
            for e in store.named("escalated")
            if e.detail.get("reason_code") == "TRANSFER_OUT_OVERDUE"
        ]
        sent = platform.sent("incoming", "Escalation")
        await platform.release("outgoing")
        assert await platform.results() == ("withdrawn", "withdrawn")
        assert overdue == [], f"escalated as R12-overdue: {[e.detail for e in overdue]}"
        assert sent == []


class FailingTransferOut(FakeOutgoingRecords):
    """The records refuse the transfer-out (a domain error: vanished record, lost claim,
    balance changed since the check); nothing is debited (the transaction rolls back)."""

    def transfer_out(self, request: TransferOutInput) -> InformationSheet:
        self.transfers.append(request)
        raise LookupError(f"case {request.case_id}: the balance changed since the check")


async def test_r16_a_withdrawal_while_the_transfer_out_failed_is_accepted(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    """The checks pass (enrolment claimed), transfer_out fails with a domain error and
    CaseFlow.step waits for a clerk's retry. Nothing was transferred out, so the person's
    withdrawal should be accepted (or at least answered). It is never answered:
    ``_answer_late_withdrawals`` waits for ``_sheet_delivered`` and the main path waits for
    a retry that can only fail again (the step re-runs the very same input, incl.
    ``expected_balance_fen``, and the record is not editable while claimed). Both cases stay
    open for ever, the enrolment stays claimed (R5: the person can never apply again)."""
    records = FailingTransferOut()
    async with running_platform(time_skipping_env, client, outgoing_records=records) as platform:
        handle = await platform.start_case()
        out = platform.outgoing_store
        await wait_until(lambda: any(e.event == "escalated" for e in out.events))
        await handle.signal(IncomingCaseWorkflow.withdraw, WithdrawSignal(reason="give up"))
        await wait_until(lambda: "withdrawal_requested" in platform.incoming_store.names())
        await time_skipping_env.sleep(timedelta(days=30))
        assert platform.sent("outgoing", "WithdrawalAnswered") != [], (
            "withdrawal never answered while nothing was transferred out; outgoing: "
            f"{out.names()}, incoming: {platform.incoming_store.names()}"
        )


class FailingOnceTransferOut(FakeOutgoingRecords):
    """transfer_out refused once with a domain error (say a record the clerk then fixes),
    fine on the retry."""

    def transfer_out(self, request: TransferOutInput) -> InformationSheet:
        if not self.transfers:
            self.transfers.append(request)
            raise LookupError(f"case {request.case_id}: enrolment record vanished")
        return super().transfer_out(request)


async def test_r16_a_clerk_retries_a_failed_outgoing_transfer_out(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    """CaseFlow.step escalates STEP_FAILED "a clerk checks the records and retries it" and
    waits for ``flow.retry_requested``. OutgoingCaseWorkflow defines no signal that sets it
    (only IncomingCaseWorkflow has ``retry_delivery``) and the outgoing API has no action:
    the clerk's retry is impossible, the case (and its R5 claim) is stuck for ever."""
    records = FailingOnceTransferOut()
    async with running_platform(time_skipping_env, client, outgoing_records=records) as platform:
        await platform.start_case()
        out = platform.outgoing_store
        await wait_until(lambda: any(e.event == "escalated" for e in out.events))
        assert platform.outgoing is not None
        # The incoming side's name for the clerk's retry; the outgoing workflow has none.
        await platform.outgoing.signal(
            "retry_step", ClerkAction(clerk="clerk-9", reason="record restored")
        )
        await time_skipping_env.sleep(timedelta(hours=1))
        assert "transferred_out" in out.names(), (
            f"no way to retry the failed transfer_out step: {out.names()}"
        )
