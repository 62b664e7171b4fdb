"""Clerk actions on a case stuck on R23 or on the outgoing side: re-check a region now,
continue offline, cancel. Each is recorded on the case with the clerk's identity."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from tests.support.workflow_fakes import (
    OUTGOING_REGION,
    FakeContextSource,
    GatedOutgoingActivities,
    running_platform,
    wait_until,
)
from workflows.incoming.workflows import IncomingCaseWorkflow
from workflows.types import ClerkAction, WithdrawSignal

pytestmark = pytest.mark.workflow


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
        await wait_until(lambda: "waiting_for_region_connection" in store.names())
        await handle.signal(
            IncomingCaseWorkflow.switch_offline, ClerkAction(clerk="clerk-3", reason="paper")
        )
        await wait_until(lambda: "offline_channel_requested" in store.names())
        platform.hold("incoming", ["WithdrawalRequested"])
        platform.connectivity.disconnected.clear()
        await handle.signal(IncomingCaseWorkflow.retry_delivery, ClerkAction(clerk="clerk-3"))
        await wait_until(lambda: "transfer_request_received" in platform.outgoing_store.names())
        (request,) = platform.sent("incoming", "TransferRequested")
        assert request.payload["by_certificate"] is True
        await asyncio.sleep(1.0)  # time enough for the records check to answer at once
        assert platform.outgoing_records.transfers == []

        await platform.release("incoming")
        await wait_until(lambda: "insurance_certificate_issued" in store.names())
        assert platform.sent("outgoing", "InformationSheet") == []
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
