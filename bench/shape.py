"""A no-op case with exactly the shape of a happy R18 case: the same activities (local and
ordinary), timers, signals and patch markers per side, in the same order, on the same
worker settings (services/common/bootstrap.case_worker) — the Temporal ceiling the real
case is held to.

Counted from workflows/incoming/workflows.py, workflows/outgoing/workflows.py and
workflows/case_flow.py for a case whose regions are connected and whose balance is
remitted (R18); the benchmark checks the counts against a real case's history:

  incoming: 10 local activities (load_case_context, 4 x record_case_event,
            2 x record_case_events for 3 and 4 events, 3 x region_connected),
            5 activities (3 x deliver_document, complete_transfer_in, credit_balance),
            3 waits with a timeout (reply, transfer-in, balance), 2 signals in (sheet,
            remittance), 3 patch markers.
  outgoing: 10 local activities (load_case_context, 6 x record_case_event,
            1 x record_case_events for 3 events, 2 x region_connected), 4 activities
            (check_transfer_out, transfer_out, 2 x deliver_document), started by
            signal-with-start, 2 waits with a timeout (transfer-in receipt, credit
            confirmation), 3 signals in (request, transfer-in, credit), 3 patch markers.

Where the real case publishes a document to Kafka and the other side's API signals the
other workflow, the no-op delivery activity signals it directly.

``python -m bench.shape worker incoming|outgoing --target HOST:PORT --queue PREFIX``
runs one side's worker as its own process, as the real stack does.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy

# The patches the real case workflows call (a marker each per side).
PATCHES = ("local-bookkeeping", "record-decisions", "batch-records")
QUICK = timedelta(seconds=30)
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
FAR = timedelta(days=10)  # deadlines are days away, so every wait ends by the signal


def incoming_id(case_id: str) -> str:
    return f"shape-incoming-{case_id}"


def outgoing_id(case_id: str) -> str:
    return f"shape-outgoing-{case_id}"


class Noop:
    """The activities: nothing but their Temporal round trip; delivery signals."""

    def __init__(self, client: Client, queue_prefix: str) -> None:
        self._client = client
        self._prefix = queue_prefix

    @activity.defn(name="noop")
    async def noop(self, step: str) -> str:
        return step

    @activity.defn(name="deliver")
    async def deliver(self, args: list[str]) -> None:
        side, case_id, document = args
        if side == "outgoing" and document == "TransferRequested":
            await self._client.start_workflow(
                ShapeOutgoing.run,
                case_id,
                id=outgoing_id(case_id),
                task_queue=f"{self._prefix}-outgoing",
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                start_signal="document",
                start_signal_args=[document],
            )
            return
        target = incoming_id(case_id) if side == "incoming" else outgoing_id(case_id)
        await self._client.get_workflow_handle(target).signal("document", document)


class _Side:
    def __init__(self) -> None:
        self.inbox: list[str] = []

    @workflow.signal
    def document(self, document: str) -> None:
        self.inbox.append(document)

    async def act(self, step: str) -> None:
        """A bookkeeping step: a local activity, as CaseFlow._bookkeeping runs it."""
        workflow.patched(PATCHES[0])
        await workflow.execute_local_activity(
            "noop", step, start_to_close_timeout=QUICK, retry_policy=RETRY
        )

    async def work(self, step: str) -> None:
        """A step that stays an ordinary activity (records that move money, checks)."""
        await workflow.execute_activity(
            "noop", step, start_to_close_timeout=QUICK, retry_policy=RETRY
        )

    async def deliver(self, side: str, case_id: str, document: str) -> None:
        await workflow.execute_activity(
            "deliver", [side, case_id, document], start_to_close_timeout=QUICK, retry_policy=RETRY
        )

    async def wait_for(self, document: str, within: timedelta | None) -> None:
        await workflow.wait_condition(
            lambda: document in self.inbox,
            timeout=None if within is None else within.total_seconds(),
        )
        self.inbox.remove(document)


@workflow.defn(name="ShapeIncoming")
class ShapeIncoming(_Side):
    @workflow.run
    async def run(self, case_id: str) -> str:
        await self.act("load_case_context")
        workflow.patched(PATCHES[2])
        workflow.patched(PATCHES[1])
        await self.act("record application_accepted + R12, R14 decisions")
        await self.act("region_connected")
        await self.deliver("outgoing", case_id, "TransferRequested")
        await self.act("record transfer_request_sent")
        await self.wait_for("TransferOutCompleted", FAR)
        await self.act("record information_sheet_received, R13, continuity + decision")
        transfer_in = workflow.start_activity(
            "noop", "complete_transfer_in", start_to_close_timeout=QUICK, retry_policy=RETRY
        )
        await workflow.wait([transfer_in], timeout=FAR.total_seconds())
        await transfer_in
        await self.act("region_connected")
        await self.deliver("outgoing", case_id, "TransferInCompleted")
        await self.act("record transfer_in_completed")
        await self.wait_for("BalanceRemitted", FAR)
        await self.work("credit_balance")
        await self.act("region_connected")
        await self.deliver("outgoing", case_id, "BalanceCredited")
        await self.act("record balance_credited")
        await self.act("record case_completed")
        return "completed"


@workflow.defn(name="ShapeOutgoing")
class ShapeOutgoing(_Side):
    @workflow.run
    async def run(self, case_id: str) -> str:
        await self.wait_for("TransferRequested", None)
        await self.act("load_case_context")
        workflow.patched(PATCHES[2])
        workflow.patched(PATCHES[1])
        await self.act("record transfer_request_received + R12, R14 decisions")
        await self.work("check_transfer_out")
        await self.act("record decision")  # balance routing
        await self.work("transfer_out")
        await self.act("region_connected")
        await self.deliver("incoming", case_id, "TransferOutCompleted")
        await self.act("record transferred_out")
        await self.act("region_connected")
        await self.deliver("incoming", case_id, "BalanceRemitted")
        await self.act("record balance_settled")
        await self.wait_for("TransferInCompleted", FAR)
        await self.act("record transfer_in_confirmed")
        await self.wait_for("BalanceCredited", FAR)
        await self.act("record balance_credit_confirmed")
        await self.act("record case_completed")
        return "completed"


async def run_worker(side: str, target: str, prefix: str) -> None:
    # Imported here: the workflow module above stays free of service imports.
    from temporalio.contrib.pydantic import pydantic_data_converter

    from services.common.bootstrap import case_worker

    client = await Client.connect(target, data_converter=pydantic_data_converter)
    noop = Noop(client, prefix)
    workflows: list[type] = [ShapeIncoming] if side == "incoming" else [ShapeOutgoing]
    worker = case_worker(client, f"{prefix}-{side}", workflows, [noop.noop, noop.deliver])
    await worker.run()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.shape")
    sub = parser.add_subparsers(dest="command", required=True)
    worker = sub.add_parser("worker")
    worker.add_argument("side", choices=["incoming", "outgoing"])
    worker.add_argument("--target", required=True)
    worker.add_argument("--queue", required=True, help="task queue prefix")
    args = parser.parse_args()
    asyncio.run(run_worker(args.side, args.target, args.queue))


if __name__ == "__main__":
    main()
