"""An in-memory platform for workflow tests: fake ports behind the real activity classes.

Both sides' case workflows run on their own task queue, each with the real
``CaseActivities`` and side activities built on the fakes below. The fake publisher is
the national platform plus the other side's Kafka entry point: it records every document
and hands it to the other side's workflow the way ``services/*/app.py`` do (a signal, or
signal-with-start for a TransferRequested). A side that should stay silent (to cross a
deadline) is held: its documents are recorded and forwarded only on ``release``.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from contracts.documents import (
    AuditRecord,
    EnrolmentPeriod,
    InformationSheet,
    PersonIdentity,
    RefusalReason,
    TransferRequested,
)
from contracts.envelope import Envelope
from domain.calendar import WorkingDayCalendar
from domain.eligibility import refusal
from domain.limits import CaseLimits
from domain.regions import load_region_registry
from services.common.bootstrap import PASSTHROUGH_MODULES
from services.common.config import Settings
from services.common.policy_context import PolicyContext
from workflows.activities import CaseActivities
from workflows.clock import china_date
from workflows.incoming.activities import IncomingActivities
from workflows.incoming.types import (
    CertificateLoad,
    CreditInput,
    IncomingCaseInput,
    TransferInInput,
    TransferInResult,
)
from workflows.incoming.workflows import (
    IncomingCaseWorkflow,
    IncomingResidualWorkflow,
    incoming_workflow_id,
)
from workflows.outgoing.activities import CertificateActivities, OutgoingActivities
from workflows.outgoing.types import (
    BankPayoutInput,
    BankPayoutResult,
    CheckRequestInput,
    OutgoingCaseInput,
    ResidualInput,
    ReturnInput,
    StopAnswerInput,
    TransferOutFacts,
    TransferOutInput,
)
from workflows.outgoing.workflows import (
    OutgoingCaseWorkflow,
    OutgoingResidualWorkflow,
    OutgoingStopAnswerWorkflow,
    outgoing_stop_answer_workflow_id,
    outgoing_workflow_id,
)
from workflows.types import CaseContext, CaseEvent, CaseView, LoadContextInput, Side

ALL_WORKFLOWS: list[type] = [
    IncomingCaseWorkflow,
    OutgoingCaseWorkflow,
    IncomingResidualWorkflow,
    OutgoingResidualWorkflow,
    OutgoingStopAnswerWorkflow,
]

OUTGOING_REGION = "620800"  # Pingliang, Gansu
INCOMING_REGION = "350100"  # Fuzhou, Fujian: another province, so the balance is remitted (R18)
# The sample number of the ID-number standard (GB 11643), not a real person's.
PERSON = PersonIdentity(id_number="11010519491231002X", name="测试参保人")
BALANCE_FEN = 1_234_56
CONTRIBUTION_MONTHS = 96


def sandboxed_runner() -> SandboxedWorkflowRunner:
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    )


def transfer_request(applied_on: date, **changes: Any) -> TransferRequested:
    """The contact letter of an employee moving from Pingliang to Fuzhou."""
    request = TransferRequested(
        person=PERSON,
        from_region=OUTGOING_REGION,
        to_region=INCOMING_REGION,
        from_scheme="employee",
        to_scheme="employee",
        reason="new job",
        applied_on=applied_on,
        channel="online",
        incoming_agency="福州市医疗保障局",
    )
    return request.model_copy(update=changes) if changes else request


def refusal_reason(code: str) -> RefusalReason:
    """A refusal from the real catalogue (R5-R9), as the outgoing records would send it."""
    entry = refusal(code)
    return RefusalReason(
        code=entry.code,
        rule=entry.rule,
        soft=entry.soft,
        message_zh=entry.message_zh,
        message_en=entry.message_en,
    )


# --- ports -------------------------------------------------------------------------------
class FakeCaseStore:
    """CaseStore: the timeline in memory, once per event_key, sequence per case.

    Builds the AuditRecord like the SQL repository does, so an event the audit contract
    rejects fails here too.
    """

    def __init__(self) -> None:
        self.events: list[CaseEvent] = []
        self.sequences: list[int] = []
        self._keys: set[str] = set()
        self.rewrites = 0
        self.sent_ids: set[str] = set()

    def record_sent(self, envelope: Envelope) -> None:
        self.sent_ids.add(envelope.message_id)

    def append_event(self, event: CaseEvent) -> AuditRecord | None:
        if event.event_key in self._keys:
            self.rewrites += 1
            return None
        sequence = sum(1 for e in self.events if e.case_id == event.case_id) + 1
        record = AuditRecord(
            case_id=event.case_id,
            side=event.side,
            sequence=sequence,
            event=event.event,
            status=event.status,
            occurred_at=event.occurred_at,
            detail=dict(event.detail),
            rule=event.rule,
        )
        self._keys.add(event.event_key)
        self.events.append(event)
        self.sequences.append(sequence)
        return record

    def names(self) -> list[str]:
        """The case's path: every event but the "why" records (decisions, continuity),
        which tests of those look at through ``decisions()`` and ``named()``."""
        return [e.event for e in self.events if e.event not in WHY_EVENTS]

    def decisions(self) -> dict[str, CaseEvent]:
        return {e.rule or "": e for e in self.events if e.event == "decision"}

    def named(self, name: str) -> list[CaseEvent]:
        return [e for e in self.events if e.event == name]

    def one(self, name: str) -> CaseEvent:
        found = self.named(name)
        assert len(found) == 1, f"expected one {name!r} event, got {self.names()}"
        return found[0]


WHY_EVENTS = ("decision", "continuity_assessed")
RESULT_HORIZON = timedelta(days=800)  # no test case runs longer in skipped time


class PassThroughSigner:
    def sign(self, envelope: Envelope) -> Envelope:
        return envelope


class FakeConnectivity:
    """Connectivity: every region is connected except those in ``disconnected`` (R23)."""

    def __init__(self) -> None:
        self.disconnected: set[str] = set()

    def is_connected(self, region: str, on: date) -> bool:
        return region not in self.disconnected


# Removed when the test process exits (TemporaryDirectory's finalizer).
_POLICY_RECORD_TMP = tempfile.TemporaryDirectory(prefix="medtransfer-policy-record-")
_POLICY_RECORD_DIR = Path(_POLICY_RECORD_TMP.name)


class FakeContextSource:
    """ContextSource: the real PolicyContext (real calendar, national limits), with a short
    delivery retry so an R23 wait costs few activity attempts in skipped time."""

    def __init__(
        self,
        *,
        retry_initial_seconds: float = 60.0,
        retry_max_seconds: float = 6 * 3600.0,
        limits: CaseLimits | None = None,
    ) -> None:
        self._policy = PolicyContext(
            Settings(
                delivery_retry_initial_seconds=retry_initial_seconds,
                delivery_retry_max_seconds=retry_max_seconds,
                # The record of loaded policy versions (item 13) of this test process, not
                # the developer's var/local/data one.
                data_dir=_POLICY_RECORD_DIR,
            ),
            load_region_registry(),
        )
        self._limits = limits

    def load(self, request: LoadContextInput) -> CaseContext:
        context = self._policy.load(request)
        if self._limits is None:
            return context
        return context.model_copy(update={"limits": dict(vars(self._limits))})

    def calendar(self, start: date) -> WorkingDayCalendar:
        request = LoadContextInput(region=INCOMING_REGION, start=start)
        return WorkingDayCalendar.from_json(self.load(request).calendar)


@dataclass
class FakeOutgoingRecords:
    """OutgoingRecords: ``refusals`` are returned by the first checks, one list per check."""

    refusals: list[list[RefusalReason]] = field(default_factory=list)
    balance_fen: int = BALANCE_FEN
    sheet_balance_fen: int | None = None  # what the sheet says, when it differs (R15)
    contribution_months: int = CONTRIBUTION_MONTHS
    checks: list[CheckRequestInput] = field(default_factory=list)
    transfers: list[TransferOutInput] = field(default_factory=list)
    payouts: list[BankPayoutInput] = field(default_factory=list)
    returns: list[ReturnInput] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    incoming_connected: bool = True  # what the check reports (R19 when False)
    # remittance id -> amount debited, once per remittance like the ledger's unique key
    debits: dict[str, int] = field(default_factory=dict)

    def check_request(self, request: CheckRequestInput) -> TransferOutFacts:
        self.checks.append(request)
        refusals = self.refusals.pop(0) if self.refusals else []
        return TransferOutFacts(
            refusals=refusals,
            balance_fen=self.balance_fen,
            incoming_connected=self.incoming_connected,
            enrolment_periods_months=self.contribution_months,
        )

    def transfer_out(self, request: TransferOutInput) -> InformationSheet:
        self.transfers.append(request)
        if request.balance_action in ("remit", "pay_to_bank") and request.expected_balance_fen:
            self.debits.setdefault(request.remittance_id, request.expected_balance_fen)
        req = request.request
        return InformationSheet(
            person=req.person,
            from_region=req.from_region,
            scheme=req.from_scheme,
            enrolment_periods=[
                EnrolmentPeriod(
                    region=req.from_region,
                    scheme=req.from_scheme,
                    start=date(2018, 7, 1),
                    end=request.transferred_out_on,
                    contribution_months=self.contribution_months,
                    # R25-R27: paid up to the month of transfer-out.
                    last_paid_month=request.transferred_out_on.replace(day=1),
                )
            ],
            total_contribution_months=self.contribution_months,
            balance_fen=(
                self.balance_fen if self.sheet_balance_fen is None else self.sheet_balance_fen
            ),
            transferred_out_on=request.transferred_out_on,
            issued_by_region=req.from_region,
        )

    def pay_to_bank(self, request: BankPayoutInput) -> BankPayoutResult:
        self.payouts.append(request)
        return BankPayoutResult(account_last4="0000", paid_on=date.today())

    def restore_returned(self, request: ReturnInput) -> int:
        self.returns.append(request)
        return request.amount_fen

    def release_claim(self, case_id: str) -> None:
        self.released.append(case_id)

    def was_transferred_out(self, case_id: str) -> bool:
        return any(t.case_id == case_id for t in self.transfers)

    def post_residual(self, request: ResidualInput) -> str:
        return f"{request.case_id}-residual-{request.contribution_id}"


@dataclass
class FakeIncomingRecords:
    """IncomingRecords. ``transfer_in_outage``: the local system is down for that long at
    the first transfer-in attempt (the retry comes back after it, in skipped time)."""

    transfer_in_outage: timedelta | None = None
    transfer_ins: list[TransferInInput] = field(default_factory=list)
    credits: list[CreditInput] = field(default_factory=list)

    def complete_transfer_in(self, request: TransferInInput) -> TransferInResult:
        self.transfer_ins.append(request)
        if self.transfer_in_outage is not None and activity.info().attempt == 1:
            raise ApplicationError(
                "local enrolment system unavailable",
                type="LocalSystemUnavailable",
                next_retry_delay=self.transfer_in_outage,
            )
        return TransferInResult(deemed_contribution_months=request.sheet.total_contribution_months)

    def credit(self, request: CreditInput) -> None:
        self.credits.append(request)


class FakeCertificateStore:
    """CertificateStore: the insurance certificates issued (R10/R23), once per case."""

    def __init__(self) -> None:
        self.certificates: dict[str, Envelope] = {}

    def issued(self, case_id: str) -> Envelope | None:
        return self.certificates.get(case_id)

    def keep_issued(self, envelope: Envelope) -> Envelope:
        return self.certificates.setdefault(envelope.case_id, envelope)


class FakeVerifiedDocuments:
    """Workflow tests hand documents to the workflows directly: all count as verified
    unless a test says a type was never verified (the inbound path is tested apart)."""

    def __init__(self) -> None:
        self.unverified_types: set[str] = set()
        self.asked: list[tuple[str, str, dict[str, Any]]] = []

    def has_verified(self, case_id: str, doc_type: str, fields: dict[str, Any]) -> bool:
        self.asked.append((case_id, doc_type, fields))
        return doc_type not in self.unverified_types


class GatedOutgoingActivities(OutgoingActivities):
    """The outgoing checks wait for the test to open ``gate`` (a slow records system)."""

    def __init__(self, records: FakeOutgoingRecords, verified: FakeVerifiedDocuments) -> None:
        super().__init__(records, verified)
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    @activity.defn(name="check_transfer_out")
    async def check_transfer_out(self, request: CheckRequestInput) -> TransferOutFacts:
        self.entered.set()
        await self.gate.wait()
        return await super().check_transfer_out(request)


# --- the platform ---------------------------------------------------------------------------
class RecordingPublisher:
    """DocumentPublisher of one side: records, then hands the document to the platform."""

    def __init__(self, side: Side, platform: InMemoryPlatform) -> None:
        self.side = side
        self.platform = platform
        self.documents: list[Envelope] = []
        self.carried: list[Envelope] = []
        self.audit: list[AuditRecord] = []

    async def publish_document(self, envelope: Envelope) -> None:
        self.documents.append(envelope)
        await self.platform.carry(self.side, envelope)
        self.carried.append(envelope)  # with the other side (or held) from now on

    async def publish_audit(self, record: AuditRecord) -> None:
        self.audit.append(record)

    def of_type(self, doc_type: str) -> list[Envelope]:
        return [e for e in self.documents if e.type == doc_type]


class InMemoryPlatform:
    """Two agencies' workers on one test server, documents carried between them."""

    def __init__(
        self,
        env: WorkflowEnvironment,
        client: Client,
        *,
        outgoing_records: FakeOutgoingRecords | None = None,
        incoming_records: FakeIncomingRecords | None = None,
        context: FakeContextSource | None = None,
        gate_outgoing_checks: bool = False,
    ) -> None:
        self.env = env
        self.client = client
        suffix = uuid.uuid4().hex[:12]
        self.case_id = f"TC{suffix.upper()}"
        self.queues: dict[Side, str] = {
            "incoming": f"wf-test-incoming-{suffix}",
            "outgoing": f"wf-test-outgoing-{suffix}",
        }
        self.stores: dict[Side, FakeCaseStore] = {
            "incoming": FakeCaseStore(),
            "outgoing": FakeCaseStore(),
        }
        self.publishers: dict[Side, RecordingPublisher] = {
            "incoming": RecordingPublisher("incoming", self),
            "outgoing": RecordingPublisher("outgoing", self),
        }
        self.connectivity = FakeConnectivity()
        self.context = context or FakeContextSource()
        self.outgoing_records = outgoing_records or FakeOutgoingRecords()
        self.incoming_records = incoming_records or FakeIncomingRecords()
        self.verified = FakeVerifiedDocuments()
        self.certificates = FakeCertificateStore()
        self.outgoing_activities: OutgoingActivities = (
            GatedOutgoingActivities(self.outgoing_records, self.verified)
            if gate_outgoing_checks
            else OutgoingActivities(self.outgoing_records, self.verified)
        )
        self.copies = 1  # deliveries per document: 2 = the platform redelivers everything
        self.deliveries = 0
        self.held: dict[Side, Callable[[Envelope], bool]] = {}
        self.on_hold: list[tuple[Side, Envelope]] = []
        self.late: list[Envelope] = []  # documents for a workflow that had already closed
        self.incoming: WorkflowHandle[Any, Any] | None = None
        self.outgoing: WorkflowHandle[Any, Any] | None = None

    # --- stores and documents ---
    @property
    def incoming_store(self) -> FakeCaseStore:
        return self.stores["incoming"]

    @property
    def outgoing_store(self) -> FakeCaseStore:
        return self.stores["outgoing"]

    def sent(self, side: Side, doc_type: str) -> list[Envelope]:
        return self.publishers[side].of_type(doc_type)

    def delivered(self, side: Side, doc_type: str) -> list[Envelope]:
        """What ``side`` sent of ``doc_type`` that has reached the other side's workflow."""
        return [e for e in self.publishers[side].carried if e.type == doc_type]

    # --- carrying documents ---
    def hold(self, side: Side, types: Iterable[str] | None = None) -> None:
        """Stop forwarding ``side``'s documents (all, or these types) until ``release``."""
        chosen = None if types is None else frozenset(types)
        self.held[side] = lambda envelope: chosen is None or envelope.type in chosen

    async def release(self, side: Side) -> None:
        self.held.pop(side, None)
        waiting = [e for s, e in self.on_hold if s == side]
        self.on_hold = [(s, e) for s, e in self.on_hold if s != side]
        for envelope in waiting:
            await self.carry(side, envelope)

    async def carry(self, from_side: Side, envelope: Envelope) -> None:
        holding = self.held.get(from_side)
        if holding is not None and holding(envelope):
            self.on_hold.append((from_side, envelope))
            return
        for _ in range(self.copies):
            self.deliveries += 1
            if from_side == "incoming":
                await self._to_outgoing(envelope)
            else:
                await self._signal(incoming_workflow_id(envelope.case_id), envelope)

    async def _to_outgoing(self, envelope: Envelope) -> None:
        if envelope.type == "WithdrawalRequested":
            # Like services/outgoing_agency/inbox.py: a stop for a closed case is answered.
            late = len(self.late)
            await self._signal(outgoing_workflow_id(envelope.case_id), envelope)
            if len(self.late) > late:
                with contextlib.suppress(WorkflowAlreadyStartedError):
                    await self.client.start_workflow(
                        OutgoingStopAnswerWorkflow.run,
                        StopAnswerInput(envelope=envelope, region=envelope.to_region),
                        id=outgoing_stop_answer_workflow_id(envelope.message_id),
                        task_queue=self.queues["outgoing"],
                    )
            return
        if envelope.type != "TransferRequested":
            await self._signal(outgoing_workflow_id(envelope.case_id), envelope)
            return
        # Like services/outgoing_agency/inbox.py: the first request starts the case.
        try:
            handle = await self.client.start_workflow(
                OutgoingCaseWorkflow.run,
                OutgoingCaseInput(case_id=envelope.case_id, region=envelope.to_region),
                id=outgoing_workflow_id(envelope.case_id),
                task_queue=self.queues["outgoing"],
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                start_signal="document",
                start_signal_args=[envelope],
            )
        except WorkflowAlreadyStartedError:
            self.late.append(envelope)
            return
        if self.outgoing is None:
            self.outgoing = handle

    async def _signal(self, workflow_id: str, envelope: Envelope) -> None:
        try:
            await self.client.get_workflow_handle(workflow_id).signal("document", envelope)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            self.late.append(envelope)

    # --- workers and workflows ---
    def _activities(self, side: Side) -> list[Callable[..., Any]]:
        shared = CaseActivities(
            self.stores[side],
            self.publishers[side],
            PassThroughSigner(),
            self.connectivity,
            self.context,
        )
        common: list[Callable[..., Any]] = [
            shared.record_case_event,
            shared.record_case_events,
            shared.region_connected,
            shared.require_region_connected,
            shared.deliver_document,
            shared.load_case_context,
        ]
        if side == "incoming":
            records = IncomingActivities(self.incoming_records, self.verified)
            return [
                *common,
                records.complete_transfer_in,
                records.credit_balance,
                records.certificate_verified,
            ]
        out = self.outgoing_activities
        certificates = CertificateActivities(PassThroughSigner(), self.certificates)
        return [
            *common,
            certificates.issue_insurance_certificate,
            out.check_transfer_out,
            out.transfer_out,
            out.pay_balance_to_bank,
            out.post_residual_remittance,
            out.restore_returned_balance,
            out.release_enrolment_claim,
            out.was_transferred_out,
        ]

    def worker(self, side: Side) -> Worker:
        return Worker(
            self.client,
            task_queue=self.queues[side],
            workflows=ALL_WORKFLOWS,
            activities=self._activities(side),
            workflow_runner=sandboxed_runner(),
        )

    async def start_case(
        self, accepted_on: date | None = None, request: TransferRequested | None = None
    ) -> WorkflowHandle[Any, Any]:
        """Start the incoming case as the incoming agency's API does on acceptance."""
        accepted_on = accepted_on or await self.today()
        request = request or transfer_request(accepted_on)
        self.incoming = await self.client.start_workflow(
            IncomingCaseWorkflow.run,
            IncomingCaseInput(case_id=self.case_id, request=request, accepted_on=accepted_on),
            id=incoming_workflow_id(self.case_id),
            task_queue=self.queues["incoming"],
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
        return self.incoming

    async def load_certificate(self, clerk: str = "clerk-5", *, case_id: str | None = None) -> None:
        """R10/R23: the person brings the certificate the outgoing agency issued for
        ``case_id`` (this case by default) and a clerk loads it into this case, as the
        incoming agency's API does after verifying it."""
        certificate = self.certificates.issued(case_id or self.case_id)
        assert certificate is not None, "no insurance certificate was issued"
        assert self.incoming is not None
        await self.incoming.signal(
            IncomingCaseWorkflow.load_certificate,
            CertificateLoad(envelope=certificate, clerk=clerk, reason="brought by the person"),
        )

    async def now(self) -> datetime:
        return await self.env.get_current_time()

    async def today(self) -> date:
        return china_date(await self.now())

    async def skip_until(self, instant: datetime) -> None:
        """Let the test server's clock run (skipping) until ``instant``, a day at a time:
        one long skip's RPC can time out on a loaded machine (the Java test server answers
        "Timeout expired"), a day's does not, and a day that timed out is asked again."""
        while (remaining := instant - await self.now()) > timedelta(0):
            await self._skip(min(remaining, timedelta(days=1)))

    async def _skip(self, step: timedelta) -> None:
        for attempt in range(3):
            try:
                await self.env.sleep(step)
                return
            except RPCError:
                if attempt == 2:
                    raise

    async def view(self, side: Side) -> CaseView | None:
        handle = self.incoming if side == "incoming" else self.outgoing
        assert handle is not None, f"no {side} workflow"
        if side == "incoming":
            return await handle.query(IncomingCaseWorkflow.view)
        return await handle.query(OutgoingCaseWorkflow.view)

    async def results(self) -> tuple[str, str]:
        """Both workflows' results; one at a time, as each await unlocks time skipping."""
        assert self.incoming is not None
        incoming = await self.result_of(self.incoming)
        await wait_until(lambda: self.outgoing is not None)
        assert self.outgoing is not None
        outgoing = await self.result_of(self.outgoing)
        return incoming, outgoing

    async def result_of(self, handle: WorkflowHandle[Any, Any]) -> Any:
        """A workflow's result, time skipped a day at a time until it closes. Not by awaiting
        ``result()`` with time skipping unlocked: the moment a workflow closes the test
        server jumps to the run timeouts it still holds for closed ones, ten years on, and
        every later case of the module would start in the 2040s, without calendar data."""
        give_up_at = await self.now() + RESULT_HORIZON
        while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            if await self.now() > give_up_at:
                raise AssertionError(f"{handle.id} still open after {RESULT_HORIZON.days} days")
            await self._skip(timedelta(days=1))
        with self.env.auto_time_skipping_disabled():
            return await handle.result()

    async def terminate_open(self) -> None:
        """Close what a test left running: a pending timer or task of a workflow nobody
        polls any more must not stall the next test's time skipping."""
        for workflow_id in (incoming_workflow_id(self.case_id), outgoing_workflow_id(self.case_id)):
            try:
                await self.client.get_workflow_handle(workflow_id).terminate("test finished")
            except RPCError:
                pass  # never started, or already closed


async def wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Poll in real time (the test server's clock is locked meanwhile)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running_platform(
    env: WorkflowEnvironment, client: Client, **options: Any
) -> AsyncIterator[InMemoryPlatform]:
    """Both agencies' workers; on exit every workflow of the case is closed."""
    platform = InMemoryPlatform(env, client, **options)
    try:
        async with platform.worker("incoming"), platform.worker("outgoing"):
            try:
                yield platform
            finally:
                gated = platform.outgoing_activities
                if isinstance(gated, GatedOutgoingActivities):
                    gated.gate.set()
    finally:
        # Terminated once the workers have finished what they were running, so no task of
        # a closed case is still in flight on the test server.
        await platform.terminate_open()
