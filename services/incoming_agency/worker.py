"""The incoming agency's Temporal worker: its case and residual workflows, its activities."""

from __future__ import annotations

from services.common.bootstrap import Service, run_worker
from services.incoming_agency.records import IncomingRecordsSql
from workflows.incoming.activities import IncomingActivities
from workflows.incoming.workflows import (
    IncomingCaseWorkflow,
    IncomingResidualWorkflow,
    incoming_workflow_id,
)


async def run(service: Service) -> None:
    side = IncomingActivities(IncomingRecordsSql(service.engine), service.repository)
    await run_worker(
        service,
        [IncomingCaseWorkflow, IncomingResidualWorkflow],
        [side.complete_transfer_in, side.credit_balance, side.certificate_verified],
        incoming_workflow_id,
    )
