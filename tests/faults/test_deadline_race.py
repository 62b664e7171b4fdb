"""A limit and the answer it waits for arriving within the same second (R12), on
Temporal's time-skipping test server with the in-memory platform of the workflow tests.

Whichever comes first, the case ends once on each side, the money moves once, and an
escalation is raised only when the limit really passed first, and then only once. (This
tier has no databases, so I1 and I2 are checked on the fake stores and records.)

The answer comes 0.9 s before or 0.1 s after the limit, not at the very millisecond: when
a timer fires while the workflow task handling a signal is in flight, the Java test server
refuses the task's completion ("invalid history builder state for action", from its
TestWorkflowMutableStateImpl) and the workflow stalls; the real server answers such a
completion with a new workflow task, which the SDK handles.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from domain.limits import CaseLimits
from tests.faults.conftest import FaultFigures
from tests.support.workflow_fakes import BALANCE_FEN, running_platform, wait_until
from workflows.clock import end_of_day

pytestmark = pytest.mark.faults

LIMITS = CaseLimits()
# stage -> (the outgoing documents held back until the limit, the incoming side's
# escalation codes when the outgoing agency's own limit passes). Both run on the R12
# transfer-out limit: the balance is due with it (docs/escalations.md).
STAGES = {
    "r12_transfer_out": (None, ("TRANSFER_OUT_OVERDUE",)),
    "r12_balance": (["BalanceRemitted"], ("BALANCE_OVERDUE",)),
}
# What the outgoing side may escalate meanwhile: the incoming agency's own limits, counted
# from the sheet it sent (R13, R15), never the whole case's 15 days.
OUTGOING_CODES = {"TRANSFER_IN_OVERDUE", "CREDIT_NOT_CONFIRMED"}


@pytest.mark.parametrize("offset", [-0.9, 0.1], ids=["just-before", "just-after"])
@pytest.mark.parametrize("stage", list(STAGES))
async def test_r12_limit_and_answer_in_the_same_second(
    time_skipping_env: WorkflowEnvironment,
    client: Client,
    figures: FaultFigures,
    stage: str,
    offset: float,
) -> None:
    figures.fault = f"{stage.split('_')[0]} limit and answer {offset:+.1f} s" + figures.suffix
    held, codes = STAGES[stage]
    async with running_platform(time_skipping_env, client) as platform:
        platform.hold("outgoing", held)
        accepted_on = await platform.today()
        await platform.start_case(accepted_on)
        due = (
            platform.context.calendar(accepted_on)
            .add_working_days(accepted_on, LIMITS.transfer_out_days)
            .due
        )
        limit = end_of_day(due)

        await platform.skip_until(limit + timedelta(seconds=offset))
        answered_at = await platform.now()
        await platform.release("outgoing")
        # Bounded: a stalled workflow fails the test instead of hanging the suite.
        assert await asyncio.wait_for(platform.results(), 120) == ("completed", "completed")
        await wait_until(lambda: "case_completed" in platform.outgoing_store.names())

    stores = (platform.incoming_store, platform.outgoing_store)
    # I1: one terminal event per side, and nothing after it.
    for store in stores:
        assert [e.event for e in store.events if e.terminal] == ["case_completed"]
        assert store.events[-1].event == "case_completed"
    # I2: one debit (transfer-out) and one credit of the same amount.
    assert len(platform.outgoing_records.transfers) == 1
    assert [c.amount_fen for c in platform.incoming_records.credits] == [BALANCE_FEN]
    # The incoming side escalates the outgoing agency only if its limit passed before the
    # answer, and then once.
    escalations = platform.incoming_store.named("escalated")
    assert all(e.occurred_at >= limit for e in escalations)
    assert sorted(str(e.detail["reason_code"]) for e in escalations) in ([], sorted(codes))
    assert bool(escalations) == (offset > 0)
    outgoing_codes = {
        str(e.detail["reason_code"]) for e in platform.outgoing_store.named("escalated")
    }
    assert outgoing_codes <= OUTGOING_CODES
    figures.cases = figures.cases_affected = 1
    figures.notes = {
        "answered_at": answered_at.isoformat(),
        "escalated": bool(escalations),
    }
