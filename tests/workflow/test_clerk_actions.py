"""Clerk actions on a case stuck on R23 or on the outgoing side: re-check a region now,
continue offline, cancel. Each is recorded on the case with the clerk's identity."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from tests.support.workflow_fakes import (
    OUTGOING_REGION,
    FakeContextSource,
    FakeOutgoingRecords,
    GatedOutgoingActivities,
    InMemoryPlatform,
    refusal_reason,
    running_platform,
    transfer_request,
    wait_until,
)
from workflows.incoming.types import CorrectionSignal, WithdrawSignal
from workflows.incoming.workflows import IncomingCaseWorkflow
from workflows.types import ClerkAction

pytestmark = pytest.mark.workflow


async def switch_offline_while_waiting(platform: InMemoryPlatform, handle: WorkflowHandle) -> None:
    """A clerk takes a case waiting for the outgoing region (R23) offline (R10)."""
    store = platform.incoming_store
    await wait_until(lambda: "waiting_for_region_connection" in store.names())
    await handle.signal(
        IncomingCaseWorkflow.switch_offline, ClerkAction(clerk="clerk-3", reason="paper")
    )
    await wait_until(lambda: "offline_channel_requested" in store.names())


async def reconnect_with_the_switch_late(
    platform: InMemoryPlatform, handle: WorkflowHandle, received: str
) -> None:
    """The region goes live and the request goes out; the switch behind it is held on the
    wire until ``release``. Waits until the outgoing agency has recorded ``received`` and
    has had time enough for its records check to answer at once."""
    platform.hold("incoming", ["WithdrawalRequested"])
    platform.connectivity.disconnected.clear()
    await handle.signal(IncomingCaseWorkflow.retry_delivery, ClerkAction(clerk="clerk-3"))
    await wait_until(lambda: received in platform.outgoing_store.names())
    await asyncio.sleep(1.0)


async def test_r23_clerk_retry_rechecks_the_region_at_once(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    # A long backoff: without the clerk, the next check would be hours away.
    context = FakeContextSource(retry_initial_seconds=6 * 3600.0, retry_max_seconds=6 * 3600.0)
    async with running_platform(time_skipping_env, client, context=context) as platform:
        platform.connectivity.disconnected.add(OUTGOING_REGION)
        handle = await platform.start_case()
        store = platform.incoming_store
        await wait_until(lambda: "waiting_for_region_connection" in store.names())
        platform.connectivity.disconnected.clear()  # live now, nobody has re-checked yet
        await handle.signal(IncomingCaseWorkflow.retry_delivery, ClerkAction(clerk="clerk-3"))

        await wait_until(lambda: "transfer_request_sent" in store.names())
        retry = store.one("clerk_retry_delivery")
        assert (retry.rule, retry.detail["clerk"]) == ("R23", "clerk-3")
        assert await platform.results() == ("completed", "completed")


async def test_r23_clerk_switches_to_the_offline_channel(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    async with running_platform(time_skipping_env, client) as platform:
        platform.connectivity.disconnected.add(OUTGOING_REGION)
        handle = await platform.start_case()
        store = platform.incoming_store
        await wait_until(lambda: "waiting_for_region_connection" in store.names())
        await handle.signal(
            IncomingCaseWorkflow.switch_offline, ClerkAction(clerk="clerk-3", reason="paper")
        )
        # R10/R23: not an end. Only the outgoing agency issues the insurance certificate,
        # and it learns of the case by the request: both wait for its region together.
        await wait_until(lambda: "offline_channel_requested" in store.names())
        requested = store.one("offline_channel_requested")
        assert (requested.terminal, requested.detail["clerk"]) == (False, "clerk-3")
        assert platform.sent("incoming", "TransferRequested") == []
        platform.connectivity.disconnected.clear()  # live now: the clerk has it checked
        await handle.signal(IncomingCaseWorkflow.retry_delivery, ClerkAction(clerk="clerk-3"))
        await wait_until(lambda: "insurance_certificate_issued" in store.names())
        kinds = [e.payload["kind"] for e in platform.sent("incoming", "WithdrawalRequested")]
        assert (len(platform.sent("incoming", "TransferRequested")), kinds) == (
            1,
            ["offline_channel"],
        )
        await platform.load_certificate()
        assert await platform.results() == ("completed", "completed")
        assert "switched_to_offline_channel" not in store.names()


async def test_r23_offline_switch_before_the_request_is_honoured_when_it_arrives_late(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    """The switch follows the request on the wire; however late it lands, the outgoing
    agency, told by the request that it comes, transfers out by certificate, not online."""
    async with running_platform(time_skipping_env, client) as platform:
        platform.connectivity.disconnected.add(OUTGOING_REGION)
        handle = await platform.start_case()
        store = platform.incoming_store
        await switch_offline_while_waiting(platform, handle)
        await reconnect_with_the_switch_late(platform, handle, "transfer_request_received")
        (request,) = platform.sent("incoming", "TransferRequested")
        assert request.payload["by_certificate"] is True
        assert platform.outgoing_records.transfers == []

        await platform.release("incoming")
        await wait_until(lambda: "insurance_certificate_issued" in store.names())
        assert platform.sent("outgoing", "InformationSheet") == []
        await platform.load_certificate()
        assert await platform.results() == ("completed", "completed")


async def test_r23_switch_announced_on_a_corrected_request_is_waited_for(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    """Guard (found by an attack): a corrected request (R7, after a soft refusal) that
    carries by_certificate is waited for like the first one."""
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
        await switch_offline_while_waiting(platform, handle)
        await reconnect_with_the_switch_late(platform, handle, "corrected_request_received")
        _, corrected = platform.sent("incoming", "TransferRequested")
        assert corrected.payload["by_certificate"] is True

        # The request said a switch follows: nothing is transferred out online meanwhile.
        assert platform.sent("outgoing", "TransferOutCompleted") == []
        assert records.transfers == []

        await platform.release("incoming")
        await wait_until(lambda: "insurance_certificate_issued" in store.names())
        await platform.load_certificate()
        assert await platform.results() == ("completed", "completed")


async def test_clerk_cancels_a_case_waiting_for_the_outgoing_agency(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    async with running_platform(time_skipping_env, client, gate_outgoing_checks=True) as platform:
        checks = platform.outgoing_activities
        assert isinstance(checks, GatedOutgoingActivities)
        handle = await platform.start_case()
        await checks.entered.wait()  # the outgoing agency is still checking its records
        store = platform.incoming_store
        await wait_until(lambda: "transfer_request_sent" in store.names())
        await handle.signal(
            IncomingCaseWorkflow.withdraw, WithdrawSignal(reason="duplicate file", clerk="clerk-9")
        )
        # A request the outgoing agency answers: the case stays open meanwhile.
        await wait_until(lambda: "withdrawal_requested" in store.names())
        checks.gate.set()
        assert await platform.results() == ("cancelled", "cancelled")
        cancelled = store.one("case_cancelled_by_clerk")
        assert (cancelled.detail["clerk"], cancelled.detail["reason"]) == (
            "clerk-9",
            "duplicate file",
        )
        assert len(platform.sent("incoming", "WithdrawalRequested")) == 1
        assert platform.outgoing_records.transfers == []
        assert platform.outgoing_records.released == [platform.case_id]
