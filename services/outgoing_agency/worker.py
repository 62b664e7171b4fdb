"""The outgoing agency's Temporal worker: its case and residual workflows, its activities."""

from __future__ import annotations

from services.common.bootstrap import Service, run_worker
from services.outgoing_agency.certificates import CertificateStoreSql
from services.outgoing_agency.records import OutgoingRecordsSql
from workflows.outgoing.activities import CertificateActivities, OutgoingActivities
from workflows.outgoing.workflows import (
    OutgoingCaseWorkflow,
    OutgoingResidualWorkflow,
    OutgoingStopAnswerWorkflow,
    outgoing_workflow_id,
)


async def run(service: Service) -> None:
    side = OutgoingActivities(
        OutgoingRecordsSql(service.engine, service.connectivity), service.repository
    )
    # R10/R23: the insurance certificate, signed with the region's key like the documents.
    certificates = CertificateActivities(service.signer, CertificateStoreSql(service.engine))
    await run_worker(
        service,
        [OutgoingCaseWorkflow, OutgoingResidualWorkflow, OutgoingStopAnswerWorkflow],
        [
            side.check_transfer_out,
            side.transfer_out,
            side.pay_balance_to_bank,
            side.post_residual_remittance,
            side.restore_returned_balance,
            side.release_enrolment_claim,
            side.was_transferred_out,
            certificates.issue_insurance_certificate,
        ],
        outgoing_workflow_id,
    )
