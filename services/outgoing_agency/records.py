"""The outgoing agency's records behind its activities (the OutgoingRecords port):
R5-R9 checks, transfer-out with the ledger debit (R16), bank payouts, residual forwarding."""

from __future__ import annotations

from datetime import date

from sqlalchemy import or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from contracts.documents import (
    EnrolmentPeriod,
    InformationSheet,
    PersonIdentity,
    RefusalReason,
    TransferRequested,
)
from domain.eligibility import EnrolmentFacts, OutgoingRequestFacts, check_transfer_out
from domain.identity import normalize_resident_id
from domain.settlement import BalanceChanged, settle_transfer_out
from domain.vocabulary import LedgerLeg
from services.common.db import session_scope
from services.common.faults import crash_point
from services.common.repository import RegionConnectivity, utcnow
from services.common.tables import CaseRow, LedgerEntry, SentDocumentRow
from services.outgoing_agency.tables import EnrolmentRow, PayoutRow
from workflows.outgoing.types import (
    BankPayoutInput,
    BankPayoutResult,
    CheckRequestInput,
    ResidualInput,
    ReturnInput,
    TransferOutFacts,
    TransferOutInput,
)


class TransferOutRefused(LookupError):
    """The records do not allow this transfer-out (no claim, vanished record, changed
    balance): a domain error, never retried (workflows/activities.py)."""


def _facts(row: EnrolmentRow, case_id: str, *, lost_claim: bool = False) -> EnrolmentFacts:
    claimed_elsewhere = row.claimed_by_case not in (None, case_id)
    return EnrolmentFacts(
        id_number=row.id_number,
        name=row.name,
        region=row.region,
        scheme=row.scheme,  # type: ignore[arg-type]
        status=row.status,  # type: ignore[arg-type]
        suspended_on=row.suspended_on,
        arrears_fen=row.arrears_fen,
        account_status=row.account_status,  # type: ignore[arg-type]
        balance_fen=row.balance_fen,
        contribution_months=row.contribution_months,
        also_active_in=row.also_active_in,
        claimed_by_other_case=claimed_elsewhere or lost_claim,
        retired=row.retired,
    )


def _request_facts(req: TransferRequested) -> OutgoingRequestFacts:
    return OutgoingRequestFacts(
        id_number=req.person.id_number,
        name=req.person.name,
        from_region=req.from_region,
        to_region=req.to_region,
        from_scheme=req.from_scheme,
        to_scheme=req.to_scheme,
        bank_account_holder=req.bank_account.account_holder if req.bank_account else None,
        resettled_retiree=req.resettled_retiree,
    )


def _information_sheet(
    row: EnrolmentRow, balance_fen: int, request: TransferOutInput
) -> InformationSheet:
    """The information sheet of a transfer-out: the enrolment and the balance moved."""
    return InformationSheet(
        person=PersonIdentity(id_number=row.id_number, name=row.name),
        from_region=row.region,
        scheme=row.scheme,
        enrolment_periods=[
            EnrolmentPeriod(
                region=row.region,
                scheme=row.scheme,
                start=row.enrolled_since,
                end=row.suspended_on,
                contribution_months=row.contribution_months,
                last_paid_month=row.last_paid_month,  # R25-R27
            )
        ],
        total_contribution_months=row.contribution_months,
        balance_fen=balance_fen,
        transferred_out_on=request.transferred_out_on,
        issued_by_region=row.region,
    )


class OutgoingRecordsSql:
    def __init__(self, engine: Engine, connectivity: RegionConnectivity) -> None:
        self.engine = engine
        self.connectivity = connectivity

    def find_enrolment(self, session: Session, id_number: str, region: str) -> EnrolmentRow | None:
        return session.exec(
            select(EnrolmentRow).where(
                EnrolmentRow.id_number == normalize_resident_id(id_number),
                EnrolmentRow.region == region,
            )
        ).first()

    def check_request(self, request: CheckRequestInput) -> TransferOutFacts:
        """R5-R9 against the record and, when they pass, the enrolment's claim for this
        case in the same transaction: a conditional update that a second concurrent case
        cannot also win, on SQLite and PostgreSQL alike."""
        req = request.request
        with session_scope(self.engine) as session:
            row = self.find_enrolment(session, req.person.id_number, req.from_region)
            facts = None if row is None else _facts(row, request.case_id)
            refusals = check_transfer_out(_request_facts(req), facts)  # R5-R9
            # Claimed only when the transfer-out may proceed: during a soft refusal the
            # record stays editable, so the person's fix (arrears paid) can be entered.
            if row is not None and not refusals and not self._claim(session, row, request.case_id):
                session.refresh(row)
                refusals = check_transfer_out(
                    _request_facts(req), _facts(row, request.case_id, lost_claim=True)
                )
        return TransferOutFacts(
            refusals=[
                RefusalReason(
                    code=r.code,
                    rule=r.rule,
                    soft=r.soft,
                    message_zh=r.message_zh,
                    message_en=r.message_en,
                )
                for r in refusals
            ],
            balance_fen=facts.balance_fen if facts else 0,
            incoming_connected=self.connectivity.is_connected(req.to_region, date.today()),
            enrolment_periods_months=facts.contribution_months if facts else 0,
            retired=facts.retired if facts else False,
        )

    @staticmethod
    def _claim(session: Session, row: EnrolmentRow, case_id: str) -> bool:
        """R5: claim the enrolment for ``case_id`` unless another case holds it or it is
        transferred out. The WHERE clause is the guard (PostgreSQL re-checks it after a
        concurrent writer commits; SQLite serialises writers)."""
        claimed = session.execute(
            update(EnrolmentRow)
            .where(
                col(EnrolmentRow.id) == row.id,
                col(EnrolmentRow.transferred_case_id).is_(None),
                or_(
                    col(EnrolmentRow.claimed_by_case).is_(None),
                    col(EnrolmentRow.claimed_by_case) == case_id,
                ),
            )
            .values(claimed_by_case=case_id)
            .execution_options(synchronize_session=False)
        )
        return bool(claimed.rowcount)  # type: ignore[attr-defined]

    def release_claim(self, case_id: str) -> None:
        """The case ended without a transfer-out (refused, withdrawn, correction window
        over): its enrolment may be claimed by a new case. Idempotent."""
        with session_scope(self.engine) as session:
            session.execute(
                update(EnrolmentRow)
                .where(
                    col(EnrolmentRow.claimed_by_case) == case_id,
                    col(EnrolmentRow.transferred_case_id).is_(None),
                )
                .values(claimed_by_case=None)
                .execution_options(synchronize_session=False)
            )

    def was_transferred_out(self, case_id: str) -> bool:
        """Whether this case ended an enrolment here (R16), or debited a resettled
        retiree's account for its payout (R21: the enrolment stays, the money moved),
        whatever its status says."""
        with session_scope(self.engine) as session:
            ended = session.exec(
                select(EnrolmentRow).where(EnrolmentRow.transferred_case_id == case_id)
            ).first()
            debited = session.exec(
                select(LedgerEntry).where(
                    LedgerEntry.case_id == case_id, LedgerEntry.leg == LedgerLeg.DEBIT_OUTGOING
                )
            ).first()
            # A sheet sent is a transfer-out done, also for an R21 payout of an empty
            # account, which leaves neither an ended enrolment nor a debit.
            sheet = session.exec(
                select(SentDocumentRow).where(
                    SentDocumentRow.case_id == case_id,
                    col(SentDocumentRow.type).in_(("TransferOutCompleted", "InsuranceCertificate")),
                )
            ).first()
            return ended is not None or debited is not None or sheet is not None

    def transfer_out(self, request: TransferOutInput) -> InformationSheet:
        """End the enrolment here and, when the balance moves, debit it to zero (R16) in one
        transaction; for a resettled retiree only the debit for the payout (R21). Idempotent:
        a second call for the same case returns the same sheet."""
        sheet = self._transfer_out(request)
        crash_point("after-debit-commit")  # test-only (services/common/faults.py)
        return sheet

    def _transfer_out(self, request: TransferOutInput) -> InformationSheet:
        req = request.request
        with session_scope(self.engine) as session:
            row = self.find_enrolment(session, req.person.id_number, req.from_region)
            if row is None:
                raise TransferOutRefused(f"case {request.case_id}: enrolment record vanished")
            if request.balance_rule == "R21":  # R21: the payout the checks allowed
                if not row.retired:
                    raise TransferOutRefused(
                        f"case {request.case_id}: an R21 payout for a record that is not retired"
                    )
                balance = self._pay_out_retiree(session, row, request)
            elif row.transferred_case_id != request.case_id:
                balance = self._end_enrolment(session, row, request)
            else:
                case = session.get(CaseRow, request.case_id)
                balance = int(
                    (case.application if case else {}).get("balance_fen", row.balance_fen)
                )
            return _information_sheet(row, balance, request)

    @staticmethod
    def _end_enrolment(session: Session, row: EnrolmentRow, request: TransferOutInput) -> int:
        """End the enrolment for the case holding its claim and settle the account (R16:
        domain/settlement.py); returns the balance moved, which the sheet reports."""
        # R5: only the case holding the claim transfers out, once (conditional).
        moved = session.execute(
            update(EnrolmentRow)
            .where(
                col(EnrolmentRow.id) == row.id,
                col(EnrolmentRow.claimed_by_case) == request.case_id,
                col(EnrolmentRow.transferred_case_id).is_(None),
            )
            .values(status="transferred_out", transferred_case_id=request.case_id)
            .execution_options(synchronize_session=False)
        )
        if not moved.rowcount:  # type: ignore[attr-defined]
            raise TransferOutRefused(
                f"case {request.case_id}: the enrolment is not claimed by this case"
            )
        session.refresh(row)
        try:
            settled = settle_transfer_out(
                row.balance_fen, request.expected_balance_fen, request.balance_action
            )
        except BalanceChanged:
            raise TransferOutRefused(
                f"case {request.case_id}: the balance changed since the check"
            ) from None
        if settled.debit_fen:
            session.add(
                LedgerEntry(
                    case_id=request.case_id,
                    remittance_id=request.remittance_id,
                    leg=LedgerLeg.DEBIT_OUTGOING,
                    amount_fen=settled.debit_fen,
                    created_at=utcnow(),
                )
            )
        row.balance_fen = settled.balance_after_fen
        session.add(row)
        case = session.get(CaseRow, request.case_id)
        if case is not None:
            case.application = {
                **case.application,
                "balance_fen": settled.balance_fen,
                "balance_action": request.balance_action,
                "transferred_out_on": request.transferred_out_on.isoformat(),
            }
            session.add(case)
        return settled.balance_fen

    @staticmethod
    def _pay_out_retiree(session: Session, row: EnrolmentRow, request: TransferOutInput) -> int:
        """R21: a resettled retiree's account is debited for the bank payout, once per
        case; the enrolment is not ended (status and transferred_case_id stay: the retiree
        stays enrolled here), and the workflow releases the case's claim after the payout
        (R5). Returns the balance the sheet reports."""
        debit = session.exec(
            select(LedgerEntry).where(
                LedgerEntry.case_id == request.case_id,
                LedgerEntry.remittance_id == request.remittance_id,
                LedgerEntry.leg == LedgerLeg.DEBIT_OUTGOING,
            )
        ).first()
        if debit is not None:  # a retry after the commit: paid out once
            return debit.amount_fen
        if row.claimed_by_case != request.case_id or row.transferred_case_id is not None:
            raise TransferOutRefused(
                f"case {request.case_id}: the enrolment is not claimed by this case"
            )
        balance = row.balance_fen
        if balance != request.expected_balance_fen:
            raise TransferOutRefused(f"case {request.case_id}: the balance changed since the check")
        if request.balance_action == "pay_to_bank" and balance > 0:
            # Conditional like the transfer-out's: only while this case holds the claim.
            debited = session.execute(
                update(EnrolmentRow)
                .where(
                    col(EnrolmentRow.id) == row.id,
                    col(EnrolmentRow.claimed_by_case) == request.case_id,
                    col(EnrolmentRow.balance_fen) == balance,
                )
                .values(balance_fen=0)
                .execution_options(synchronize_session=False)
            )
            if not debited.rowcount:  # type: ignore[attr-defined]
                raise TransferOutRefused(
                    f"case {request.case_id}: the enrolment changed since the check"
                )
            session.add(
                LedgerEntry(
                    case_id=request.case_id,
                    remittance_id=request.remittance_id,
                    leg=LedgerLeg.DEBIT_OUTGOING,
                    amount_fen=balance,
                    created_at=utcnow(),
                )
            )
        case = session.get(CaseRow, request.case_id)
        if case is not None:
            case.application = {
                **case.application,
                "balance_fen": balance,
                "balance_action": request.balance_action,
                "paid_out_on": request.transferred_out_on.isoformat(),
            }
            session.add(case)
        return balance

    def pay_to_bank(self, request: BankPayoutInput) -> BankPayoutResult:
        """The bank payout port (a real bank adapter replaces the row write in production);
        keyed by remittance id, so a retry pays once."""
        with session_scope(self.engine) as session:
            existing = session.get(PayoutRow, request.remittance_id)
            if existing is not None:
                return BankPayoutResult(
                    account_last4=existing.account_last4, paid_on=existing.paid_on
                )
            case = session.get(CaseRow, request.case_id)
            account = ((case.application if case else {}).get("bank_account") or {}).get(
                "account_number", ""
            )
            payout = PayoutRow(
                remittance_id=request.remittance_id,
                case_id=request.case_id,
                amount_fen=request.amount_fen,
                account_last4=account[-4:] or "????",
                rule=request.rule,
                paid_on=date.today(),
                created_at=utcnow(),
            )
            session.add(payout)
            session.add(
                LedgerEntry(
                    case_id=request.case_id,
                    remittance_id=request.remittance_id,
                    leg=LedgerLeg.BANK_PAYOUT,
                    amount_fen=request.amount_fen,
                    created_at=utcnow(),
                )
            )
            return BankPayoutResult(account_last4=payout.account_last4, paid_on=payout.paid_on)

    def restore_returned(self, request: ReturnInput) -> int:
        """A remittance sent back by the incoming agency is credited to the old account
        again (R16: nothing lost), once per remittance id. Only this agency's own debit
        of this case is restored, by its own amount: a return for another case's
        remittance, or one claiming another amount, restores nothing more (the workflow
        escalates the difference). Returns the amount restored."""
        with session_scope(self.engine) as session:
            debit = session.exec(
                select(LedgerEntry).where(
                    LedgerEntry.case_id == request.case_id,
                    LedgerEntry.remittance_id == request.remittance_id,
                    LedgerEntry.leg == LedgerLeg.DEBIT_OUTGOING,
                )
            ).first()
            if debit is None:
                return 0
            exists = session.exec(
                select(LedgerEntry).where(
                    LedgerEntry.remittance_id == request.remittance_id,
                    LedgerEntry.leg == LedgerLeg.RETURNED_TO_OUTGOING,
                )
            ).first()
            if exists is not None:
                return exists.amount_fen
            session.add(
                LedgerEntry(
                    case_id=request.case_id,
                    remittance_id=request.remittance_id,
                    leg=LedgerLeg.RETURNED_TO_OUTGOING,
                    amount_fen=debit.amount_fen,
                    created_at=utcnow(),
                )
            )
            row = session.exec(
                select(EnrolmentRow).where(EnrolmentRow.transferred_case_id == request.case_id)
            ).first()
            if row is not None:
                row.balance_fen += debit.amount_fen
                session.add(row)
            return debit.amount_fen

    def post_residual(self, request: ResidualInput) -> str:
        """A late contribution after transfer-out: booked in and debited straight out to the
        same case's destination, once per contribution id."""
        remittance_id = f"{request.case_id}-residual-{request.contribution_id}"
        with session_scope(self.engine) as session:
            exists = session.exec(
                select(LedgerEntry).where(
                    LedgerEntry.remittance_id == remittance_id,
                    LedgerEntry.leg == LedgerLeg.DEBIT_OUTGOING,
                )
            ).first()
            if exists is None:
                session.add(
                    LedgerEntry(
                        case_id=request.case_id,
                        remittance_id=remittance_id,
                        leg=LedgerLeg.LATE_CONTRIBUTION,
                        amount_fen=request.amount_fen,
                        created_at=utcnow(),
                    )
                )
                session.add(
                    LedgerEntry(
                        case_id=request.case_id,
                        remittance_id=remittance_id,
                        leg=LedgerLeg.DEBIT_OUTGOING,
                        amount_fen=request.amount_fen,
                        created_at=utcnow(),
                    )
                )
        return remittance_id
