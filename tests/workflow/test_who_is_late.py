"""Whose limit ran out (R12-R15): an escalation names the agency whose own limit passed,
counted from when that agency could act, in the region's own numbers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from contracts.documents import Escalation, TransferRefused
from domain.limits import CaseLimits
from domain.regions import load_region_registry
from tests.support.workflow_fakes import (
    OUTGOING_REGION,
    FakeContextSource,
    FakeIncomingRecords,
    FakeOutgoingRecords,
    refusal_reason,
    running_platform,
    transfer_request,
    wait_until,
)
from workflows.clock import china_date, end_of_day
from workflows.incoming.workflows import IncomingCaseWorkflow

pytestmark = pytest.mark.workflow

LIMITS = CaseLimits()


def _escalations(store: object) -> list[tuple[object, object, object]]:
    return [
        (e.rule, e.detail["reason_code"], e.detail["due_on"])
        for e in store.events  # type: ignore[attr-defined]
        if e.event == "escalated"
    ]


async def test_r12_a_late_correction_runs_its_own_ten_days(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    """The correction comes on the window's last day: the outgoing agency has its 10
    working days from that receipt, not what was left of the first request's."""
    records = FakeOutgoingRecords(refusals=[[refusal_reason("CONTRIBUTION_ARREARS")]])
    async with running_platform(time_skipping_env, client, outgoing_records=records) as platform:
        accepted_on = await platform.today()
        handle = await platform.start_case(accepted_on)
        store = platform.incoming_store
        await wait_until(lambda: "transfer_refused_correctable" in store.names())
        [refused] = platform.sent("outgoing", "TransferRefused")
        until = refused.document_as(TransferRefused).correctable_until
        assert until is not None
        calendar = platform.context.calendar(accepted_on)
        first_due = calendar.add_working_days(accepted_on, LIMITS.transfer_out_days).due

        # The outgoing agency's answer to the correction is held back.
        platform.hold("outgoing", ["TransferOutCompleted", "BalanceRemitted"])
        await platform.skip_until(end_of_day(until) - timedelta(hours=3))
        corrected_on = await platform.today()
        await handle.signal(
            IncomingCaseWorkflow.correct, transfer_request(accepted_on, reason="arrears paid")
        )
        await wait_until(lambda: store.names().count("transfer_request_sent") == 2)
        second_due = calendar.add_working_days(corrected_on, LIMITS.transfer_out_days).due
        assert second_due > first_due

        await platform.skip_until(end_of_day(first_due) + timedelta(hours=2))
        assert "escalated" not in store.names()
        assert "reminder_sent" not in store.names()
        view = await platform.view("incoming")
        assert view is not None
        assert view.awaiting is not None
        assert view.awaiting.by == second_due
        outgoing_view = await platform.view("outgoing")
        assert outgoing_view is not None
        assert outgoing_view.deadlines["transfer_out_due"] == second_due
        decisions = [e for e in store.events if e.event == "decision" and e.rule == "R12"]
        assert decisions[-1].detail["outcome"] == f"due {second_due.isoformat()}"

        await platform.skip_until(end_of_day(second_due) + timedelta(hours=1))
        assert _escalations(store) == [("R12", "TRANSFER_OUT_OVERDUE", second_due.isoformat())]
        await platform.release("outgoing")
        assert await platform.results() == ("completed", "completed")


async def test_r13_the_outgoing_agency_escalates_transfer_in_only_when_the_incoming_five_days_ran_out(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    """The outgoing agency was itself late (its request arrived on day 12 of 15): the
    incoming agency still has 5 working days from the sheet, past the R14 mark."""
    incoming = FakeIncomingRecords()
    async with running_platform(time_skipping_env, client, incoming_records=incoming) as platform:
        accepted_on = await platform.today()
        calendar = platform.context.calendar(accepted_on)
        total_due = calendar.add_working_days(accepted_on, LIMITS.total_days).due
        late_day = calendar.add_working_days(accepted_on, 12).due
        platform.hold("incoming", ["TransferRequested"])
        await platform.start_case(accepted_on)
        await platform.skip_until(end_of_day(late_day) - timedelta(hours=12))
        sheet_day = await platform.today()
        transfer_in_due = calendar.add_working_days(sheet_day, LIMITS.transfer_in_days).due
        assert transfer_in_due > total_due
        # The incoming agency's enrolment system is down past its own limit.
        incoming.transfer_in_outage = (
            end_of_day(transfer_in_due) + timedelta(hours=6) - (await platform.now())
        )
        await platform.release("incoming")
        outgoing = platform.outgoing_store
        await wait_until(lambda: "transferred_out" in outgoing.names())

        await platform.skip_until(end_of_day(total_due) + timedelta(hours=2))
        assert _escalations(outgoing) == []

        await platform.skip_until(end_of_day(transfer_in_due) + timedelta(hours=1))
        assert _escalations(outgoing) == [
            ("R13", "TRANSFER_IN_OVERDUE", transfer_in_due.isoformat())
        ]
        [escalated] = [e for e in outgoing.events if e.event == "escalated"]
        assert f"{LIMITS.transfer_in_days} working days" in str(escalated.detail["message_en"])
        # The incoming side names itself for its own R13 limit, and nobody names R14.
        incoming_escalations = _escalations(platform.incoming_store)
        assert ("R13", "TRANSFER_IN_OVERDUE", transfer_in_due.isoformat()) in incoming_escalations
        assert all(rule != "R14" for rule, _, _ in incoming_escalations)
        assert await platform.results() == ("completed", "completed")
        # The remittance was in the inbox when transfer-in finished: no balance escalation.
        assert all(code != "BALANCE_OVERDUE" for _, code, _ in incoming_escalations)
        assert len(incoming.credits) == 1


async def test_r12_balance_overdue_names_the_outgoing_agency_at_its_own_limit(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    async with running_platform(time_skipping_env, client) as platform:
        platform.hold("outgoing", ["BalanceRemitted"])  # the remittance never shows up
        accepted_on = await platform.today()
        calendar = platform.context.calendar(accepted_on)
        transfer_out_due = calendar.add_working_days(accepted_on, LIMITS.transfer_out_days).due
        await platform.start_case(accepted_on)
        store = platform.incoming_store
        await wait_until(lambda: "transfer_in_completed" in store.names())
        credit_due = calendar.add_working_days(
            china_date(platform.sent("outgoing", "BalanceRemitted")[0].sent_at),
            LIMITS.transfer_in_days,
        ).due

        await platform.skip_until(end_of_day(transfer_out_due) + timedelta(hours=1))

        assert _escalations(store) == [("R12", "BALANCE_OVERDUE", transfer_out_due.isoformat())]
        [escalated] = [e for e in store.events if e.event == "escalated"]
        assert f"{LIMITS.transfer_out_days} working days" in str(escalated.detail["message_en"])
        # The outgoing side sent it: it asks the incoming agency, at that agency's own limit.
        assert _escalations(platform.outgoing_store) == [
            ("R15", "CREDIT_NOT_CONFIRMED", credit_due.isoformat())
        ]
        await platform.release("outgoing")
        assert await platform.results() == ("completed", "completed")
        assert len(platform.incoming_records.credits) == 1


async def test_r14_escalations_use_the_region_s_own_limits(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    """A region with 7 + 3 working days: the escalation sentences and dates say 7, and
    the Chinese sentence names the agency's region, not its code, and is wholly Chinese."""
    limits = CaseLimits(transfer_out_days=7, transfer_in_days=3, reminder_before_days=2)
    context = FakeContextSource(limits=limits)
    async with running_platform(time_skipping_env, client, context=context) as platform:
        platform.hold("outgoing")
        accepted_on = await platform.today()
        due = platform.context.calendar(accepted_on).add_working_days(accepted_on, 7).due
        await platform.start_case(accepted_on)
        await platform.skip_until(end_of_day(due) + timedelta(hours=1))
        [escalated] = [e for e in platform.incoming_store.events if e.event == "escalated"]
        assert escalated.detail["due_on"] == due.isoformat()
        assert "within its 7 working days" in str(escalated.detail["message_en"])
        [sent] = platform.sent("incoming", "Escalation")
        zh = sent.document_as(Escalation).message_zh
        assert "7个工作日" in zh
        assert "10" not in zh
        assert not any(ch.isascii() and ch.isalpha() for ch in zh)
        assert OUTGOING_REGION not in zh
        assert load_region_registry().require(OUTGOING_REGION).name in zh
        await platform.release("outgoing")
        assert await platform.results() == ("completed", "completed")
