"""The incoming agency's records behind its activities (the IncomingRecords port)."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import select

from domain.continuity import deemed_employee_months
from domain.identity import fingerprint
from domain.matching import main_remittance_id
from domain.vocabulary import LedgerLeg
from services.common.db import session_scope
from services.common.repository import utcnow
from services.common.tables import CaseRow, LedgerEntry
from services.incoming_agency.tables import TransferInRow
from workflows.incoming.types import CreditInput, TransferInInput, TransferInResult


class IncomingRecordsSql:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def complete_transfer_in(self, request: TransferInInput) -> TransferInResult:
        """Load the sheet and continue the enrolment here (R13); the transferred
        employee-scheme months count as deemed employee contribution years (R24; resident-
        scheme months stay on the sheet, not deemed). Once per case."""
        with session_scope(self.engine) as session:
            row = session.get(TransferInRow, request.case_id)
            if row is None:
                case = session.get(CaseRow, request.case_id)
                row = TransferInRow(
                    case_id=request.case_id,
                    person_key=fingerprint(request.sheet.person.id_number),
                    region=case.to_region if case else request.sheet.from_region,
                    scheme=case.to_scheme if case else request.sheet.scheme,
                    # R24: employee-scheme months only.
                    deemed_contribution_months=deemed_employee_months(
                        request.sheet.enrolment_periods
                    ),
                    sheet=request.sheet.model_dump(mode="json"),
                    completed_on=request.completed_on,
                    created_at=utcnow(),
                )
                session.add(row)
            return TransferInResult(deemed_contribution_months=row.deemed_contribution_months)

    def residual_allowed(self, case_id: str) -> bool:
        """R16: a residual remittance follows a balance that was remitted and credited
        here; not a case paid to the bank, kept usable (R20) or into a resident scheme."""
        with session_scope(self.engine) as session:
            credited = session.exec(
                select(LedgerEntry).where(
                    LedgerEntry.case_id == case_id,
                    LedgerEntry.remittance_id == main_remittance_id(case_id),
                    LedgerEntry.leg == LedgerLeg.CREDIT_INCOMING,
                )
            ).first()
            case = session.get(CaseRow, case_id)
            return credited is not None and case is not None and case.to_scheme == "employee"

    def credit(self, request: CreditInput) -> None:
        """Credit the new personal account (R15) once per remittance id."""
        with session_scope(self.engine) as session:
            exists = session.exec(
                select(LedgerEntry).where(
                    LedgerEntry.remittance_id == request.remittance_id,
                    LedgerEntry.leg == LedgerLeg.CREDIT_INCOMING,
                )
            ).first()
            if exists is not None and exists.case_id != request.case_id:
                # A remittance id belongs to one case: another case's id credits nothing.
                raise LookupError(
                    f"case {request.case_id}: remittance {request.remittance_id} "
                    "belongs to another case"
                )
            if exists is None:
                session.add(
                    LedgerEntry(
                        case_id=request.case_id,
                        remittance_id=request.remittance_id,
                        leg=LedgerLeg.CREDIT_INCOMING,
                        amount_fen=request.amount_fen,
                        created_at=utcnow(),
                    )
                )
