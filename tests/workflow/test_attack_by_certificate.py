"""Guard (found by an attack on the announced offline switch, R10/R23): a corrected
request (R7, after a soft refusal) that carries by_certificate=True is waited for like the
first one, so a switch landing a little after it still finds the case not transferred out."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from tests.support.workflow_fakes import (
    OUTGOING_REGION,
    FakeOutgoingRecords,
    refusal_reason,
    running_platform,
    transfer_request,
    wait_until,
)
from workflows.incoming.workflows import IncomingCaseWorkflow
from workflows.types import ClerkAction, CorrectionSignal

pytestmark = pytest.mark.workflow


async def test_r23_switch_announced_on_a_corrected_request_is_waited_for(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    records = FakeOutgoingRecords(refusals=[[refusal_reason("CONTRIBUTION_ARREARS")]])
    async with running_platform(time_skipping_env, client, outgoing_records=records) as platform:
        accepted_on = await platform.today()
        handle = await platform.start_case(accepted_on)
        store = platform.incoming_store
        await wait_until(lambda: "transfer_refused_correctable" in store.names())

        # The arrears are paid, but the outgoing region has dropped off the platform: the
        # corrected request waits for it (R23), and a clerk takes the case offline.
        platform.connectivity.disconnected.add(OUTGOING_REGION)
        await handle.signal(
            IncomingCaseWorkflow.accept_correction,
            CorrectionSignal(
                request=transfer_request(accepted_on, reason="arrears paid"),
                submitted_by="clerk-3",
            ),
        )
        await wait_until(lambda: "waiting_for_region_connection" in store.names())
        await handle.signal(
            IncomingCaseWorkflow.switch_offline, ClerkAction(clerk="clerk-3", reason="paper")
        )
        await wait_until(lambda: "offline_channel_requested" in store.names())

        # The switch follows the corrected request on the wire, a little late.
        platform.hold("incoming", ["WithdrawalRequested"])
        platform.connectivity.disconnected.clear()
        await handle.signal(IncomingCaseWorkflow.retry_delivery, ClerkAction(clerk="clerk-3"))
        await wait_until(lambda: "corrected_request_received" in platform.outgoing_store.names())
        _, corrected = platform.sent("incoming", "TransferRequested")
        assert corrected.payload["by_certificate"] is True
        await asyncio.sleep(1.0)  # time enough for the records check to answer at once

        # The request said a switch follows: nothing is transferred out online meanwhile.
        assert platform.sent("outgoing", "TransferOutCompleted") == []
        assert records.transfers == []

        await platform.release("incoming")
        await wait_until(lambda: "insurance_certificate_issued" in store.names())
        await platform.load_certificate()
        assert await platform.results() == ("completed", "completed")
