"""The deterministic core both sides' case workflows share: the document inbox, the
timeline recorder, and delivery with the R23 not-connected wait.

Imported only by workflow code; it calls activities by their registered names and
reads time only through ``workflow.now()``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Collection, Iterable
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from contracts.documents import Escalation
    from contracts.envelope import Envelope
    from domain.calendar import Deadline, WorkingDayCalendar
    from domain.continuity import (
        Decision,
        calendar_loaded_decision,
        case_deadline_decisions,
    )
    from domain.limits import (
        CaseDeadlines,
        CaseLimits,
        compute_not_connected_escalation,
        compute_soft_refusal_deadline,
        compute_transfer_in_deadline,
        compute_transfer_out_deadlines,
    )
    from domain.vocabulary import CaseEventName
    from workflows.activities import REGION_NOT_CONNECTED, CaseActivities
    from workflows.clock import china_date, end_of_day, seconds_until
    from workflows.types import (
        AuditValue,
        Awaiting,
        CaseContext,
        CaseEvent,
        CaseView,
        ClerkAction,
        LoadContextInput,
        Side,
    )

NOTICE_TYPES = ("Reminder", "Escalation")
# Patch id: cases started before decisions were recorded replay without those steps.
RECORD_DECISIONS = "record-decisions"
# Patch id: bookkeeping steps as local activities (CaseFlow._bookkeeping).
LOCAL_BOOKKEEPING = "local-bookkeeping"
# Patch id: consecutive timeline events written by one local activity (CaseFlow.together).
BATCH_RECORDS = "batch-records"
QUICK = timedelta(seconds=30)
# A calendar fetched less than this ago is the current one (CaseFlow.refresh_calendar).
CALENDAR_FRESH = timedelta(minutes=1)
QUICK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
)


class CaseFlow:
    """State and steps of one case on one side; owned by that side's workflow."""

    def __init__(self, case_id: str, side: Side, region: str) -> None:
        self.case_id = case_id
        self.side = side
        self.region = region
        self.status = "starting"
        self.terminal = False
        self.awaiting: Awaiting | None = None
        self.deadlines: dict[str, date] = {}
        self.escalated = False
        self.warnings: list[str] = []
        self.inbox: list[Envelope] = []
        self._seen: set[str] = set()
        self._taken: dict[str, int] = {}
        self._step = 0
        self.calendar: WorkingDayCalendar | None = None
        self.limits = CaseLimits()
        self.context: CaseContext | None = None
        self.counterpart: str | None = None  # the other agency's region (load_context)
        self._calendar_fetched: datetime | None = None  # workflow time of the last fetch
        # Clerk actions (signals): re-check a region or re-run a failed step now.
        self.retry_requested: ClerkAction | None = None
        # A withdrawal, cancellation or offline switch is pending: a region wait wakes.
        self.interrupted = False
        self._batch: list[CaseEvent] | None = None  # while inside together()
        self.failed_step: str | None = None  # a step waiting for a clerk's retry

    # --- bookkeeping -------------------------------------------------------------------
    async def _bookkeeping(self, method: Any, arg: Any) -> Any:
        """The case context, timeline records and connectivity checks run as local
        activities: in the worker, within the workflow task that asks for them, instead of
        one activity task each through the Temporal server (27 of a case's 36 activities).
        Idempotent like every activity; money and delivery stay ordinary activities.
        Histories recorded before this change replay as they ran."""
        if workflow.patched(LOCAL_BOOKKEEPING):
            return await workflow.execute_local_activity_method(
                method, arg, start_to_close_timeout=QUICK, retry_policy=QUICK_RETRY
            )
        return await workflow.execute_activity_method(
            method, arg, start_to_close_timeout=QUICK, retry_policy=QUICK_RETRY
        )

    # --- documents -----------------------------------------------------------------
    def receive(self, envelope: Envelope) -> None:
        """Signal handler body: a redelivered document (same message_id) is ignored, and
        so is one of another case (the inbound path routes by case id: anything else came
        around it)."""
        if envelope.message_id in self._seen or envelope.case_id != self.case_id:
            return
        self._seen.add(envelope.message_id)
        self.inbox.append(envelope)

    def holds(self, types: Collection[str]) -> bool:
        """Whether a document of one of ``types`` waits in the inbox (not taken)."""
        return any(e.type in types for e in self.inbox)

    def take(self, types: Collection[str]) -> Envelope | None:
        for index, envelope in enumerate(self.inbox):
            if envelope.type in types:
                self._taken[envelope.type] = self._taken.get(envelope.type, 0) + 1
                return self.inbox.pop(index)
        return None

    def take_count(self, types: Collection[str]) -> int:
        """How many documents of ``types`` were taken so far (a step number that is the
        same on replay)."""
        return sum(self._taken.get(t, 0) for t in types)

    async def wait_for(
        self,
        types: Collection[str],
        until: datetime | None,
        also: Callable[[], bool] = lambda: False,
    ) -> Envelope | None:
        """The next document of one of ``types``; None when ``until`` passes first or
        ``also`` becomes true."""

        def ready() -> bool:
            return self.holds(types) or also()

        timeout = None if until is None else seconds_until(until, workflow.now())
        if timeout is not None and timeout <= 0 and not ready():
            return None
        try:
            await workflow.wait_condition(ready, timeout=timeout)
        except TimeoutError:
            return None
        return self.take(types)

    def listen_for_notices(self) -> None:
        """Record reminders and escalations the other side sends, whenever they arrive,
        while the case's main path goes on."""
        asyncio.get_running_loop().create_task(self._notices())

    async def _notices(self) -> None:
        while True:
            await workflow.wait_condition(lambda: self.holds(NOTICE_TYPES))
            notice = self.take(NOTICE_TYPES)
            assert notice is not None
            if notice.type == "Escalation":
                self.escalated = True
            document = notice.document()
            due = getattr(document, "due_on", None)
            await self.record(
                f"{notice.type.lower()}_received",
                rule="R12",
                detail={
                    "message_id": notice.message_id,
                    "from_region": notice.from_region,
                    "stage": getattr(document, "stage", None),
                    "due_on": due.isoformat() if due else None,
                },
            )

    # --- calendar --------------------------------------------------------------------
    async def load_context(self, start: date, counterpart: str | None = None) -> CaseContext:
        """The calendar and the policy versions in force at ``start``, fixed for the case:
        a later policy version never rewrites it (replay stays valid too). Only a year the
        calendar lacked may be added later (``refresh_calendar``)."""
        self.counterpart = counterpart
        self.context = await self._bookkeeping(
            CaseActivities.load_case_context,
            LoadContextInput(
                region=self.region, start=start, side=self.side, counterpart=counterpart
            ),
        )
        self.calendar = WorkingDayCalendar.from_json(self.context.calendar)
        self.limits = CaseLimits(**self.context.limits)
        self._calendar_fetched = workflow.now()
        return self.context

    async def refresh_calendar(self, rule: str, start: date, days: int) -> None:
        """Call before an open case computes a new ``rule`` deadline, ``days`` working days
        from ``start``. When its calendar lacks official data for a year that count
        crosses, the calendar in force now is fetched (a local activity: a replay reads its
        answer from the history); a year that is official now is used from here on, and
        a decision says so. Deadlines already set stay as they were computed, with their
        calendar-fallback warning."""
        calendar = self._calendar()
        missing = calendar.add_working_days(start, days).fallback_years
        fetched = self._calendar_fetched
        if not missing or (fetched is not None and workflow.now() - fetched < CALENDAR_FRESH):
            # No activity: nothing is missing, or the calendar was fetched a moment ago
            # (an R23 wait as the case starts).
            return
        self._calendar_fetched = workflow.now()
        current: CaseContext = await self._bookkeeping(
            CaseActivities.load_case_context,
            LoadContextInput(
                region=self.region, start=start, side=self.side, counterpart=self.counterpart
            ),
        )
        fresh = WorkingDayCalendar.from_json(current.calendar)
        loaded = [year for y in missing if (year := fresh.year(y)) is not None]
        if not loaded:
            return
        self.calendar = calendar.with_years(loaded)
        await self.decide(
            [
                calendar_loaded_decision(
                    rule=rule,
                    years={year.year: year.version for year in loaded},
                    policy_version=self._context().policy_version,
                )
            ]
        )

    async def replan_transfer_out(self, start: date) -> CaseDeadlines:
        """``plan_transfer_out`` for a limit that runs again later in an open case (R12
        after an R23 wait or from a corrected request), with the calendar in force now."""
        await self.refresh_calendar("R12", start, self.limits.total_days)
        return self.plan_transfer_out(start)

    def _calendar(self) -> WorkingDayCalendar:
        assert self.calendar is not None, "load_context first"
        return self.calendar

    def plan_transfer_out(self, start: date) -> CaseDeadlines:
        """R12/R14: the outgoing side's 10 and the whole case's 15 working days from
        ``start``; the reminder a few working days before the first limit."""
        assert self.calendar is not None, "load_context first"
        plan = compute_transfer_out_deadlines(start, self.limits, self.calendar)
        for deadline in (plan.transfer_out_due, plan.total_due):
            self._note_fallback(deadline)
        self.deadlines.update(
            transfer_out_due=plan.transfer_out_due.due, total_due=plan.total_due.due
        )
        return plan

    def deadline_decisions(self, plan: CaseDeadlines) -> list[Decision]:
        """R12 and R14 as decisions: which limit, from when, under which policy."""
        return list(case_deadline_decisions(plan, self.limits, self._context().policy_version))

    def _note_fallback(self, deadline: Deadline) -> None:
        for year in deadline.fallback_years:
            warning = f"calendar-fallback-{year}"
            if warning not in self.warnings:
                # Computed Monday-Friday minus the fixed-date statutory holidays: the
                # official calendar for that year is not loaded.
                self.warnings.append(warning)

    def region_name(self, code: str) -> str:
        """A region as a person reads it: its name from the case context, else its code."""
        names = self.context.region_names if self.context is not None else {}
        return names.get(code, code)

    def _context(self) -> CaseContext:
        assert self.context is not None, "load_context first"
        return self.context

    def today(self) -> date:
        return china_date(workflow.now())

    def working_days_after(self, start: date, days: int) -> date:
        assert self.calendar is not None, "load_context first"
        deadline = self.calendar.add_working_days(start, days)
        self._note_fallback(deadline)
        return deadline.due

    # The limits' deadlines, computed by the rules in domain/limits.py.
    def transfer_in_deadline(self, received_on: date) -> Deadline:
        """R13: the incoming agency's own working days from ``received_on``."""
        return self._limit(compute_transfer_in_deadline, received_on)

    def soft_refusal_deadline(self, refused_on: date) -> Deadline:
        """R5-R8: the last day a soft refusal can be corrected on the same case."""
        return self._limit(compute_soft_refusal_deadline, refused_on)

    def not_connected_escalation(self, waiting_since: date) -> Deadline:
        """R23: the day a case waiting for a region to go live goes to a clerk."""
        return self._limit(compute_not_connected_escalation, waiting_since)

    def _limit(
        self,
        compute: Callable[[date, CaseLimits, WorkingDayCalendar], Deadline],
        start: date,
    ) -> Deadline:
        assert self.calendar is not None, "load_context first"
        deadline = compute(start, self.limits, self.calendar)
        self._note_fallback(deadline)
        return deadline

    # --- timeline ----------------------------------------------------------------------
    async def record(
        self,
        event: str,
        status: str | None = None,
        *,
        rule: str | None = None,
        detail: dict[str, AuditValue] | None = None,
        awaiting: Awaiting | bool | None = False,
        terminal: bool = False,
        facts: dict[str, Any] | None = None,
    ) -> None:
        """Append one event to the case's timeline and the audit topic.

        ``awaiting=False`` keeps the current value; None clears it.
        """
        if status is not None:
            self.status = status
        if terminal:
            self.terminal = True
        if awaiting is not False:
            self.awaiting = awaiting if isinstance(awaiting, Awaiting) else None
        self._step += 1
        # The key names the step and the event it records: a workflow task that dies after
        # its local activity committed (a worker killed) may, run again with a signal that
        # came meanwhile, take another branch at the same step; that event must be written,
        # not taken for the one already there. The same event at the same step, run again
        # (its times may differ: workflow.now() is the new task's), is written once.
        record = CaseEvent(
            case_id=self.case_id,
            side=self.side,
            event_key=f"{workflow.info().workflow_id}:{self._step}:{event}",
            event=event,
            status=self.status,
            occurred_at=workflow.now(),
            rule=rule,
            detail=detail or {},
            awaiting=self.awaiting,
            deadlines=dict(self.deadlines),
            escalated=self.escalated,
            warnings=list(self.warnings),
            terminal=terminal,
            facts=facts or {},
        )
        if self._batch is not None:
            self._batch.append(record)
            return
        await self._bookkeeping(CaseActivities.record_case_event, record)

    @contextlib.asynccontextmanager
    async def together(self) -> AsyncIterator[None]:
        """Events recorded inside the block are written by one local activity when it
        ends, in order, instead of one each: an event and the decisions it implies cost
        one round trip of the workflow task (make bench counts them). The block only
        records; it must not wait for anything. Histories recorded before this change
        replay one record at a time."""
        if self._batch is not None or not workflow.patched(BATCH_RECORDS):
            yield
            return
        self._batch = []
        try:
            yield
        finally:
            batch, self._batch = self._batch, None
            if batch:
                await self._bookkeeping(CaseActivities.record_case_events, batch)

    async def decide(self, decisions: Iterable[Decision]) -> None:
        """Record each decision with its rule, policy version and bilingual reason, so the
        case can say why."""
        if not workflow.patched(RECORD_DECISIONS):
            return  # histories recorded before decisions were kept replay as they ran
        for decision in decisions:
            await self.record(
                CaseEventName.DECISION,
                rule=decision.rule,
                detail={
                    "outcome": decision.outcome,
                    "policy_version": decision.policy_version,
                    "explanation_en": decision.explanation_en,
                    "explanation_zh": decision.explanation_zh,
                },
            )

    async def escalate(
        self,
        stage: str,
        reason_code: str,
        due: date | None,
        en: str,
        zh: str,
        rule: str | None = None,
    ) -> Escalation:
        """A missed limit or a stuck step goes to a clerk; the case keeps going (never a
        silent failure)."""
        self.escalated = True
        await self.record(
            CaseEventName.ESCALATED,
            rule=rule,
            detail={
                "stage": stage,
                "reason_code": reason_code,
                "due_on": due.isoformat() if due else None,
                "message_en": en,
            },
        )
        return Escalation(
            stage=stage, reason_code=reason_code, due_on=due, message_en=en, message_zh=zh
        )

    async def step(self, name: str, method: Any, arg: Any, retry: RetryPolicy) -> Any:
        """A records or money activity. A transient failure retries with ``retry`` (the
        stuck-case sweep reports one that keeps failing); a domain error is not retried
        (workflows/activities.py raises it non-retryable): the case is escalated with the
        step and the error type (never the message: it may name the person) and waits
        for a clerk's retry, instead of failing its workflow or looping silently."""
        while True:
            try:
                return await workflow.execute_activity_method(
                    method, arg, start_to_close_timeout=QUICK, retry_policy=retry
                )
            except ActivityError as error:
                await self.step_failed(name, error)

    async def step_failed(
        self,
        name: str,
        error: ActivityError,
        *,
        en: str = "The step {name} failed with {error_type}; a clerk checks the records "
        "and retries it.",
        zh: str = "步骤{name}失败（{error_type}），请经办人员核查记录后重试。",
        rule: str | None = None,
        give_up: Callable[[], bool] = lambda: False,
    ) -> bool:
        """A step the records refused: escalated with the step and the error type, then
        wait for a clerk's retry (True) or until ``give_up`` holds (False)."""
        error_type = getattr(error.cause, "type", None) or type(error.cause).__name__
        values = {"name": name, "error_type": error_type}
        await self.escalate(
            name, "STEP_FAILED", None, en.format(**values), zh.format(**values), rule=rule
        )
        self.failed_step = name
        self.retry_requested = None  # only a retry asked from now on counts
        await workflow.wait_condition(lambda: self.retry_requested is not None or give_up())
        self.failed_step = None
        action, self.retry_requested = self.retry_requested, None
        if action is None:
            return False
        await self.record(
            CaseEventName.CLERK_RETRY_STEP, detail={"step": name, "clerk": action.clerk}
        )
        return True

    # --- delivery ------------------------------------------------------------------------
    def envelope(
        self, document: BaseModel, step: str, to_region: str, causation_id: str | None = None
    ) -> Envelope:
        return Envelope.wrap(
            document,
            case_id=self.case_id,
            step=step,
            from_region=self.region,
            to_region=to_region,
            sent_at=workflow.now(),
            causation_id=causation_id,
        )

    async def await_region(self, region: str, document: str, *, interruptible: bool = True) -> bool:
        """R23: while ``region`` is not connected to the platform, wait and re-check with
        backoff until it goes live, escalating after the configured working days. A clerk
        may ask for a re-check now; a withdrawal, cancellation or offline switch ends the
        wait at once (``self.interrupted``; the caller ends the case). True when it had to
        wait."""
        connected: bool = await self._bookkeeping(CaseActivities.region_connected, region)
        if connected:
            return False
        previous = (self.status, self.awaiting)
        await self.refresh_calendar("R23", self.today(), self.limits.not_connected_escalation_days)
        await self.record(
            CaseEventName.WAITING_FOR_REGION_CONNECTION,
            "waiting_region_connection",
            rule="R23",
            detail={"region": region, "document": document},
            awaiting=Awaiting(
                what=f"region {region} to connect to the platform",
                from_party=f"national platform / region {region}",
            ),
        )
        escalate_on = self.not_connected_escalation(self.today()).due
        if not await self._wait_until_connected(region, escalate_on, interruptible):
            return True
        self.status, self.awaiting = previous
        await self.record(
            CaseEventName.REGION_CONNECTED,
            rule="R23",
            detail={"region": region, "document": document},
        )
        return True

    async def _wait_until_connected(
        self, region: str, escalate_on: date, interruptible: bool
    ) -> bool:
        """The R23 wait itself: True once ``region`` is live, False when the case was
        interrupted. Escalated once, on ``escalate_on``; a clerk's retry checks at once."""
        escalate_at = end_of_day(escalate_on)
        escalated = False
        while True:
            handle = self._check_region(region)
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    partial(self._woken, handle, interruptible),
                    timeout=None if escalated else seconds_until(escalate_at, workflow.now()),
                )
            if handle.done():
                await handle
                return True
            handle.cancel()
            with contextlib.suppress(ActivityError, asyncio.CancelledError):
                await handle
            if interruptible and self.interrupted:
                return False
            if self.retry_requested is not None:
                action, self.retry_requested = self.retry_requested, None
                await self.record(
                    CaseEventName.CLERK_RETRY_DELIVERY,
                    rule="R23",
                    detail={"region": region, "clerk": action.clerk},
                )
                continue
            escalated = True
            await self.escalate(
                "delivery",
                "REGION_NOT_CONNECTED",
                escalate_on,
                f"Region {region} is still not connected; a clerk may choose the offline channel.",
                f"地区{region}仍未接入平台，经办人员可改用线下渠道。",
                rule="R23",
            )

    def _check_region(self, region: str) -> workflow.ActivityHandle[None]:
        # Temporal's retry backoff is the wait: the activity fails until the region is
        # live, and retries add no history events however long it takes.
        return workflow.start_activity_method(
            CaseActivities.require_region_connected,
            region,
            start_to_close_timeout=QUICK,
            retry_policy=self._delivery_retry(),
            # A clerk's "check now" starts a fresh check at once; the one in backoff
            # is simply dropped (it has no effect but an answer).
            cancellation_type=ActivityCancellationType.ABANDON,
        )

    async def deliver(self, envelope: Envelope, *, region_checked: bool = False) -> bool:
        """Deliver a document (after the R23 wait for its region unless the caller did
        it). True when it had to wait for the region. A document is delivered whatever
        the case's own side asks meanwhile: only the first request's wait is interruptible
        (the caller's await_region)."""
        waited = (
            False
            if region_checked
            else await self.await_region(envelope.to_region, envelope.type, interruptible=False)
        )
        # Still retried with backoff: a region may drop off between the check and the send.
        await workflow.execute_activity_method(
            CaseActivities.deliver_document,
            envelope,
            start_to_close_timeout=QUICK,
            retry_policy=self._delivery_retry(),
        )
        return waited

    def _woken(self, handle: asyncio.Future[None], interruptible: bool) -> bool:
        return (
            handle.done()
            or self.retry_requested is not None
            or (interruptible and self.interrupted)
        )

    def _delivery_retry(self) -> RetryPolicy:
        return RetryPolicy(
            initial_interval=timedelta(seconds=self._context().delivery_retry_initial_seconds),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=self._context().delivery_retry_max_seconds),
        )

    def view(self) -> CaseView:
        return CaseView(
            case_id=self.case_id,
            side=self.side,
            status=self.status,
            awaiting=self.awaiting,
            deadlines=dict(self.deadlines),
            escalated=self.escalated,
        )


class CaseWorkflowBase:
    """What every case workflow has: platform documents arrive by the ``document`` signal
    (kept until the case's flow exists), and ``view`` answers where the case stands."""

    def __init__(self) -> None:
        self.flow: CaseFlow | None = None
        self._pending: list[Envelope] = []

    @workflow.signal
    def document(self, envelope: Envelope) -> None:
        if self.flow is None:
            self._pending.append(envelope)
        else:
            self.flow.receive(envelope)

    @workflow.signal
    def retry_step(self, action: ClerkAction) -> None:
        """A clerk re-runs a step the case was escalated for (STEP_FAILED, a held
        document), after checking the records."""
        if self.flow is not None:
            self.flow.retry_requested = action

    @workflow.query
    def view(self) -> CaseView | None:
        return None if self.flow is None else self.flow.view()

    def adopt(self, flow: CaseFlow) -> CaseFlow:
        """Make ``flow`` the case's flow and hand it the documents that came first."""
        self.flow = flow
        for envelope in self._pending:
            flow.receive(envelope)
        self._pending.clear()
        return flow


__all__ = ["QUICK", "QUICK_RETRY", "REGION_NOT_CONNECTED", "CaseFlow", "CaseWorkflowBase"]
