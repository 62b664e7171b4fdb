"""R24-R28 on a case: the incoming workflow counts the interruption from the sheet's last
paid month to the month the incoming enrolment starts (the application's), not from the
suspension, and shows back-payment figures only where back-payment is allowed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pytest
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.testing import WorkflowEnvironment

from contracts.documents import InformationSheet, TransferInCompleted
from domain.continuity import add_months, month_of
from tests.support.workflow_fakes import (
    CONTRIBUTION_MONTHS,
    FakeOutgoingRecords,
    InMemoryPlatform,
    running_platform,
    transfer_request,
)
from workflows.incoming.types import IncomingCaseInput
from workflows.incoming.workflows import IncomingCaseWorkflow, incoming_workflow_id
from workflows.outgoing.types import TransferOutInput

pytestmark = pytest.mark.workflow


@dataclass
class PaidBeforeSuspension(FakeOutgoingRecords):
    """The sheet says the last payment was ``unpaid_months + 1`` months before the month
    the enrolment starts at the incoming region; the suspension (the period's end) is the
    transfer-out date, much later."""

    unpaid_months: int = 4
    enrolled_since: date = date(2026, 12, 1)

    def transfer_out(self, request: TransferOutInput) -> InformationSheet:
        sheet = super().transfer_out(request)
        paid = add_months(month_of(self.enrolled_since), -(self.unpaid_months + 1))
        period = sheet.enrolment_periods[0].model_copy(update={"last_paid_month": paid})
        return sheet.model_copy(update={"enrolment_periods": [period]})


async def run_case(platform: InMemoryPlatform, accepted_on: date, enrolled_since: date) -> None:
    platform.incoming = await platform.client.start_workflow(
        IncomingCaseWorkflow.run,
        IncomingCaseInput(
            case_id=platform.case_id,
            request=transfer_request(accepted_on),
            accepted_on=accepted_on,
            incoming_enrolled_since=enrolled_since,
        ),
        id=incoming_workflow_id(platform.case_id),
        task_queue=platform.queues["incoming"],
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )
    assert await platform.results() == ("completed", "completed")


async def test_r27_case_counts_the_interruption_from_the_last_paid_month(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    records = PaidBeforeSuspension(unpaid_months=4)
    async with running_platform(time_skipping_env, client, outgoing_records=records) as platform:
        accepted_on = await platform.today()
        records.enrolled_since = accepted_on
        await run_case(platform, accepted_on, accepted_on)

        continuity = platform.incoming_store.one("continuity_assessed").facts["continuity"]
        assert continuity["interruption_months"] == 4  # the period ended this month
        assert continuity["last_paid_month"] == add_months(month_of(accepted_on), -5).isoformat()
        assert continuity["rules"] == ["R24", "R27"]
        assert continuity["back_payment_estimate_fen"] is None
        decisions = platform.incoming_store.decisions()
        assert "R27" in decisions
        assert "R28" not in decisions
        assert "中断缴费4个月（超过3个月）" in str(decisions["R27"].detail["explanation_zh"])
        (completed,) = [
            d.document()
            for d in platform.publishers["incoming"].documents
            if d.type == "TransferInCompleted"
        ]
        assert isinstance(completed, TransferInCompleted)
        assert completed.deemed_contribution_months == CONTRIBUTION_MONTHS


async def test_r25_r28_case_shows_back_payment_months_as_of_the_sheets_receipt(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    records = PaidBeforeSuspension(unpaid_months=2)
    async with running_platform(time_skipping_env, client, outgoing_records=records) as platform:
        accepted_on = await platform.today()
        records.enrolled_since = accepted_on
        await run_case(platform, accepted_on, accepted_on)

        continuity = platform.incoming_store.one("continuity_assessed").facts["continuity"]
        assert continuity["interruption_months"] == 2
        assert continuity["rules"] == ["R24", "R25", "R28"]
        assert len(continuity["back_payment_months"]) == 2
        assert continuity["paid_on"] >= accepted_on.isoformat()  # not before it is assessed
        # Fuzhou's policy sets no base or rate: "not set", no amount invented.
        assert continuity["back_payment_base_fen"] is None
        assert continuity["back_payment_estimate_fen"] is None
        r28 = platform.incoming_store.decisions()["R28"]
        assert "未设定" in str(r28.detail["explanation_zh"])
