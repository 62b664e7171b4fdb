"""The incoming agency's case workflow: it owns the case's clock from acceptance to the
credited balance (R12-R19, R23)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import date, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

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
        Reminder,
        TransferInCompleted,
        TransferOutCompleted,
        TransferRefused,
        TransferRequested,
        WithdrawalAnswered,
        WithdrawalRequested,
    )
    from contracts.envelope import Envelope
    from domain.continuity import (
        EnrolmentSpan,
        assess_continuity,
        continuity_decisions,
        deadline_decision,
    )
    from domain.limits import CaseDeadlines
    from domain.matching import (
        CaseFile,
        SheetFacts,
        notice_mismatch,
        remittance_matches_sheet,
        sheet_mismatch,
    )
    from domain.policy import ResolvedPolicy
    from domain.regions import same_province
    from domain.vocabulary import CaseEventName, EscalationReason, IncomingStatus, StopAnswerCode
    from workflows.case_flow import (
        QUICK,
        QUICK_RETRY,
        RECORD_DECISIONS,
        CaseFlow,
        CaseWorkflowBase,
    )
    from workflows.clock import end_of_day, morning_of, seconds_until
    from workflows.incoming.activities import IncomingActivities
    from workflows.incoming.types import (
        CertificateLoad,
        CorrectionSignal,
        CreditInput,
        IncomingCaseInput,
        IncomingResidualInput,
        LoadedCertificateInput,
        MismatchResolution,
        StopRequest,
        TransferInInput,
        WithdrawSignal,
    )
    from workflows.types import AuditValue, Awaiting, ClerkAction

REPLY_TYPES = ("TransferRefused", "TransferOutCompleted")
ANSWER = ("WithdrawalAnswered",)
# Where a stop the outgoing agency accepted leaves the case, by what was asked.
STOPPED = {
    "withdrawal": ("application_withdrawn", "withdrawn", None),
    "cancellation": ("case_cancelled_by_clerk", "cancelled", None),
    "offline_channel": ("switched_to_offline_channel", "offline_channel", "R23"),
}
# Patch: a correction signalled while the soft refusal was being recorded is kept.
KEEP_EARLY_CORRECTION = "keep-early-correction"
BALANCE_TYPES = ("BalanceRemitted", "BalancePaidToBank", "BalanceNotTransferred")
# R10/R23: the outgoing agency's answer to an offline switch before transfer-out, and
# what the case goes on with: the sheet sent online, or the certificate the person brought.
CERTIFICATE_ISSUED = ("InsuranceCertificateIssued",)
SHEETS = ("TransferOutCompleted", "InsuranceCertificate")


def transfer_out_of(reply: Envelope) -> TransferOutCompleted:
    """The transfer-out the case goes on with, online or by insurance certificate."""
    if reply.type == "InsuranceCertificate":
        return reply.document_as(InsuranceCertificate).as_transfer_out()
    return reply.document_as(TransferOutCompleted)


def _codes(refusal: TransferRefused) -> str:
    return ",".join(r.code for r in refusal.reasons)


def _lowest_rule(refusal: TransferRefused) -> str:
    return sorted({r.rule for r in refusal.reasons}, key=lambda r: int(r[1:]))[0]


def _outgoing_party(flow: CaseFlow) -> str:
    # The region of the application the case started with (load_context's counterpart).
    return f"outgoing agency of region {flow.counterpart}"


def incoming_workflow_id(case_id: str) -> str:
    return f"incoming-{case_id}"


@workflow.defn
class IncomingCaseWorkflow(CaseWorkflowBase):
    def __init__(self) -> None:
        super().__init__()
        # A withdrawal, cancellation or offline switch: a request the outgoing agency
        # answers once it knows of the case; the first one asked is the one pursued.
        self._stop: StopRequest | None = None
        self._stop_sent = False
        self._stop_refused = False
        self._correction: TransferRequested | None = None
        self._correction_by: CorrectionSignal | None = None
        self._resolution: MismatchResolution | None = None
        # R10/R23: the insurance certificate a clerk loaded, until the case takes it; once
        # taken, no other is.
        self._certificate: CertificateLoad | None = None
        self._certificate_taken = False

    # --- signals (documents and the view query: CaseWorkflowBase) ---------------------------

    @workflow.signal
    def withdraw(self, signal: WithdrawSignal) -> None:
        kind = "withdrawal" if signal.clerk is None else "cancellation"
        self._ask_stop(StopRequest(kind=kind, reason=signal.reason, clerk=signal.clerk))

    @workflow.signal
    def retry_delivery(self, action: ClerkAction) -> None:
        """A clerk asks to re-check a region that was not connected now (R23), or to
        re-run a step that failed (CaseFlow.step)."""
        if self.flow is not None:
            self.flow.retry_requested = action

    @workflow.signal
    def switch_offline(self, action: ClerkAction) -> None:
        """A clerk takes the case to the offline channel (R23, after an escalation)."""
        self._ask_stop(
            StopRequest(kind="offline_channel", reason=action.reason, clerk=action.clerk)
        )

    @workflow.signal
    def load_certificate(self, load: CertificateLoad) -> None:
        """R10/R23: the person brought the insurance certificate and a clerk loaded it (the
        API verified it). Taken while the case waits for it; a second one is ignored."""
        if (
            self._certificate is None
            and not self._certificate_taken
            and load.envelope.type == "InsuranceCertificate"
            and (self.flow is None or load.envelope.case_id == self.flow.case_id)
        ):
            self._certificate = load

    def _ask_stop(self, stop: StopRequest) -> None:
        if self._stop is None and not self._stop_refused:
            self._stop = stop
            if self.flow is not None:
                self.flow.interrupted = True

    @workflow.signal
    def correct(self, corrected: TransferRequested) -> None:
        # Kept for corrections signalled before the caller was recorded (their histories).
        self._correction = corrected

    @workflow.signal
    def accept_correction(self, correction: CorrectionSignal) -> None:
        """A corrected application after a soft refusal; who submitted it goes on the
        timeline (and the audit trail) with the correction."""
        self._correction = correction.request
        self._correction_by = correction

    @workflow.signal
    def resolve_mismatch(self, resolution: MismatchResolution) -> None:
        self._resolution = resolution

    # --- the case ------------------------------------------------------------------------
    @workflow.run
    async def run(self, case: IncomingCaseInput) -> str:
        request = case.request
        flow = self.adopt(CaseFlow(case.case_id, "incoming", request.to_region))
        flow.interrupted = self._stop is not None
        context = await flow.load_context(case.accepted_on, counterpart=request.from_region)
        assert flow.calendar is not None
        plan = flow.plan_transfer_out(case.accepted_on)
        await self._accept(flow, request, context.policy_version, plan)
        transferred = await self._request_transfer_out(flow, request, plan)
        if transferred is None:  # refused, withdrawn, cancelled or gone offline
            return flow.status
        request, plan, reply = transferred
        completed = transfer_out_of(reply)
        sheet = completed.info_sheet
        asyncio.get_running_loop().create_task(self._late_answers(flow))
        asyncio.get_running_loop().create_task(self._stops_after_the_sheet(flow))
        # R21: the path follows this agency's own application, never the sheet's word: a
        # payout sheet for a job change (or the reverse) waits for a clerk's check.
        retiree_payout = (
            request.resettled_retiree
            and request.from_scheme == "employee"
            and not same_province(request.from_region, request.to_region)
        )
        path_problem = (
            None if (completed.balance_rule == "R21") == retiree_payout else "SHEET_PATH_MISMATCH"
        )
        await self._check_sheet(flow, request, sheet, reply, path_problem)
        if retiree_payout:
            return await self._retiree_payout(
                flow, completed, reply, plan.transfer_out_due.due, request.from_region
            )
        # R13: the incoming side has 5 working days from receipt of the sheet.
        received_on = flow.today()
        transfer_in_due = await self._record_sheet(
            flow, case, context.policy_version, completed, reply, received_on
        )
        await self._transfer_in(
            flow, completed, reply, request.from_region, received_on, transfer_in_due, plan
        )
        # R12: the balance is the outgoing agency's to move within its own limit; a sheet
        # that came after that limit brings its remittance with it, so the balance is due
        # by the end of the day the sheet arrived, never at once.
        balance_due = max(plan.transfer_out_due.due, received_on)
        settled = await self._settle_balance(flow, completed, balance_due, request.from_region)
        return await self._close(flow, settled)

    @staticmethod
    async def _close(flow: CaseFlow, settled: bool) -> str:
        """R14: the case completes once its balance is settled; R15: a returned one ends it."""
        if not settled:
            await flow.record(
                CaseEventName.CASE_CLOSED_BALANCE_RETURNED,
                IncomingStatus.BALANCE_RETURNED,
                rule="R15",
                awaiting=None,
                terminal=True,
            )
            return flow.status
        await flow.record(
            CaseEventName.CASE_COMPLETED,
            IncomingStatus.COMPLETED,
            rule="R14",
            awaiting=None,
            terminal=True,
        )
        return flow.status

    async def _accept(
        self, flow: CaseFlow, request: TransferRequested, policy_version: str, plan: CaseDeadlines
    ) -> None:
        async with flow.together():
            await flow.record(
                CaseEventName.APPLICATION_ACCEPTED,
                IncomingStatus.SUBMITTED,
                rule="R11",
                detail={
                    "from_region": request.from_region,
                    "to_region": request.to_region,
                    "channel": request.channel,
                    "policy_version": policy_version,
                },
                facts={"policy_version": policy_version},
            )
            await flow.decide(flow.deadline_decisions(plan))

    async def _request_transfer_out(
        self, flow: CaseFlow, request: TransferRequested, plan: CaseDeadlines
    ) -> tuple[TransferRequested, CaseDeadlines, Envelope] | None:
        """R12: send the request, and a corrected one after each soft refusal, until the
        outgoing agency transfers out (the request it answered, its limits and the sheet
        or certificate); None when the case ended before."""
        attempt = 1
        while True:
            waited = await flow.await_region(request.from_region, "TransferRequested")
            if self._stop is not None and self._stop.kind == "offline_channel":
                waited = await self._offline_before_request(flow, request.from_region) or waited
            if self._stop is not None and self._stop.kind != "offline_channel":
                # Before this attempt's request is sent: the stop takes effect at once.
                await self._stop_before_request(flow, request.from_region, attempt)
                return None
            if waited or attempt > 1:
                # R23: the outgoing agency's limit runs from when it can receive the request;
                # R12: and again from the receipt of a corrected request, so a late
                # correction is not reminded and escalated the minute it goes out.
                plan = await flow.replan_transfer_out(flow.today())
                await flow.decide(flow.deadline_decisions(plan))
            request, reply = await self._send_request(flow, request, plan, attempt)
            if reply is None:  # the outgoing agency accepted the stop
                return None
            if reply.type in SHEETS:
                return request, plan, reply
            answered = await self._after_refusal(flow, reply, request.from_region, attempt)
            if answered is None:
                return None
            reply, corrected = answered
            if reply.type in SHEETS:
                return request, plan, reply
            if corrected is None:
                return None
            request = corrected.model_copy(update={"correction_of": reply.message_id})
            attempt += 1

    async def _send_request(
        self, flow: CaseFlow, request: TransferRequested, plan: CaseDeadlines, attempt: int
    ) -> tuple[TransferRequested, Envelope | None]:
        """Send this attempt's request and wait for its reply (None: the stop was accepted)."""
        # R10/R23: a switch taken before the request goes out right after it; the
        # request says so, so the outgoing agency cannot transfer out online meanwhile.
        by_certificate = self._stop is not None and self._stop.kind == "offline_channel"
        request = request.model_copy(
            update={"limit_starts_on": plan.accepted_on, "by_certificate": by_certificate}
        )
        envelope = flow.envelope(request, f"request-{attempt}", request.from_region)
        await flow.deliver(envelope, region_checked=True)
        await flow.record(
            CaseEventName.TRANSFER_REQUEST_SENT,
            IncomingStatus.AWAITING_TRANSFER_OUT,
            rule="R12",
            detail={"message_id": envelope.message_id},
            awaiting=Awaiting(
                what="information sheet or refusal",
                from_party=_outgoing_party(flow),
                by=plan.transfer_out_due.due,
            ),
        )
        reply = await self._await_reply(
            flow, plan.reminder_on, plan.transfer_out_due.due, request.from_region, attempt
        )
        return request, reply

    async def _after_refusal(
        self, flow: CaseFlow, reply: Envelope, outgoing_region: str, attempt: int
    ) -> tuple[Envelope, TransferRequested | None] | None:
        """A refusal's outcome: the last reply and the corrected request, if any (none when
        the refusal was final); None when a stop asked meanwhile was accepted."""
        corrected: TransferRequested | None = None
        while reply.type == "TransferRefused":
            refusal = reply.document_as(TransferRefused)
            corrected = await self._handle_refusal(flow, refusal, reply)
            if corrected is not None or flow.terminal or self._stop is None:
                break
            # A stop asked during the correction window: the outgoing agency waits
            # for a correction, so it accepts; the case ends on its answer.
            # No R12 reminder or escalation here: the outgoing agency answered in
            # time (R12 runs again only from a corrected request).
            answered = await self._await_reply(flow, None, None, outgoing_region, attempt)
            if answered is None:
                return None
            reply = answered
        return reply, corrected

    async def _record_sheet(
        self,
        flow: CaseFlow,
        case: IncomingCaseInput,
        policy_version: str,
        completed: TransferOutCompleted,
        reply: Envelope,
        received_on: date,
    ) -> date:
        """The sheet, its R13 limit and the continuity assessment: one write. Returns the
        R13 due date."""
        limits = flow.limits
        await flow.refresh_calendar("R13", received_on, limits.transfer_in_days)
        transfer_in_deadline = flow.transfer_in_deadline(received_on)
        transfer_in_due = transfer_in_deadline.due
        flow.deadlines["transfer_in_due"] = transfer_in_due
        sheet = completed.info_sheet
        async with flow.together():
            await flow.record(
                CaseEventName.INFORMATION_SHEET_RECEIVED,
                IncomingStatus.TRANSFER_IN,
                rule="R13",
                detail={
                    "message_id": reply.message_id,
                    "balance_action": completed.balance_action,
                    "balance_rule": completed.balance_rule,
                    "contribution_months": sheet.total_contribution_months,
                    "signature": "verified",
                },
                awaiting=Awaiting(
                    what="transfer-in by this agency",
                    from_party="incoming agency",
                    by=transfer_in_due,
                ),
            )
            await flow.decide(
                [
                    deadline_decision(
                        rule="R13",
                        start=received_on,
                        limit_days=limits.transfer_in_days,
                        deadline=transfer_in_deadline,
                        policy_version=policy_version,
                    )
                ]
            )
            await self._assess_continuity(flow, case, sheet, received_on)
        return transfer_in_due

    async def _transfer_in(
        self,
        flow: CaseFlow,
        completed: TransferOutCompleted,
        reply: Envelope,
        outgoing_region: str,
        received_on: date,
        transfer_in_due: date,
        plan: CaseDeadlines,
    ) -> None:
        """R13/R24: transfer in within the limit (escalated when late), then tell the
        outgoing agency and wait for the balance."""
        transfer_in = workflow.start_activity_method(
            IncomingActivities.complete_transfer_in,
            TransferInInput(
                case_id=flow.case_id, sheet=completed.info_sheet, completed_on=received_on
            ),
            start_to_close_timeout=QUICK,
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=10)
            ),
        )
        done, _ = await workflow.wait(
            [transfer_in],
            timeout=(end_of_day(transfer_in_due) - workflow.now()).total_seconds(),
        )
        if not done:
            days = flow.limits.transfer_in_days
            await flow.escalate(
                "transfer_in",
                EscalationReason.TRANSFER_IN_OVERDUE,
                transfer_in_due,
                f"This agency did not complete transfer-in within its {days} "
                "working days of receiving the information sheet.",
                f"本机构未在收到信息表后{days}个工作日内完成转入。",
                rule="R13",
            )
        result = await transfer_in
        await flow.deliver(
            flow.envelope(
                TransferInCompleted(
                    completed_on=flow.today(),
                    deemed_contribution_months=result.deemed_contribution_months,
                ),
                "transfer-in",
                outgoing_region,
                reply.message_id,
            )
        )
        await flow.record(
            CaseEventName.TRANSFER_IN_COMPLETED,
            IncomingStatus.AWAITING_BALANCE,
            rule="R24",
            detail={"deemed_contribution_months": result.deemed_contribution_months},
            awaiting=Awaiting(
                what="balance remittance or balance notice",
                from_party=_outgoing_party(flow),
                by=plan.total_due.due,
            ),
        )

    async def _retiree_payout(
        self,
        flow: CaseFlow,
        completed: TransferOutCompleted,
        reply: Envelope,
        transfer_out_due: date,
        outgoing_region: str,
    ) -> str:
        """R21: the sheet of a resettled retiree's payout. The account is paid into the
        retiree's own bank account and the enrolment stays at the outgoing region, so
        nothing is transferred in here: no R13 transfer-in, no continued enrolment, no
        deemed years (R24). The case records the payout path and closes on its notice."""
        received_on = flow.today()
        await flow.record(
            CaseEventName.INFORMATION_SHEET_RECEIVED,
            IncomingStatus.AWAITING_BALANCE,
            rule="R21",
            detail={
                "message_id": reply.message_id,
                "balance_action": completed.balance_action,
                "balance_rule": completed.balance_rule,
                "contribution_months": completed.info_sheet.total_contribution_months,
                "signature": "verified",
                "path": "resettled_retiree_payout",
            },
            awaiting=Awaiting(
                what="the bank payout notice of the resettled retiree's account",
                from_party=f"outgoing agency of region {outgoing_region}",
                by=max(transfer_out_due, received_on),
            ),
        )
        await self._settle_balance(
            flow, completed, max(transfer_out_due, received_on), outgoing_region
        )
        await flow.record(
            CaseEventName.CASE_COMPLETED,
            IncomingStatus.COMPLETED,
            rule="R21",
            awaiting=None,
            terminal=True,
        )
        return flow.status

    async def _check_sheet(
        self,
        flow: CaseFlow,
        request: TransferRequested,
        sheet: InformationSheet,
        reply: Envelope,
        path_problem: str | None = None,
    ) -> None:
        """R9/R13: a sheet about another person, region or scheme (or, ``path_problem``,
        of another procedure than the application's, R21) is not loaded: a clerk checks it
        with the outgoing agency and then lets the case go on (retry-step)."""
        mismatch = sheet_mismatch(
            CaseFile(
                case_id=flow.case_id,
                id_number=request.person.id_number,
                from_region=request.from_region,
                from_scheme=request.from_scheme,
            ),
            SheetFacts(
                id_number=sheet.person.id_number,
                from_region=sheet.from_region,
                issued_by_region=sheet.issued_by_region,
                scheme=sheet.scheme,
            ),
        )
        problem = mismatch.value if mismatch is not None else path_problem
        if problem is None:
            return
        await flow.escalate(
            "transfer_in",
            problem,
            None,
            "The information sheet does not match this case; a clerk checks it.",
            "信息表与本案申请不符，请经办人员核查。",
            rule="R13",
        )
        await flow.record(
            CaseEventName.INFORMATION_SHEET_HELD,
            IncomingStatus.EXCEPTION,
            rule="R13",
            detail={"reason_code": problem, "message_id": reply.message_id},
            awaiting=Awaiting(
                what="a clerk's check of the sheet", from_party="incoming agency clerk"
            ),
        )
        await workflow.wait_condition(lambda: flow.retry_requested is not None)
        action, flow.retry_requested = flow.retry_requested, None
        assert action is not None
        await flow.record(
            CaseEventName.INFORMATION_SHEET_ACCEPTED_BY_CLERK,
            rule="R13",
            detail={"clerk": action.clerk, "reason": action.reason},
        )

    async def _stops_after_the_sheet(self, flow: CaseFlow) -> None:
        """A stop asked once the sheet is here (say while a later delivery waits for the
        region): the outgoing agency has transferred out, so it is too late; recorded
        with the reason, never dropped, never sent."""
        while True:
            await workflow.wait_condition(lambda: self._stop is not None and not self._stop_sent)
            await self._stop_too_late(flow, "information sheet received")

    async def _stop_too_late(self, flow: CaseFlow, after: str) -> None:
        """R16: a stop asked once this case was transferred out is refused here, with the
        reason, never sent (the case goes on to its credit)."""
        stop, self._stop, self._stop_refused = self._stop, None, True
        assert stop is not None
        flow.interrupted = False
        await flow.record(
            CaseEventName.WITHDRAWAL_REFUSED,
            rule="R16",
            detail={
                "reason_code": StopAnswerCode.TOO_LATE_TRANSFERRED_OUT,
                "kind": stop.kind,
                "after": after,
            },
            facts={"stop": "refused"},
        )

    async def _late_answers(self, flow: CaseFlow) -> None:
        """An answer to a stop that arrives after the sheet: the refusal is recorded (the
        case goes on); an acceptance after a sheet contradicts it, so a clerk looks."""
        while True:
            await workflow.wait_condition(lambda: flow.holds(ANSWER))
            document = flow.take(ANSWER)
            assert document is not None
            answer = document.document_as(WithdrawalAnswered)
            if not answer.accepted:
                await self._stop_refused_too_late(flow, document, answer)
                continue
            await flow.escalate(
                "transfer_out",
                "STOP_ACCEPTED_AFTER_SHEET",
                None,
                "The outgoing agency accepted a withdrawal after sending the sheet; a clerk "
                "settles the case with it.",
                "转出地在发送信息表后同意撤回，请经办人员与转出地核实。",
                rule="R16",
            )

    async def _assess_continuity(
        self, flow: CaseFlow, case: IncomingCaseInput, sheet: InformationSheet, received_on: date
    ) -> None:
        """R24-R28 on the case: contribution months (employee ones deemed), the
        interruption from the sheet's last paid month to the first month here (the
        enrolment start the application carries), back-payment or waiting period,
        estimates as if paid today; each with its reason."""
        if not workflow.patched(RECORD_DECISIONS):
            return
        assert flow.context is not None
        request = case.request
        spans = [
            EnrolmentSpan(
                region=p.region,
                scheme=p.scheme,
                start=p.start,
                end=p.end,
                contribution_months=p.contribution_months,
                last_paid_month=p.last_paid_month,  # R25-R27
            )
            for p in sheet.enrolment_periods
        ]
        transfer_on = case.incoming_enrolled_since or received_on
        try:
            assessment = assess_continuity(
                spans,
                transfer_on=transfer_on,
                from_scheme=request.from_scheme,
                to_scheme=request.to_scheme,
                policy=ResolvedPolicy.from_json(flow.context.policy),
                # R28: a back-payment cannot be made before it is assessed.
                paid_on=max(transfer_on, received_on),
            )
        except ValueError as exc:  # inconsistent history on the sheet: a clerk looks
            await flow.record(
                CaseEventName.CONTINUITY_NOT_ASSESSED, rule="R24", detail={"reason": str(exc)[:200]}
            )
            return
        await flow.record(
            CaseEventName.CONTINUITY_ASSESSED,
            rule="R24",
            detail={
                "total_contribution_months": assessment.total_contribution_months,
                "deemed_contribution_months": assessment.employee_contribution_months,
                "interruption_months": assessment.interruption_months,
                "back_payment_allowed": assessment.back_payment_allowed,
                "waiting_period_months": assessment.waiting_period_months,
            },
            facts={"continuity": assessment.to_json()},
        )
        await flow.decide(continuity_decisions(assessment))

    async def _await_reply(
        self,
        flow: CaseFlow,
        reminder_on: date | None,
        due: date | None,
        outgoing_region: str,
        attempt: int,
    ) -> Envelope | None:
        """R12: wait for the sheet or a refusal; remind before the limit, escalate at it,
        and keep waiting after it (a late answer still completes the case). A stop asked
        meanwhile is sent as a request and pursued here: None when the outgoing agency
        accepted it (the case is closed), the sheet when it came first or the stop was
        too late (R16: the case goes on to its credit)."""
        stages: list[str] = (
            ([] if reminder_on is None else ["reminder"])
            + ([] if due is None else ["escalation"])
            + ["after"]
        )

        def asked() -> bool:
            return self._stop is not None and not self._stop_sent

        while True:
            stage = stages[0]
            until = (
                morning_of(reminder_on)
                if stage == "reminder" and reminder_on is not None
                else end_of_day(due)
                if stage == "escalation" and due is not None
                else None
            )
            document = await flow.wait_for(
                REPLY_TYPES + ANSWER + CERTIFICATE_ISSUED,
                until,
                lambda: asked() or self._certificate_brought(),
            )
            if document is None and asked():
                await self._send_stop(flow, outgoing_region)
                continue
            if document is None and self._certificate_brought():
                return await self._await_certificate(flow, None)  # before its notice
            if document is not None and document.type in CERTIFICATE_ISSUED:
                return await self._await_certificate(flow, document)
            if document is None:
                stages.pop(0)
                assert due is not None  # only the reminder and escalation stages time out
                await self._remind_or_escalate(flow, stage, due, outgoing_region, attempt)
                continue
            if document.type in ANSWER:
                answer = document.document_as(WithdrawalAnswered)
                if answer.accepted:
                    await self._stopped(flow, document)
                    return None
                await self._stop_refused_too_late(flow, document, answer)
                continue
            if await self._refusal_crossed_stop(flow, document):
                continue
            return document

    async def _refusal_crossed_stop(self, flow: CaseFlow, document: Envelope) -> bool:
        """A soft refusal that crossed with our stop: recorded, and the case waits on (the
        outgoing agency accepts the stop next)."""
        if document.type != "TransferRefused" or not self._stop_sent or self._stop_refused:
            return False
        refusal = document.document_as(TransferRefused)
        if not (all(r.soft for r in refusal.reasons) and refusal.correctable_until):
            return False
        await flow.record(
            CaseEventName.TRANSFER_REFUSED_CORRECTABLE,
            rule=_lowest_rule(refusal),
            detail={"codes": _codes(refusal), "message_id": document.message_id},
        )
        return True

    async def _remind_or_escalate(
        self, flow: CaseFlow, stage: str, due: date, outgoing_region: str, attempt: int
    ) -> None:
        if stage == "reminder":
            reminder = Reminder(
                due_on=due,
                stage="transfer_out",
                message_en="Transfer-out is due; please send the information sheet or a refusal.",
                message_zh="转出办理即将到期，请发送信息表或不予办理的答复。",
            )
            await flow.deliver(
                flow.envelope(reminder, f"reminder-transfer-out-{attempt}", outgoing_region)
            )
            await flow.record(
                CaseEventName.REMINDER_SENT, rule="R12", detail={"due_on": due.isoformat()}
            )
        elif stage == "escalation":
            escalation = await flow.escalate(
                "transfer_out",
                EscalationReason.TRANSFER_OUT_OVERDUE,
                due,
                f"The outgoing agency of {outgoing_region} did not answer within its "
                f"{flow.limits.transfer_out_days} working days.",
                f"{flow.region_name(outgoing_region)}转出地经办机构未在"
                f"{flow.limits.transfer_out_days}个工作日内办结转出。",
                rule="R12",
            )
            await flow.deliver(
                flow.envelope(escalation, f"escalation-transfer-out-{attempt}", outgoing_region)
            )

    async def _send_stop(self, flow: CaseFlow, outgoing_region: str) -> None:
        """The stop as a request to the outgoing agency: the case stays open until it is
        answered, since a debit for it may exist."""
        stop = self._stop
        assert stop is not None
        self._stop_sent = True
        request = WithdrawalRequested(kind=stop.kind, reason=stop.reason, requested_on=flow.today())
        await flow.deliver(flow.envelope(request, "stop-request", outgoing_region))
        detail: dict[str, AuditValue] = {"kind": stop.kind, "reason": stop.reason}
        if stop.clerk is not None:
            detail["clerk"] = stop.clerk
        offline = stop.kind == "offline_channel"
        await flow.record(
            CaseEventName.WITHDRAWAL_REQUESTED,
            IncomingStatus.WITHDRAWAL_REQUESTED,
            rule="R16",
            detail=detail,
            # R10/R23: an offline switch is answered by the insurance certificate (its
            # notice, or the person bringing it), or refused as too late like any stop.
            awaiting=Awaiting(
                what="the insurance certificate, or the answer to the offline switch",
                from_party=f"outgoing agency of region {outgoing_region}",
                by=flow.awaiting.by if flow.awaiting else None,
            )
            if offline
            else False,
            facts={"stop": "requested", "stop_kind": stop.kind},
        )

    def _certificate_brought(self) -> bool:
        """A certificate was loaded while the offline switch waits for its answer."""
        stop = self._stop
        return (
            self._certificate is not None
            and stop is not None
            and stop.kind == "offline_channel"
            and self._stop_sent
        )

    async def _offline_before_request(self, flow: CaseFlow, outgoing_region: str) -> bool:
        """R10/R23: an offline switch before this attempt's request went out does not end
        the case. Only the outgoing agency can issue the insurance certificate, and it
        knows of the case only by the request: the request and the switch wait for its
        region together (R23) and go out one after the other. True when it had to wait."""
        stop = self._stop
        assert stop is not None
        detail: dict[str, AuditValue] = {"reason": stop.reason, "before_request": True}
        if stop.clerk is not None:
            detail["clerk"] = stop.clerk
        await flow.record(
            CaseEventName.OFFLINE_CHANNEL_REQUESTED,
            rule="R23",
            detail=detail,
            facts={"stop": "requested", "stop_kind": stop.kind},
        )
        return await flow.await_region(outgoing_region, "TransferRequested", interruptible=False)

    async def _await_certificate(self, flow: CaseFlow, notice: Envelope | None) -> Envelope:
        """R10/R23: the outgoing agency answered the offline switch by transferring out
        with the insurance certificate: its notice came, or the person brought the
        certificate first. The case waits for it, visibly, and is escalated when the
        limit passes (the whole case's R14, and never less than the R13 days from now);
        it never ends here. A stop asked now is too late (transferred out, R16: the case
        goes on to its credit). Returns the certificate, once its verification is found."""
        self._stop, self._stop_sent = None, False  # the switch is answered
        flow.interrupted = False
        due = max(
            flow.deadlines.get("total_due", flow.today()),
            flow.transfer_in_deadline(flow.today()).due,
        )
        if notice is not None:
            await self._record_certificate_issued(flow, notice, due)
        escalated = notice is None  # brought already: nothing to escalate

        def ready() -> bool:
            return self._certificate is not None or self._stop is not None

        while True:
            timeout = None if escalated else seconds_until(end_of_day(due), workflow.now())
            if timeout is None or timeout > 0 or ready():
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(ready, timeout=timeout)
            if self._stop is not None:
                await self._stop_too_late(flow, "insurance certificate issued")
                continue
            load, self._certificate = self._certificate, None
            if load is None:
                escalated = True
                await flow.escalate(
                    "transfer_in",
                    "CERTIFICATE_NOT_BROUGHT",
                    due,
                    "The person has not brought the insurance certificate by its date; a "
                    "clerk contacts the person.",
                    "参保人未按期携带参保凭证办理转入，请经办人员联系参保人。",
                    rule="R23",
                )
                continue
            if await self._take_certificate(flow, load):
                return load.envelope

    @staticmethod
    async def _record_certificate_issued(flow: CaseFlow, notice: Envelope, due: date) -> None:
        issued = notice.document_as(InsuranceCertificateIssued)
        flow.deadlines["certificate_due"] = due
        await flow.record(
            CaseEventName.INSURANCE_CERTIFICATE_ISSUED,
            IncomingStatus.OFFLINE_CERTIFICATE_ISSUED,
            rule="R10",
            detail={
                "certificate_number": issued.certificate_number,
                "message_id": notice.message_id,
                "balance_action": issued.balance_action,
                "balance_rule": issued.balance_rule,
            },
            awaiting=Awaiting(
                what="the person to bring the insurance certificate",
                from_party="the insured person",
                by=due,
            ),
            facts={"stop": "offline_certificate_issued"},
        )

    async def _take_certificate(self, flow: CaseFlow, load: CertificateLoad) -> bool:
        """R10: go on with a loaded certificate once its verification is found (True);
        one that reached the case around the API is escalated and not loaded."""
        certificate = load.envelope.document_as(InsuranceCertificate)
        verified: bool = await workflow.execute_activity_method(
            IncomingActivities.certificate_verified,
            LoadedCertificateInput(
                case_id=flow.case_id,
                certificate_number=certificate.certificate_number,
                certificate=certificate.model_dump(mode="json"),
            ),
            start_to_close_timeout=QUICK,
            retry_policy=QUICK_RETRY,
        )
        if not verified:  # not through the API: nothing is loaded from it
            await flow.escalate(
                "transfer_in",
                "CERTIFICATE_NOT_VERIFIED",
                None,
                "An insurance certificate reached the case without the API's check; it "
                "is not loaded.",
                "参保凭证未经核验，不予导入。",
                rule="R10",
            )
            return False
        self._certificate_taken = True
        detail: dict[str, AuditValue] = {
            "certificate_number": certificate.certificate_number,
            "message_id": load.envelope.message_id,
            "clerk": load.clerk,
            "signature": "verified",
        }
        if load.reason:
            detail["reason"] = load.reason
        await flow.record(CaseEventName.INSURANCE_CERTIFICATE_LOADED, rule="R10", detail=detail)
        return True

    async def _stopped(self, flow: CaseFlow, answer: Envelope) -> None:
        """The outgoing agency accepted the stop: nothing was transferred out."""
        await self._record_stopped(flow, {"answer": answer.message_id})

    async def _record_stopped(self, flow: CaseFlow, extra: dict[str, AuditValue]) -> None:
        """The case ends as the stop asked (withdrawn, cancelled, offline channel), with
        who asked and why."""
        stop = self._stop
        assert stop is not None
        event, status, rule = STOPPED[stop.kind]
        detail: dict[str, AuditValue] = {"reason": stop.reason, **extra}
        if stop.clerk is not None:
            detail["clerk"] = stop.clerk
        await flow.record(
            event,
            status,
            rule=rule,
            detail=detail,
            awaiting=None,
            terminal=True,
            facts={"stop": "accepted"},
        )

    async def _stop_refused_too_late(
        self, flow: CaseFlow, document: Envelope, answer: WithdrawalAnswered
    ) -> None:
        """R16: transferred out already; the case goes on to its credit, and a second
        stop is not asked for."""
        self._stop, self._stop_refused = None, True
        flow.interrupted = False
        await flow.record(
            CaseEventName.WITHDRAWAL_REFUSED,
            None if flow.status != "withdrawal_requested" else IncomingStatus.AWAITING_TRANSFER_OUT,
            rule=answer.rule,
            detail={"reason_code": answer.reason_code, "message_id": document.message_id},
            facts={"stop": "refused"},
        )

    async def _stop_before_request(self, flow: CaseFlow, outgoing_region: str, attempt: int) -> str:
        """A stop while this attempt's request waits for its region: nothing of this
        attempt was sent, so it takes effect at once. After a soft refusal (attempt > 1)
        the outgoing agency knows the case: it is told first, before anything else."""
        stop = self._stop
        assert stop is not None
        await self._record_stopped(flow, {"before_request": True})
        if attempt > 1:
            request = WithdrawalRequested(
                kind=stop.kind, reason=stop.reason, requested_on=flow.today()
            )
            await flow.deliver(flow.envelope(request, "stop-request", outgoing_region))
        return flow.status

    async def _handle_refusal(
        self, flow: CaseFlow, refusal: TransferRefused, reply: Envelope
    ) -> TransferRequested | None:
        codes = ",".join(r.code for r in refusal.reasons)
        # An AuditRecord names one rule: the lowest; the detail lists them all.
        rules = ",".join(sorted({r.rule for r in refusal.reasons}, key=lambda r: int(r[1:])))
        rule = rules.split(",")[0]
        soft = all(r.soft for r in refusal.reasons) and refusal.correctable_until is not None
        if not soft:
            await flow.record(
                CaseEventName.TRANSFER_REFUSED,
                IncomingStatus.REFUSED,
                rule=rule,
                detail={"codes": codes, "rules": rules, "message_id": reply.message_id},
                awaiting=None,
                terminal=True,
            )
            return None
        assert refusal.correctable_until is not None
        # A correction may be signalled as soon as the refusal's record is written (the
        # API and the operations page allow it from then on), which can be before this
        # coroutine resumes: clear any earlier correction first, never after.
        clear_first = workflow.patched(KEEP_EARLY_CORRECTION)
        if clear_first:
            self._correction = None
            self._correction_by = None
        await flow.record(
            CaseEventName.TRANSFER_REFUSED_CORRECTABLE,
            IncomingStatus.REFUSED_CORRECTABLE,
            rule=rule,
            detail={
                "codes": codes,
                "rules": rules,
                "message_id": reply.message_id,
                "correctable_until": refusal.correctable_until.isoformat(),
            },
            awaiting=Awaiting(
                what="a correction by the applicant",
                from_party="applicant",
                by=refusal.correctable_until,
            ),
        )
        if not clear_first:
            self._correction = None
            self._correction_by = None
        remaining = seconds_until(end_of_day(refusal.correctable_until), workflow.now())
        if remaining > 0:
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._correction is not None or self._stop is not None,
                    timeout=remaining,
                )
        if self._stop is not None:
            return None
        return await self._take_correction(flow, codes, rules, rule)

    async def _take_correction(
        self, flow: CaseFlow, codes: str, rules: str, rule: str
    ) -> TransferRequested | None:
        """The correction the window brought, recorded with who submitted it; None when
        the window closed without one (the refusal is final)."""
        if self._correction is None:
            await flow.record(
                CaseEventName.CORRECTION_WINDOW_EXPIRED,
                IncomingStatus.REFUSED,
                rule=rule,
                detail={"codes": codes, "rules": rules},
                awaiting=None,
                terminal=True,
            )
            return None
        corrected, self._correction = self._correction, None
        detail: dict[str, AuditValue] = {"codes": codes, "rules": rules}
        if self._correction_by is not None:
            detail |= {
                "submitted_by": self._correction_by.submitted_by,
                "reason": self._correction_by.reason,
            }
            self._correction_by = None
        await flow.record(CaseEventName.CORRECTION_SUBMITTED, rule=rule, detail=detail)
        return corrected

    @staticmethod
    def _notice_problem(
        flow: CaseFlow, completed: TransferOutCompleted, notice: Envelope
    ) -> str | None:
        document = notice.document()
        problem = notice_mismatch(
            case_id=flow.case_id,
            balance_action=completed.balance_action,
            sheet_balance_fen=completed.info_sheet.balance_fen,
            notice_type=notice.type,
            remittance_id=getattr(document, "remittance_id", None),
            amount_fen=getattr(document, "amount_fen", 0),
        )
        return None if problem is None else problem.value

    async def _settle_balance(
        self,
        flow: CaseFlow,
        completed: TransferOutCompleted,
        balance_due: date,
        outgoing_region: str,
    ) -> bool:
        """Receive the balance or its notice; False when a clerk sent the money back. A
        remittance already in the inbox settles at once, whatever the time (no escalation)."""
        notice = await self._balance_notice(flow, completed, balance_due, outgoing_region)
        if notice.type == "BalancePaidToBank":
            paid = notice.document_as(BalancePaidToBank)
            await flow.record(
                CaseEventName.BALANCE_PAID_TO_BANK,
                rule=paid.rule,
                detail={
                    "remittance_id": paid.remittance_id,
                    "amount_fen": paid.amount_fen,
                    "account_last4": paid.account_last4,
                },
            )
            return True
        if notice.type == "BalanceNotTransferred":
            kept = notice.document_as(BalanceNotTransferred)
            await flow.record(
                CaseEventName.BALANCE_NOT_TRANSFERRED,
                rule=kept.rule,
                detail={"amount_fen": kept.amount_fen, "reason_en": kept.reason_en},
            )
            return True
        remitted = notice.document_as(BalanceRemitted)
        expected = completed.info_sheet.balance_fen
        # R15: a mismatch goes to a clerk, never an automatic credit.
        if not remittance_matches_sheet(amount_fen=remitted.amount_fen, sheet_balance_fen=expected):
            credit = await self._resolve_mismatch(flow, remitted, expected, notice, outgoing_region)
            if not credit:
                return False
        await credit_and_confirm(flow, remitted, outgoing_region, notice.message_id)
        await flow.record(
            CaseEventName.BALANCE_CREDITED,
            rule="R15",
            detail={"remittance_id": remitted.remittance_id, "amount_fen": remitted.amount_fen},
        )
        return True

    async def _balance_notice(
        self,
        flow: CaseFlow,
        completed: TransferOutCompleted,
        balance_due: date,
        outgoing_region: str,
    ) -> Envelope:
        """The case's balance notice: escalated when none came by ``balance_due`` (R12);
        one that does not match the sheet is held for a clerk (R15)."""
        notice = await flow.wait_for(BALANCE_TYPES, end_of_day(balance_due))
        if notice is None:
            days = flow.limits.transfer_out_days
            name = flow.region_name(outgoing_region)
            await flow.escalate(
                "balance",
                EscalationReason.BALANCE_OVERDUE,
                balance_due,
                f"The outgoing agency of {outgoing_region} has sent no balance remittance or "
                f"notice within its {days} working days.",
                f"{name}转出地经办机构未在{days}个工作日内划转个人账户余额或说明。",
                rule="R12",
            )
            notice = await flow.wait_for(BALANCE_TYPES, None)
        assert notice is not None
        while (problem := self._notice_problem(flow, completed, notice)) is not None:
            # R15: not the notice the sheet announced for this case: nothing is credited
            # or closed on it; a clerk looks, and the right notice still settles the case.
            await flow.escalate(
                "balance",
                problem,
                None,
                "A balance notice does not match this case's information sheet.",
                "余额通知与本案信息表不符，请经办人员核查。",
                rule="R15",
            )
            await flow.record(
                CaseEventName.BALANCE_NOTICE_HELD,
                rule="R15",
                detail={"reason_code": problem, "message_id": notice.message_id},
            )
            notice = await flow.wait_for(BALANCE_TYPES, None)
            assert notice is not None
        return notice

    async def _resolve_mismatch(
        self,
        flow: CaseFlow,
        remitted: BalanceRemitted,
        expected: int,
        notice: Envelope,
        outgoing_region: str,
    ) -> bool:
        """R15: a clerk decides; True to credit what arrived, False when it went back."""
        await flow.deliver(
            flow.envelope(
                BalanceMismatch(
                    remittance_id=remitted.remittance_id,
                    expected_fen=expected,
                    received_fen=remitted.amount_fen,
                ),
                f"mismatch-{remitted.remittance_id}",
                outgoing_region,
                notice.message_id,
            )
        )
        flow.escalated = True
        await flow.record(
            CaseEventName.BALANCE_MISMATCH,
            IncomingStatus.BALANCE_MISMATCH,
            rule="R15",
            detail={
                "remittance_id": remitted.remittance_id,
                "expected_fen": expected,
                "received_fen": remitted.amount_fen,
            },
            awaiting=Awaiting(
                what="a clerk's decision on the amount mismatch",
                from_party="incoming agency clerk",
            ),
        )
        await workflow.wait_condition(lambda: self._resolution is not None)
        assert self._resolution is not None
        await flow.record(
            CaseEventName.MISMATCH_RESOLVED,
            rule="R15",
            detail={"decision": self._resolution.decision, "clerk": self._resolution.clerk},
        )
        if self._resolution.decision != "return_to_sender":
            return True
        # R15/R16: never credited, never lost: the outgoing agency restores it.
        await flow.deliver(
            flow.envelope(
                BalanceReturned(
                    remittance_id=remitted.remittance_id,
                    amount_fen=remitted.amount_fen,
                    reason=self._resolution.note or "returned after an amount mismatch",
                    returned_on=flow.today(),
                ),
                f"return-{remitted.remittance_id}",
                outgoing_region,
                notice.message_id,
            )
        )
        return False


async def credit_and_confirm(
    flow: CaseFlow,
    remitted: BalanceRemitted,
    outgoing_region: str,
    cause: str,
    *,
    residual: bool = False,
) -> None:
    """Credit the new personal account once per remittance id (R15), then confirm it to
    the outgoing agency."""
    await flow.step(
        "credit_balance",
        IncomingActivities.credit_balance,
        CreditInput(
            case_id=flow.case_id,
            remittance_id=remitted.remittance_id,
            amount_fen=remitted.amount_fen,
            credited_on=flow.today(),
            residual=residual,
        ),
        QUICK_RETRY,
    )
    confirmation = BalanceCredited(
        remittance_id=remitted.remittance_id,
        amount_fen=remitted.amount_fen,
        credited_on=flow.today(),
    )
    await flow.deliver(
        flow.envelope(confirmation, f"credit-{remitted.remittance_id}", outgoing_region, cause)
    )


def incoming_residual_workflow_id(remittance_id: str) -> str:
    return f"incoming-residual-{remittance_id}"


@workflow.defn
class IncomingResidualWorkflow(CaseWorkflowBase):
    """A late contribution forwarded after the case closed: credited on the same case, once
    (the workflow id is the remittance id, so a redelivery cannot start a second one). A
    credit the records refuse waits for a clerk's ``retry_step``."""

    @workflow.run
    async def run(self, residual: IncomingResidualInput) -> str:
        envelope = residual.envelope
        remitted = envelope.document_as(BalanceRemitted)
        flow = self.adopt(CaseFlow(envelope.case_id, "incoming", envelope.to_region))
        await flow.load_context(flow.today())
        flow.status = "completed"
        await credit_and_confirm(
            flow, remitted, envelope.from_region, envelope.message_id, residual=True
        )
        await flow.record(
            CaseEventName.RESIDUAL_BALANCE_CREDITED,
            rule="R16",
            detail={"remittance_id": remitted.remittance_id, "amount_fen": remitted.amount_fen},
        )
        return "credited"
