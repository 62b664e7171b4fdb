"""Found by a second review (each a bug before its fix): a stop that reaches the outgoing workflow after its last look at the inbox
but before it completes is "signalled" (receipt sent, never answered by
OutgoingStopAnswerWorkflow), and the incoming case waits in _await_reply(due=None) for
ever, without reminder or escalation."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from tests.support.workflow_fakes import (
    FakeOutgoingRecords,
    FakeVerifiedDocuments,
    InMemoryPlatform,
    refusal_reason,
    wait_until,
)
from workflows.incoming.types import WithdrawSignal
from workflows.incoming.workflows import IncomingCaseWorkflow
from workflows.outgoing.activities import OutgoingActivities

pytestmark = [pytest.mark.workflow, pytest.mark.own_server]


class SlowRelease(OutgoingActivities):
    """The records database is slow / briefly down when the claim is released."""

    def __init__(self, records: FakeOutgoingRecords) -> None:
        super().__init__(records, FakeVerifiedDocuments())
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    @activity.defn(name="release_enrolment_claim")
    async def release_enrolment_claim(self, case_id: str) -> None:
        self.entered.set()
        await self.gate.wait()
        await super().release_enrolment_claim(case_id)


async def skip_days(env: WorkflowEnvironment, days: int) -> None:
    """Skip ``days`` a day at a time: one long skip's RPC can time out on a loaded machine
    (the Java test server answered "Timeout expired" in a full suite run), a day's does
    not, and a timed-out day is asked again."""
    for _ in range(days):
        for attempt in range(3):
            try:
                await env.sleep(timedelta(days=1))
                break
            except RPCError:
                if attempt == 2:
                    raise


async def test_r16_a_stop_arriving_while_the_outgoing_case_closes_is_answered(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    records = FakeOutgoingRecords(refusals=[[refusal_reason("CONTRIBUTION_ARREARS")]])
    platform = InMemoryPlatform(time_skipping_env, client, outgoing_records=records)
    slow = SlowRelease(records)
    platform.outgoing_activities = slow
    async with platform.worker("incoming"), platform.worker("outgoing"):
        try:
            handle = await platform.start_case()
            store = platform.incoming_store
            await wait_until(lambda: "transfer_refused_correctable" in store.names())
            platform.hold("incoming", ["WithdrawalRequested"])
            await handle.signal(IncomingCaseWorkflow.withdraw, WithdrawSignal(reason="not now"))
            await wait_until(lambda: "withdrawal_requested" in store.names())
            # The skip blocks while the release activity runs (real time): run it aside.
            skipping = asyncio.create_task(skip_days(time_skipping_env, 20))
            await asyncio.wait_for(slow.entered.wait(), 30)
            assert "correction_window_expired" in platform.outgoing_store.names()
            # The outgoing workflow still runs (releasing the claim): the stop is signalled.
            await platform.release("incoming")
            assert platform.late == []  # it was not "late_after_close": no stop answer
            slow.gate.set()
            await asyncio.wait_for(skipping, 30)
            await asyncio.sleep(1.0)
            # Nobody answers the stop; the incoming case waits for ever without escalation.
            await wait_until(
                lambda: platform.sent("outgoing", "WithdrawalAnswered") != [], timeout=10
            )
        finally:
            slow.gate.set()
            await platform.terminate_open()
