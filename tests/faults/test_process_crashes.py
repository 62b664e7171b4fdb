"""Our own processes SIGKILLed at the worst moment (services/common/faults.py crash points),
then restarted: the work they had committed is neither lost nor done twice."""

from __future__ import annotations

import time

import pytest
from temporalio.api.enums.v1 import EventType

from harness.agencies import AgencyStack
from harness.invariants import wait_for_invariants
from tests.faults.conftest import (
    FaultFigures,
    armed,
    killed_by_sigkill,
    restart,
    start_cases,
    terminal_count,
    wait_exit,
)
from workflows.outgoing.workflows import outgoing_workflow_id

pytestmark = pytest.mark.faults


async def activity_attempts(stack: AgencyStack, workflow_id: str, activity: str) -> int:
    """The attempt number that completed ``activity`` in the workflow's history."""
    history = await stack.temporal.get_workflow_handle(workflow_id).fetch_history()
    scheduled = {
        e.event_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == activity
    }
    attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and e.activity_task_started_event_attributes.scheduled_event_id in scheduled
    ]
    return max(attempts, default=0)


async def test_r16_worker_killed_after_the_debit_commit_debits_and_credits_once(
    fault_stack: AgencyStack, figures: FaultFigures
) -> None:
    """The outgoing worker dies right after the debit commits, before the activity
    reports: Temporal retries it on the restarted worker, which must not debit again."""
    figures.fault = "worker SIGKILLed after debit commit" + figures.suffix
    stack = fault_stack
    marker = armed(stack, "outgoing-worker", "after-debit-commit")
    cases = await start_cases(stack, 3)
    figures.cases = len(cases)

    assert killed_by_sigkill(await wait_exit(stack.processes["outgoing-worker"]))
    killed_at = time.monotonic()
    assert marker.exists()
    figures.cases_affected = len(cases) - terminal_count(stack, cases)
    restart(stack, "outgoing-worker")

    report = await wait_for_invariants(stack, cases, timeout=240)
    figures.recovery_seconds = time.monotonic() - killed_at
    figures.checked(report)
    assert set(report.states.values()) == {("completed", "completed")}
    # R16: one debit per case, settled by one credit of the same amount.
    for case_id in cases:
        legs = stack.query(
            "outgoing", "select leg, amount_fen from ledger where case_id=?", case_id
        ) + stack.query("incoming", "select leg, amount_fen from ledger where case_id=?", case_id)
        assert sorted(leg for leg, _ in legs) == ["credit_incoming", "debit_outgoing"], legs
        assert len({amount for _, amount in legs}) == 1, legs
    retried = [
        await activity_attempts(stack, outgoing_workflow_id(c), "transfer_out") - 1 for c in cases
    ]
    figures.duplicates_attempted = sum(retried)
    figures.duplicates_blocked = sum(retried)  # every retry found its debit committed
    assert figures.duplicates_attempted >= 1, "the killed attempt was not retried"


async def test_r15_consumer_killed_after_its_inbox_commit_acts_once(
    fault_stack: AgencyStack, figures: FaultFigures
) -> None:
    """The incoming API's consumer dies after committing the information sheet to its
    inbox and before committing the Kafka offset: the sheet comes again after the restart
    and is recognised; the case moves on once, and its receipt still goes out."""
    figures.fault = "consumer SIGKILLed after inbox commit" + figures.suffix
    stack = fault_stack
    marker = armed(stack, "incoming-api", "after-inbox-commit:TransferOutCompleted")
    await stack.wait_ready()
    cases = await start_cases(stack, 2)
    figures.cases = len(cases)

    assert killed_by_sigkill(await wait_exit(stack.processes["incoming-api"]))
    killed_at = time.monotonic()
    assert marker.exists()
    marks = ",".join("?" * len(cases))
    # The handlers of two partitions run at once: each sheet may have reached its inbox
    # commit before the first crash point stopped the process; one did at least.
    hits = [
        case_id
        for (case_id,) in stack.query(
            "incoming",
            f"select case_id from inbox where type='TransferOutCompleted' and case_id in ({marks})",
            *cases,
        )
    ]
    assert hits
    figures.cases_affected = len(cases) - terminal_count(stack, cases)
    restart(stack, "incoming-api")
    await stack.wait_ready()

    report = await wait_for_invariants(stack, cases, timeout=240)
    figures.recovery_seconds = time.monotonic() - killed_at
    figures.checked(report)
    assert set(report.states.values()) == {("completed", "completed")}
    log = (stack.log_dir / "incoming-api.log").read_text(errors="replace")
    redelivered = sum(_acted_on_once(stack, hit, log) for hit in hits)
    figures.duplicates_attempted = redelivered
    figures.duplicates_blocked = redelivered


def _acted_on_once(stack: AgencyStack, hit: str, log: str) -> int:
    """The sheet of case ``hit`` committed before the crash: redelivered and recognised,
    with one inbox row, one sheet event and its receipt sent; how often it came again."""
    sheet_id = f"{hit}/TransferOutCompleted/sheet"
    redelivered = log.count(f"duplicate TransferOutCompleted {sheet_id} ignored")
    assert redelivered >= 1, "the sheet was not redelivered after the crash"
    # One inbox row, one transfer-in, one sheet event: the redelivery had no effect.
    assert stack.query("incoming", "select count(*) from inbox where message_id=?", sheet_id) == [
        (1,)
    ]
    assert stack.query(
        "incoming",
        "select count(*) from case_event where case_id=? and event='information_sheet_received'",
        hit,
    ) == [(1,)]
    # The receipt the crash cut off was sent on the redelivery (the sender has it).
    receipt = f"{hit}/Receipt/receipt-TransferOutCompleted-sheet"
    assert stack.query("outgoing", "select count(*) from inbox where message_id=?", receipt) == [
        (1,)
    ]
    return redelivered
