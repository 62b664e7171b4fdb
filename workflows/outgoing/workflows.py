"""The outgoing agency's case workflow: R5-R9 checks, transfer-out with the signed
information sheet (R12, R16), and the balance: remit, pay to the bank, or keep (R18-R22)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import date, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from contracts.documents import (
        BalanceCredited,
        BalanceMismatch,
        BalanceNotTransferred,
        BalancePaidToBank,
        BalanceRemitted,
        BalanceReturned,
        InformationSheet,
        InsuranceCertificate,
        InsuranceCertificateIssued,
        RefusalReason,
        TransferOutCompleted,
        TransferRefused,
        TransferRequested,
        WithdrawalAnswered,
        WithdrawalRequested,
    )
    from contracts.envelope import Envelope
    from domain.balance import BalanceDecision, BalancePolicy, decide_balance
    from domain.continuity import balance_decision
    from domain.limits import CaseDeadlines
    from domain.matching import main_remittance_id
    from domain.vocabulary import CaseEventName, EscalationReason, OutgoingStatus, StopAnswerCode
    from workflows.activities import CaseActivities
    from workflows.case_flow import QUICK, QUICK_RETRY, CaseFlow, CaseWorkflowBase
    from workflows.clock import end_of_day
    from workflows.outgoing.activities import CertificateActivities, OutgoingActivities
    from workflows.outgoing.types import (
        BankPayoutInput,
        CheckRequestInput,
        OutgoingCaseInput,
        ResidualInput,
        ReturnInput,
        StopAnswerInput,
        TransferOutFacts,
        TransferOutInput,
    )
    from workflows.types import Awaiting

REQUEST = ("TransferRequested",)
WITHDRAWAL = ("WithdrawalRequested",)
# How long a request marked by_certificate waits for the switch that follows it.
ANNOUNCED_SWITCH_WAIT = timedelta(days=1)
CONFIRMATIONS = ("TransferInCompleted", "BalanceCredited", "BalanceMismatch", "BalanceReturned")
PATIENT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=10)
)


@dataclass(frozen=True)
class _TransferredOut:
    """What a transfer-out leaves the rest of the case: the request it answered (the
    first or a corrected one), that request's limits, the balance decision, the sheet."""

    cause: Envelope
    plan: CaseDeadlines
    decision: BalanceDecision
    sheet: InformationSheet


def _transfer_out_awaited(plan: CaseDeadlines) -> Awaiting:
    return Awaiting(
        what="transfer-out by this agency",
        from_party="outgoing agency",
        by=plan.transfer_out_due.due,
    )


def outgoing_workflow_id(case_id: str) -> str:
    return f"outgoing-{case_id}"


@workflow.defn
class OutgoingCaseWorkflow(CaseWorkflowBase):
    """Started by the first TransferRequested (signal-with-start from the Kafka handler)."""

    def __init__(self) -> None:
        super().__init__()
        # Set in the same workflow task that takes the last look for a withdrawal before
        # the transfer-out starts: from then on a withdrawal is answered "too late".
        self._transferring = False
        self._sheet_delivered = False
        self._answering = 0  # answers to late stops on their way (the case waits for them)
        self._closing = False
        # R10/R23: an offline switch taken before transfer-out: the transfer-out is then
        # by insurance certificate, not by the sheet through the platform.
        self._offline: Envelope | None = None

    @workflow.run
    async def run(self, case: OutgoingCaseInput) -> str:
        status = await self._run(case)
        return await self._close(status)

    async def _close(self, status: str) -> str:
        """Whatever ended the case, a stop still in the inbox is answered before the
        workflow ends (one arriving during the last workflow task makes Temporal run
        another, so this look is the last word): accepted when nothing was transferred
        out, too late when it was. The incoming case waits for that answer."""
        flow = self.flow
        assert flow is not None
        self._closing = True  # from here on this loop answers, not the background task
        await workflow.wait_condition(lambda: self._answering == 0)
        while (stop := flow.take(WITHDRAWAL)) is not None:
            request = stop.document_as(WithdrawalRequested)
            answer = stop_answer(request, transferred_out=self._transferring)
            await flow.deliver(
                flow.envelope(
                    answer,
                    f"withdrawal-answer-{flow.take_count(WITHDRAWAL)}",
                    stop.from_region,
                    stop.message_id,
                )
            )
        return status

    async def _run(self, case: OutgoingCaseInput) -> str:
        flow = self.adopt(CaseFlow(case.case_id, "outgoing", case.region))
        flow.listen_for_notices()
        # The request comes with the start (signal-with-start); wait for it all the same.
        await workflow.wait_condition(lambda: flow.holds(REQUEST))
        first = flow.take(REQUEST)
        assert first is not None, "an outgoing case starts with a transfer request"
        request = first.document_as(TransferRequested)
        incoming_region = first.from_region
        context = await flow.load_context(request.applied_on, counterpart=incoming_region)
        assert flow.calendar is not None
        # R12: 10 working days from acceptance, or from the day this agency's region went
        # live when the request had to wait for it (R23); the incoming agency says which.
        plan = flow.plan_transfer_out(request.limit_starts_on or request.applied_on)
        async with flow.together():
            await flow.record(
                CaseEventName.TRANSFER_REQUEST_RECEIVED,
                OutgoingStatus.CHECKING,
                rule="R12",
                detail={
                    "message_id": first.message_id,
                    "incoming_region": incoming_region,
                    "policy_version": context.policy_version,
                },
                awaiting=_transfer_out_awaited(plan),
                facts={"policy_version": context.policy_version},
            )
            await flow.decide(flow.deadline_decisions(plan))
        out = await self._check_and_transfer_out(flow, first, plan, context.policy_version)
        if isinstance(out, str):  # refused, withdrawn or stopped before transfer-out
            return out
        return await self._after_transfer_out(flow, out, incoming_region)

    async def _check_and_transfer_out(
        self, flow: CaseFlow, first: Envelope, plan: CaseDeadlines, policy_version: str
    ) -> _TransferredOut | str:
        """R5-R9, then the transfer-out, again after each corrected request; the case's
        status when it ended before a transfer-out."""
        request = first.document_as(TransferRequested)
        incoming_region = first.from_region
        attempt = 1
        while True:
            if request.by_certificate:  # the first request or a corrected one
                await self._await_announced_switch(flow)
            facts = await workflow.execute_activity_method(
                OutgoingActivities.check_transfer_out,
                CheckRequestInput(case_id=flow.case_id, request=request),
                start_to_close_timeout=QUICK,
                retry_policy=QUICK_RETRY,
            )
            if facts.refusals:
                if self._offline is not None:  # R10/R23: no certificate on refused records
                    return await self._withdrawn(flow, self._offline, incoming_region)
                corrected = await self._refuse(
                    flow, facts.refusals, attempt, incoming_region, first
                )
                if corrected is None:
                    await self._release_claim(flow)
                    return flow.status
                first, request = corrected, corrected.document_as(TransferRequested)
                attempt += 1
                # R12: this agency's limit runs again from receipt of the corrected request.
                plan = await flow.replan_transfer_out(flow.today())
                flow.awaiting = _transfer_out_awaited(plan)
                await flow.decide(flow.deadline_decisions(plan))
                continue
            stop = self._take_stop(flow)
            if stop is not None:  # before transfer-out: accepted, nothing moves
                return await self._withdrawn(flow, stop, incoming_region)
            # No await between the last look and this flag: a withdrawal signalled from
            # now on is answered "too late" (R16: the balance is on its way).
            self._transferring = True
            decision = self._decide(flow, request, facts, incoming_region)
            await flow.decide([balance_decision(decision, policy_version)])
            sheet = await self._transfer_out(flow, request, decision, facts)
            if sheet is not None:
                return _TransferredOut(first, plan, decision, sheet)
            # The records refused the transfer-out and rolled it back: nothing was
            # debited, so a withdrawal is still accepted; a clerk's retry checks again.
            self._transferring = False
            stop = self._take_stop(flow)
            if stop is not None:
                return await self._withdrawn(flow, stop, incoming_region)

    async def _after_transfer_out(
        self, flow: CaseFlow, out: _TransferredOut, incoming_region: str
    ) -> str:
        """The sheet (or certificate) and the balance, then the incoming side's answers."""
        decision = out.decision
        asyncio.get_running_loop().create_task(self._answer_late_withdrawals(flow, incoming_region))
        notice: Envelope | None = None  # R10/R23: the certificate's, when not delivered yet
        if self._offline is not None:
            notice = await self._issue_certificate(flow, out.sheet, decision, incoming_region)
        else:
            await flow.deliver(
                flow.envelope(
                    TransferOutCompleted(
                        info_sheet=out.sheet,
                        balance_action=decision.action,
                        balance_rule=decision.rule,
                    ),
                    "sheet",
                    incoming_region,
                    out.cause.message_id,
                )
            )
        await flow.refresh_calendar("R13", flow.today(), flow.limits.transfer_in_days)
        # R21: a resettled retiree's account is paid out; the enrolment is not transferred.
        payout_only = decision.rule == "R21"
        await flow.record(
            CaseEventName.ACCOUNT_PAID_OUT if payout_only else CaseEventName.TRANSFERRED_OUT,
            OutgoingStatus.BALANCE,
            rule="R21" if payout_only else "R16",
            detail={
                "balance_action": decision.action,
                "balance_rule": decision.rule,
                "amount_fen": decision.amount_fen,
                "signed": True,
            },
        )
        self._sheet_delivered = True
        transfer_in_due = self._incoming_transfer_in_due(flow, out.plan)
        await self._move_balance(flow, decision, incoming_region, out.cause.message_id)
        if notice is not None:  # the balance went first: it did not wait for the region
            await flow.deliver(notice)
        if payout_only:  # R21/R5: the retiree stays enrolled here; the record is free again
            await self._release_claim(flow)
        credit_due = flow.working_days_after(flow.today(), flow.limits.transfer_in_days)
        await flow.record(
            CaseEventName.BALANCE_SETTLED,
            OutgoingStatus.AWAITING_CONFIRMATION,
            rule=decision.rule,
            awaiting=Awaiting(
                what="transfer-in receipt from the incoming agency",
                from_party=f"incoming agency of region {incoming_region}",
                by=max(transfer_in_due, credit_due),
            ),
        )
        settled = await self._await_confirmations(
            flow, decision, incoming_region, transfer_in_due, credit_due
        )
        return await self._end(flow, settled)

    def _incoming_transfer_in_due(self, flow: CaseFlow, plan: CaseDeadlines) -> date:
        # R13: the incoming agency's own limit runs from its receipt of the sheet; it is
        # escalated only when that has run out (not at R14's mark when this side was late).
        transfer_in_due = flow.transfer_in_deadline(flow.today()).due
        if self._offline is not None:
            # R10: the person brings the certificate by the incoming side's date (the whole
            # case's limit, at least the R13 days from now: CERTIFICATE_NOT_BROUGHT there);
            # the incoming agency's own days run from then, and are watched here too.
            brought_by = max(plan.total_due.due, transfer_in_due)
            transfer_in_due = flow.transfer_in_deadline(brought_by).due
        return transfer_in_due

    @staticmethod
    async def _end(flow: CaseFlow, settled: bool) -> str:
        """R14: the case completes once the incoming side confirmed; R16: a returned
        balance ends it."""
        if not settled:
            await flow.record(
                CaseEventName.CASE_CLOSED_BALANCE_RETURNED,
                OutgoingStatus.BALANCE_RETURNED,
                rule="R16",
                awaiting=None,
                terminal=True,
            )
            return flow.status
        await flow.record(
            CaseEventName.CASE_COMPLETED,
            OutgoingStatus.COMPLETED,
            rule="R14",
            awaiting=None,
            terminal=True,
        )
        return flow.status

    def _decide(
        self,
        flow: CaseFlow,
        request: TransferRequested,
        facts: TransferOutFacts,
        incoming_region: str,
    ) -> BalanceDecision:
        context = flow.context
        assert context is not None
        policy = BalancePolicy(
            intra_province=dict(context.intra_province_balance),  # type: ignore[arg-type]
            employee_to_resident=context.employee_to_resident_balance,  # type: ignore[arg-type]
        )
        # R18-R22 (and R19 when the incoming region cannot receive a remittance).
        return decide_balance(
            from_region=request.from_region,
            to_region=incoming_region,
            from_scheme=request.from_scheme,
            to_scheme=request.to_scheme,
            balance_fen=facts.balance_fen,
            # R21: the applicant's claim counts only where the record shows a retiree.
            resettled_retiree=request.resettled_retiree and facts.retired,
            incoming_connected=facts.incoming_connected,
            has_bank_account=request.bank_account is not None,
            policy=policy,
        )

    async def _refuse(
        self,
        flow: CaseFlow,
        refusals: list[RefusalReason],
        attempt: int,
        incoming_region: str,
        cause: Envelope,
    ) -> Envelope | None:
        """R5-R9: refuse with codes; a soft refusal may be corrected on the same case."""
        soft = all(r.soft for r in refusals)
        until = flow.soft_refusal_deadline(flow.today()).due if soft else None
        await flow.deliver(
            flow.envelope(
                TransferRefused(reasons=refusals, correctable_until=until),
                f"refusal-{attempt}",
                incoming_region,
                cause.message_id,
            )
        )
        # An AuditRecord names one rule: the lowest; the detail lists them all.
        rules = ",".join(sorted({r.rule for r in refusals}, key=lambda r: int(r[1:])))
        rule = rules.split(",")[0]
        codes = ",".join(r.code for r in refusals)
        if until is None:
            await flow.record(
                CaseEventName.TRANSFER_REFUSED,
                OutgoingStatus.REFUSED,
                rule=rule,
                detail={"codes": codes, "rules": rules},
                awaiting=None,
                terminal=True,
            )
            return None
        await flow.record(
            CaseEventName.TRANSFER_REFUSED_CORRECTABLE,
            OutgoingStatus.REFUSED_CORRECTABLE,
            rule=rule,
            detail={"codes": codes, "rules": rules, "correctable_until": until.isoformat()},
            awaiting=Awaiting(what="a corrected application", from_party="applicant", by=until),
        )
        document = await flow.wait_for(REQUEST + WITHDRAWAL, end_of_day(until))
        if document is None:
            await flow.record(
                CaseEventName.CORRECTION_WINDOW_EXPIRED,
                OutgoingStatus.REFUSED,
                rule=rule,
                awaiting=None,
                terminal=True,
            )
            return None
        if document.type in WITHDRAWAL:
            await self._withdrawn(flow, document, incoming_region)
            return None
        await flow.record(
            CaseEventName.CORRECTED_REQUEST_RECEIVED,
            OutgoingStatus.CHECKING,
            detail={"message_id": document.message_id},
        )
        return document

    async def _withdrawn(self, flow: CaseFlow, stop: Envelope, incoming_region: str) -> str:
        """A withdrawal, cancellation or offline switch before transfer-out: accepted.
        Nothing was debited and nothing will be; the enrolment is free again (R5)."""
        request = stop.document_as(WithdrawalRequested)
        await self._release_claim(flow)
        answer = stop_answer(request, transferred_out=False)
        await flow.deliver(
            flow.envelope(answer, "withdrawal-answer", incoming_region, stop.message_id)
        )
        status, event = {
            "withdrawal": ("withdrawn", "application_withdrawn"),
            "cancellation": ("cancelled", "case_cancelled_by_incoming_agency"),
            "offline_channel": ("offline_channel", "switched_to_offline_channel"),
        }[request.kind]
        await flow.record(
            event,
            status,
            rule="R23" if request.kind == "offline_channel" else "R16",
            detail={"message_id": stop.message_id, "kind": request.kind},
            awaiting=None,
            terminal=True,
        )
        return flow.status

    async def _await_announced_switch(self, flow: CaseFlow) -> None:
        """R10/R23: the request says an offline switch follows it (the incoming agency sends
        it right after, on the same partition). The check and the transfer-out wait for it,
        so the transfer-out is by certificate as the clerk asked, whatever the timing. If it
        has not come within a day (the incoming case was ended by hand), the case goes on
        online: a switch arriving later is answered as any late one."""
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: flow.holds(WITHDRAWAL),
                timeout=ANNOUNCED_SWITCH_WAIT,
            )

    def _take_stop(self, flow: CaseFlow) -> Envelope | None:
        """The stop to accept before transfer-out, if one came. An offline switch is no end
        (R10/R23): it is kept, and the transfer-out goes on by insurance certificate."""
        while (stop := flow.take(WITHDRAWAL)) is not None:
            kind = stop.document_as(WithdrawalRequested).kind
            if kind == "offline_channel" and self._offline is None:
                self._offline = stop
                continue
            return stop
        return None

    async def _issue_certificate(
        self,
        flow: CaseFlow,
        sheet: InformationSheet,
        decision: BalanceDecision,
        incoming_region: str,
    ) -> Envelope | None:
        """R10/R23: the transfer-out just done (R16, the same records step and debit as
        online) is by certificate: the insurance certificate, with the sheet's contents
        and the balance action, is signed and kept for the person at the counter (the
        print route hands it out) instead of the sheet's delivery. The incoming case hears
        of it now if its region can receive documents; otherwise the notice (returned) goes
        after the balance, which does not wait for that region (R19)."""
        stop = self._offline
        assert stop is not None
        certificate = await self._sign_certificate(flow, sheet, decision, incoming_region, stop)
        notice = flow.envelope(
            InsuranceCertificateIssued(
                certificate_number=certificate.certificate_number,
                issued_on=certificate.issued_on,
                balance_action=decision.action,
                balance_rule=decision.rule,
            ),
            "certificate-issued",
            incoming_region,
            stop.message_id,
        )
        connected: bool = await workflow.execute_activity_method(
            CaseActivities.region_connected,
            incoming_region,
            start_to_close_timeout=QUICK,
            retry_policy=QUICK_RETRY,
        )
        if connected:
            await flow.deliver(notice, region_checked=True)
        await flow.record(
            CaseEventName.INSURANCE_CERTIFICATE_ISSUED,
            OutgoingStatus.OFFLINE_CERTIFICATE_ISSUED,
            rule="R10",
            detail={
                "certificate_number": certificate.certificate_number,
                "message_id": stop.message_id,
                "balance_action": decision.action,
                "amount_fen": decision.amount_fen,
                "incoming_told": connected,
            },
            awaiting=Awaiting(
                what="the person to bring the insurance certificate to the incoming agency",
                from_party="the insured person",
            ),
        )
        return None if connected else notice

    @staticmethod
    async def _sign_certificate(
        flow: CaseFlow,
        sheet: InformationSheet,
        decision: BalanceDecision,
        incoming_region: str,
        switch: Envelope,
    ) -> InsuranceCertificate:
        """The case's insurance certificate, signed and kept by the issuing activity."""
        certificate = InsuranceCertificate(
            certificate_number=certificate_number(flow.region, flow.case_id),
            issued_on=flow.today(),
            to_region=incoming_region,
            info_sheet=sheet,
            balance_action=decision.action,
            balance_rule=decision.rule,
        )
        await workflow.execute_activity_method(
            CertificateActivities.issue_insurance_certificate,
            flow.envelope(certificate, "certificate", incoming_region, switch.message_id),
            start_to_close_timeout=QUICK,
            retry_policy=PATIENT_RETRY,
        )
        return certificate

    async def _answer_late_withdrawals(self, flow: CaseFlow, incoming_region: str) -> None:
        """After transfer-out a withdrawal is refused as too late, with the reason; the
        case goes on to its credit. Answered once the sheet is delivered, so the sheet
        reaches the incoming agency first (one case, one partition, in order)."""
        while True:
            await workflow.wait_condition(
                lambda: self._sheet_delivered and not self._closing and flow.holds(WITHDRAWAL)
            )
            stop = flow.take(WITHDRAWAL)
            assert stop is not None
            self._answering += 1
            request = stop.document_as(WithdrawalRequested)
            answer = stop_answer(request, transferred_out=True)
            await flow.deliver(
                flow.envelope(
                    answer,
                    f"withdrawal-answer-{flow.take_count(WITHDRAWAL)}",
                    incoming_region,
                    stop.message_id,
                )
            )
            await flow.record(
                CaseEventName.WITHDRAWAL_REFUSED_TOO_LATE,
                rule="R16",
                detail={"message_id": stop.message_id, "kind": request.kind},
            )
            self._answering -= 1

    async def _transfer_out(
        self,
        flow: CaseFlow,
        request: TransferRequested,
        decision: BalanceDecision,
        facts: TransferOutFacts,
    ) -> InformationSheet | None:
        """R16: end the enrolment and debit it, retried while the records are away; None
        when the records refuse it (a domain error, rolled back: nothing debited). The
        case is then escalated and waits for a clerk's retry or a withdrawal."""
        try:
            sheet: InformationSheet = await workflow.execute_activity_method(
                OutgoingActivities.transfer_out,
                TransferOutInput(
                    case_id=flow.case_id,
                    request=request,
                    balance_action=decision.action,
                    balance_rule=decision.rule,
                    remittance_id=main_remittance_id(flow.case_id),
                    transferred_out_on=flow.today(),
                    expected_balance_fen=facts.balance_fen,
                ),
                start_to_close_timeout=QUICK,
                retry_policy=PATIENT_RETRY,
            )
            return sheet
        except ActivityError as error:
            await flow.step_failed(
                "transfer_out",
                error,
                en="The records refused the transfer-out ({error_type}); nothing was debited. "
                "A clerk checks the record and retries, or the case is withdrawn.",
                zh="转出记录处理失败（{error_type}），未扣减余额，请经办人员核查后重试。",
                rule="R16",
                give_up=lambda: flow.holds(WITHDRAWAL),
            )
            return None

    async def _release_claim(self, flow: CaseFlow) -> None:
        await workflow.execute_activity_method(
            OutgoingActivities.release_enrolment_claim,
            flow.case_id,
            start_to_close_timeout=QUICK,
            retry_policy=QUICK_RETRY,
        )

    async def _move_balance(
        self, flow: CaseFlow, decision: BalanceDecision, incoming_region: str, cause: str
    ) -> None:
        remittance_id = main_remittance_id(flow.case_id)
        if decision.action == "remit":  # R18
            document: BalanceRemitted | BalancePaidToBank | BalanceNotTransferred = BalanceRemitted(
                remittance_id=remittance_id,
                amount_fen=decision.amount_fen,
                remitted_on=flow.today(),
            )
        elif decision.action == "pay_to_bank":  # R19, R21, R22
            payout = await workflow.execute_activity_method(
                OutgoingActivities.pay_balance_to_bank,
                BankPayoutInput(
                    case_id=flow.case_id,
                    remittance_id=remittance_id,
                    amount_fen=decision.amount_fen,
                    rule=decision.rule,
                ),
                start_to_close_timeout=QUICK,
                retry_policy=PATIENT_RETRY,
            )
            document = BalancePaidToBank(
                remittance_id=remittance_id,
                amount_fen=decision.amount_fen,
                rule=decision.rule,
                account_last4=payout.account_last4,
                paid_on=payout.paid_on,
            )
        else:  # R20 keep usable, or nothing to move
            document = BalanceNotTransferred(
                rule=decision.rule,
                reason_en=decision.explanation_en,
                reason_zh=decision.explanation_zh,
                amount_fen=decision.amount_fen,
            )
        await flow.deliver(
            flow.envelope(document, f"balance-{remittance_id}", incoming_region, cause)
        )

    async def _await_confirmations(
        self,
        flow: CaseFlow,
        decision: BalanceDecision,
        incoming_region: str,
        transfer_in_due: date,
        credit_due: date,
    ) -> bool:
        """Wait for transfer-in and the credit; False when the balance came back. Each is
        escalated once, when the incoming agency's own limit for it has run out (R13)."""
        transfer_in_done = decision.rule == "R21"  # R21: a payout, nothing is transferred in
        credited = decision.action != "remit"
        returned = False
        # The incoming agency credits after its transfer-in: the credit's limit is watched
        # once transfer-in is confirmed. Each limit is escalated once, when it runs out.
        escalated: set[str] = set()
        while not (transfer_in_done and credited):
            kind = "credit" if transfer_in_done else "transfer_in"
            due = credit_due if transfer_in_done else transfer_in_due
            until = None if kind in escalated else end_of_day(due)
            document = await flow.wait_for(CONFIRMATIONS, until)
            if document is None:
                escalated.add(kind)
                await self._confirmation_overdue(flow, kind, due, incoming_region)
                continue
            if document.type == "TransferInCompleted":
                transfer_in_done = True
                # A late transfer-in leaves a working day for the credit that follows it.
                credit_due = max(credit_due, flow.working_days_after(flow.today(), 1))
                await flow.record(
                    CaseEventName.TRANSFER_IN_CONFIRMED,
                    rule="R13",
                    detail={"message_id": document.message_id},
                )
            elif document.type == "BalanceCredited":
                if await self._credit_confirmed(flow, decision, document):
                    credited = True
            elif document.type == "BalanceReturned":
                if await self._balance_returned(flow, document):
                    credited = returned = True
            else:
                mismatch = document.document_as(BalanceMismatch)
                flow.escalated = True
                await flow.record(
                    CaseEventName.BALANCE_MISMATCH_REPORTED,
                    OutgoingStatus.BALANCE_MISMATCH,
                    rule="R15",
                    detail={
                        "expected_fen": mismatch.expected_fen,
                        "received_fen": mismatch.received_fen,
                    },
                )
        return not returned

    @staticmethod
    async def _credit_confirmed(
        flow: CaseFlow, decision: BalanceDecision, document: Envelope
    ) -> bool:
        """R15: whether the confirmation is of this case's remittance and amount (one that
        is not settles nothing and is escalated)."""
        confirmed = document.document_as(BalanceCredited)
        if (
            decision.action != "remit"
            or confirmed.remittance_id != main_remittance_id(flow.case_id)
            or confirmed.amount_fen != decision.amount_fen
        ):
            await flow.escalate(
                "confirmation",
                "CREDIT_DOES_NOT_MATCH_REMITTANCE",
                None,
                "A credit confirmation does not match this case's remittance.",
                "入账确认与本案划转不符，请经办人员核查。",
                rule="R15",
            )
            return False
        await flow.record(
            CaseEventName.BALANCE_CREDIT_CONFIRMED,
            rule="R15",
            detail={"message_id": document.message_id},
        )
        return True

    @staticmethod
    async def _balance_returned(flow: CaseFlow, document: Envelope) -> bool:
        """R16: the returned money goes back to the old account, never lost; only this
        agency's own debit of this case, by its own amount. False when nothing of this
        case was restored (the case keeps waiting)."""
        back = document.document_as(BalanceReturned)
        restored: int = await workflow.execute_activity_method(
            OutgoingActivities.restore_returned_balance,
            ReturnInput(
                case_id=flow.case_id,
                remittance_id=back.remittance_id,
                amount_fen=back.amount_fen,
            ),
            start_to_close_timeout=QUICK,
            retry_policy=PATIENT_RETRY,
        )
        if restored != back.amount_fen:
            await flow.escalate(
                "balance",
                "RETURN_DOES_NOT_MATCH_DEBIT",
                None,
                "A balance return does not match this case's own debit; a clerk checks it.",
                "退回金额与本案转出扣减不符，请经办人员核查。",
                rule="R16",
            )
            if restored == 0:
                return False  # not this case's money: nothing restored, keep waiting
        await flow.escalate(
            "balance",
            "BALANCE_RETURNED",
            None,
            "The incoming agency returned the balance after a mismatch; a clerk decides how to pay it.",
            "转入地因金额不符退回余额，已恢复至原账户，请经办人员处理。",
            rule="R16",
        )
        return True

    @staticmethod
    async def _confirmation_overdue(
        flow: CaseFlow, kind: str, due: date, incoming_region: str
    ) -> None:
        """R13/R15: the escalation names the incoming agency and its own limit."""
        days = flow.limits.transfer_in_days
        name = flow.region_name(incoming_region)
        if kind == "transfer_in":
            await flow.escalate(
                "confirmation",
                EscalationReason.TRANSFER_IN_OVERDUE,
                due,
                f"The incoming agency of {incoming_region} has not confirmed transfer-in "
                f"within its {days} working days of receiving the information sheet.",
                f"{name}转入地经办机构未在收到信息表后{days}个工作日内确认转入。",
                rule="R13",
            )
            return
        await flow.escalate(
            "confirmation",
            "CREDIT_NOT_CONFIRMED",
            due,
            f"The incoming agency of {incoming_region} has not confirmed the credit of the "
            f"balance within {days} working days of its remittance.",
            f"{name}转入地经办机构未在余额划转后{days}个工作日内确认入账。",
            rule="R15",
        )


def stop_answer(request: WithdrawalRequested, *, transferred_out: bool) -> WithdrawalAnswered:
    """R16: the answer to a withdrawal, cancellation or offline switch: accepted while
    nothing was transferred out, refused as too late once it was (the case goes on to its
    credit)."""
    if transferred_out:
        return WithdrawalAnswered(
            kind=request.kind,
            accepted=False,
            reason_code=StopAnswerCode.TOO_LATE_TRANSFERRED_OUT,
            rule="R16",
            message_en=(
                "Too late: the enrolment was transferred out and the balance moved; "
                "the case goes on to the credit at the incoming agency."
            ),
            message_zh="已办理转出，余额已划转，无法撤回；本案继续办理至转入地入账。",
        )
    return WithdrawalAnswered(
        kind=request.kind,
        accepted=True,
        reason_code=StopAnswerCode.ACCEPTED_BEFORE_TRANSFER_OUT,
        rule="R16",
        message_en="Accepted: nothing was transferred out; the case ends here.",
        message_zh="已受理：尚未办理转出，本案终止。",
    )


def outgoing_residual_workflow_id(remittance_id: str) -> str:
    return f"outgoing-residual-{remittance_id}"


def residual_remittance_id(case_id: str, contribution_id: str) -> str:
    return f"{case_id}-residual-{contribution_id}"


def certificate_number(region: str, case_id: str) -> str:
    """R10/R23: the number of a case's insurance certificate (one per case: a case is
    transferred out once)."""
    return f"{region}-{case_id}"


@workflow.defn
class OutgoingResidualWorkflow(CaseWorkflowBase):
    """A late contribution reaching the old account after transfer-out is forwarded as a
    residual remittance on the same case (R16: nothing is cleared or lost)."""

    @workflow.run
    async def run(self, residual: ResidualInput) -> str:
        flow = self.adopt(CaseFlow(residual.case_id, "outgoing", residual.region))
        await flow.load_context(flow.today())
        flow.status = "completed"
        remittance_id = await workflow.execute_activity_method(
            OutgoingActivities.post_residual_remittance,
            residual,
            start_to_close_timeout=QUICK,
            retry_policy=PATIENT_RETRY,
        )
        await flow.deliver(
            flow.envelope(
                BalanceRemitted(
                    remittance_id=remittance_id,
                    amount_fen=residual.amount_fen,
                    residual=True,
                    remitted_on=flow.today(),
                ),
                f"residual-{residual.contribution_id}",
                residual.to_region,
            )
        )
        await flow.record(
            CaseEventName.RESIDUAL_REMITTED,
            rule="R16",
            detail={"remittance_id": remittance_id, "amount_fen": residual.amount_fen},
        )
        credited = await flow.wait_for(("BalanceCredited",), None)
        assert credited is not None
        await flow.record(
            CaseEventName.RESIDUAL_CREDIT_CONFIRMED,
            rule="R16",
            detail={"remittance_id": remittance_id},
        )
        return "credited"


def outgoing_stop_answer_workflow_id(message_id: str) -> str:
    return f"outgoing-stop-answer-{message_id}"


@workflow.defn
class OutgoingStopAnswerWorkflow:
    """A stop that reaches a case this agency already closed (its correction window ran
    out while the stop waited for a region, or it refused meanwhile) is still answered,
    from the records: accepted when nothing was transferred out, too late when it was.
    The incoming case would otherwise wait for the answer for ever."""

    @workflow.run
    async def run(self, stop: StopAnswerInput) -> str:
        envelope = stop.envelope
        request = envelope.document_as(WithdrawalRequested)
        flow = CaseFlow(envelope.case_id, "outgoing", stop.region)
        await flow.load_context(flow.today())
        transferred: bool = await workflow.execute_activity_method(
            OutgoingActivities.was_transferred_out,
            envelope.case_id,
            start_to_close_timeout=QUICK,
            retry_policy=QUICK_RETRY,
        )
        answer = stop_answer(request, transferred_out=transferred)
        await flow.deliver(
            flow.envelope(
                answer, "withdrawal-answer-closed", envelope.from_region, envelope.message_id
            )
        )
        return "refused" if transferred else "accepted"
