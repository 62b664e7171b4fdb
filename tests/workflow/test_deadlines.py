"""Working-day limits as durable timers (R12-R14, R23): reminders and escalations happen
on time in skipped time, and an escalated case keeps waiting instead of failing."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from contracts.documents import Escalation, Reminder, TransferRequested
from domain.calendar import build_calendar
from domain.limits import CaseLimits
from tests.support.workflow_fakes import (
    OUTGOING_REGION,
    FakeIncomingRecords,
    running_platform,
    transfer_request,
    wait_until,
)
from workflows.clock import china_date, end_of_day, morning_of

pytestmark = pytest.mark.workflow

LIMITS = CaseLimits()


async def test_r12_reminder_then_escalation_when_outgoing_silent(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    async with running_platform(time_skipping_env, client) as platform:
        platform.hold("outgoing")  # the outgoing agency's answers do not arrive
        accepted_on = await platform.today()
        handle = await platform.start_case(accepted_on)
        calendar = platform.context.calendar(accepted_on)
        due = calendar.add_working_days(accepted_on, LIMITS.transfer_out_days).due
        reminder_on = calendar.subtract_working_days(due, LIMITS.reminder_before_days)

        await platform.skip_until(end_of_day(due) + timedelta(hours=1))

        store = platform.incoming_store
        assert store.names() == [
            "application_accepted",
            "transfer_request_sent",
            "reminder_sent",
            "escalated",
        ]
        reminders = platform.sent("incoming", "Reminder")
        assert len(reminders) == 1
        assert reminders[0].to_region == OUTGOING_REGION
        assert reminders[0].document_as(Reminder).due_on == due
        assert morning_of(reminder_on) <= reminders[0].sent_at < end_of_day(due)
        assert china_date(reminders[0].sent_at) == reminder_on < due

        escalated = store.one("escalated")
        assert escalated.rule == "R12"
        assert escalated.detail["reason_code"] == "TRANSFER_OUT_OVERDUE"
        assert escalated.detail["due_on"] == due.isoformat()
        assert end_of_day(due) <= escalated.occurred_at < end_of_day(due) + timedelta(hours=1)
        [escalation] = platform.sent("incoming", "Escalation")
        assert escalation.document_as(Escalation).reason_code == "TRANSFER_OUT_OVERDUE"
        # Both notices reached the outgoing agency's case and its timeline.
        await wait_until(lambda: "escalation_received" in platform.outgoing_store.names())
        notices = [
            (e.event, e.detail["due_on"])
            for e in platform.outgoing_store.events
            if e.event.endswith("_received") and e.event != "transfer_request_received"
        ]
        assert notices == [
            ("reminder_received", due.isoformat()),
            ("escalation_received", due.isoformat()),
        ]

        # Escalated, not failed: the case still waits for the outgoing agency.
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        view = await platform.view("incoming")
        assert view is not None
        assert (view.status, view.escalated) == ("awaiting_transfer_out", True)
        assert view.awaiting is not None
        assert view.awaiting.by == due

        await platform.release("outgoing")  # the late sheet and balance arrive

        assert await platform.results() == ("completed", "completed")
        assert store.names()[4:] == [
            "information_sheet_received",
            "transfer_in_completed",
            "balance_credited",
            "case_completed",
        ]
        assert len(platform.incoming_records.credits) == 1


async def test_r13_transfer_in_overdue_is_escalated_then_completed(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    records = FakeIncomingRecords()
    async with running_platform(time_skipping_env, client, incoming_records=records) as platform:
        today = await platform.today()
        transfer_in_due = (
            platform.context.calendar(today).add_working_days(today, LIMITS.transfer_in_days).due
        )
        # The local enrolment system is down until well after the R13 limit.
        outage = end_of_day(transfer_in_due) + timedelta(hours=6) - await platform.now()
        records.transfer_in_outage = outage
        await platform.start_case(today)

        assert await platform.results() == ("completed", "completed")

        store = platform.incoming_store
        assert store.names() == [
            "application_accepted",
            "transfer_request_sent",
            "information_sheet_received",
            "escalated",
            "transfer_in_completed",
            "balance_credited",
            "case_completed",
        ]
        assert store.one("information_sheet_received").deadlines["transfer_in_due"] == (
            transfer_in_due
        )
        escalated = store.one("escalated")
        assert escalated.rule == "R13"
        assert escalated.detail["reason_code"] == "TRANSFER_IN_OVERDUE"
        assert escalated.detail["stage"] == "transfer_in"
        assert escalated.detail["due_on"] == transfer_in_due.isoformat()
        assert escalated.occurred_at >= end_of_day(transfer_in_due)
        assert store.one("transfer_in_completed").occurred_at > escalated.occurred_at
        assert len(records.transfer_ins) == 2
        assert len(records.credits) == 1


async def test_r12_r14_deadlines_across_spring_festival(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    accepted_on = date(2026, 2, 13)  # Friday before the 2026 Spring Festival
    calendar = build_calendar([2026], None)
    # The domain document's R13 example: 14 Feb is a make-up working day, 15-23 Feb off.
    assert calendar.add_working_days(accepted_on, 5).due == date(2026, 2, 27)
    transfer_out_due = calendar.add_working_days(accepted_on, LIMITS.transfer_out_days).due
    total_due = calendar.add_working_days(accepted_on, LIMITS.total_days).due
    assert (transfer_out_due, total_due) == (date(2026, 3, 5), date(2026, 3, 12))

    async with running_platform(time_skipping_env, client) as platform:
        platform.hold("outgoing")
        await platform.start_case(accepted_on, transfer_request(accepted_on))
        # Both limits lie in the test server's past: reminder and escalation at once.
        store = platform.incoming_store
        await wait_until(lambda: "escalated" in store.names())
        await wait_until(lambda: "transferred_out" in platform.outgoing_store.names())
        # The outgoing agency was the late one: the incoming agency's 5 days from the
        # sheet have not run out, so the outgoing side names nobody (who is late: R13).
        assert "escalated" not in platform.outgoing_store.names()

        expected = {"transfer_out_due": transfer_out_due, "total_due": total_due}
        assert store.events[0].deadlines == expected
        assert platform.outgoing_store.events[0].deadlines == expected
        assert store.events[0].warnings == []  # 2026 is official calendar data
        [reminder] = platform.sent("incoming", "Reminder")
        assert reminder.document_as(Reminder).due_on == transfer_out_due
        assert store.one("escalated").detail["due_on"] == transfer_out_due.isoformat()
        view = await platform.view("incoming")
        assert view is not None
        assert view.deadlines == expected
        # Finished, not left to be terminated mid-case: a case terminated while its sheet
        # was held left the test server's time skipping stalled for the next test.
        await platform.release("outgoing")
        assert await platform.results() == ("completed", "completed")


async def test_r23_region_not_connected_waits_escalates_then_proceeds(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    async with running_platform(time_skipping_env, client) as platform:
        platform.connectivity.disconnected.add(OUTGOING_REGION)
        accepted_on = await platform.today()
        await platform.start_case(accepted_on)
        escalate_on = (
            platform.context.calendar(accepted_on)
            .add_working_days(accepted_on, LIMITS.not_connected_escalation_days)
            .due
        )
        store = platform.incoming_store
        await wait_until(lambda: "waiting_for_region_connection" in store.names())
        view = await platform.view("incoming")
        assert view is not None
        assert view.status == "waiting_region_connection"
        assert view.awaiting is not None
        assert OUTGOING_REGION in view.awaiting.what

        await platform.skip_until(end_of_day(escalate_on) + timedelta(hours=1))

        assert store.names() == [
            "application_accepted",
            "waiting_for_region_connection",
            "escalated",
        ]
        escalated = store.one("escalated")
        assert escalated.rule == "R23"
        assert escalated.detail["reason_code"] == "REGION_NOT_CONNECTED"
        assert escalated.detail["due_on"] == escalate_on.isoformat()
        assert escalated.status == "waiting_region_connection"
        assert platform.sent("incoming", "TransferRequested") == []  # no paper fallback
        view = await platform.view("incoming")
        assert view is not None
        assert (view.status, view.escalated) == ("waiting_region_connection", True)

        platform.connectivity.disconnected.clear()  # the region goes live

        assert await platform.results() == ("completed", "completed")
        names = store.names()
        delivered = names.index("region_connected")
        assert names[delivered + 1] == "transfer_request_sent"
        assert len(platform.sent("incoming", "TransferRequested")) == 1
        assert len(platform.incoming_records.credits) == 1
        # R12 runs from the go-live day, the same on both sides, not from acceptance.
        request = platform.sent("incoming", "TransferRequested")[0].document_as(TransferRequested)
        assert request.limit_starts_on is not None
        assert request.limit_starts_on > escalate_on
        expected_due = (
            platform.context.calendar(request.limit_starts_on)
            .add_working_days(request.limit_starts_on, LIMITS.transfer_out_days)
            .due
        )
        sent = store.one("transfer_request_sent")
        assert sent.deadlines["transfer_out_due"] == expected_due
        outgoing_received = platform.outgoing_store.one("transfer_request_received")
        assert outgoing_received.deadlines["transfer_out_due"] == expected_due
