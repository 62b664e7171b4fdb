"""Attacks on the offline channel (R10/R23) and the resettled-retiree payout (R21) between
the two case workflows (time-skipping test server, tests/support/workflow_fakes.py).
Each FINDING test fails on the code as it stands and names the invariant it breaks; each
GUARD test passes and keeps a crossing that held closed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from contracts.documents import InformationSheet
from tests.support.workflow_fakes import (
    BALANCE_FEN,
    CONTRIBUTION_MONTHS,
    FakeOutgoingRecords,
    GatedOutgoingActivities,
    InMemoryPlatform,
    running_platform,
    wait_until,
)
from workflows.incoming.types import CertificateLoad
from workflows.incoming.workflows import IncomingCaseWorkflow
from workflows.outgoing.types import TransferOutInput
from workflows.outgoing.workflows import OutgoingCaseWorkflow
from workflows.types import ClerkAction

pytestmark = [pytest.mark.workflow, pytest.mark.own_server]

OFFLINE = ClerkAction(clerk="clerk-3", reason="the person comes to the counter")


def assert_every_debit_settled_once(platform: InMemoryPlatform) -> None:
    records = platform.outgoing_records
    settled: dict[str, list[int]] = {}
    for credit in platform.incoming_records.credits:
        settled.setdefault(credit.remittance_id, []).append(credit.amount_fen)
    for payout in records.payouts:
        settled.setdefault(payout.remittance_id, []).append(payout.amount_fen)
    assert settled == {rid: [amount] for rid, amount in records.debits.items()}


def escalations(platform: InMemoryPlatform, side: str) -> list[str]:
    store = platform.incoming_store if side == "incoming" else platform.outgoing_store
    return [str(e.detail.get("reason_code")) for e in store.named("escalated")]


@asynccontextmanager
async def switched_before_transfer_out(
    env: WorkflowEnvironment, client: Client, **options: Any
) -> AsyncIterator[InMemoryPlatform]:
    async with running_platform(env, client, gate_outgoing_checks=True, **options) as platform:
        checks = platform.outgoing_activities
        assert isinstance(checks, GatedOutgoingActivities)
        handle = await platform.start_case()
        await checks.entered.wait()
        await handle.signal(IncomingCaseWorkflow.switch_offline, OFFLINE)
        await wait_until(lambda: "withdrawal_requested" in platform.incoming_store.names())
        checks.gate.set()
        yield platform


async def test_attack_r21_finding_incoming_takes_the_payout_path_for_an_ordinary_application(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    """FINDING (I1, trust nothing from the other agency): the incoming workflow goes down
    _retiree_payout on the sheet's balance_rule alone. A sheet saying R21 for an ordinary
    job-change application (not resettled_retiree) closes the incoming case "completed":
    the balance is credited, no transfer-in, no continuity, no TransferInCompleted, while
    the outgoing agency ended the enrolment and waits for a transfer-in receipt for ever.
    The person is enrolled nowhere."""
    async with running_platform(time_skipping_env, client) as platform:
        platform.hold("outgoing", ["TransferOutCompleted"])
        await platform.start_case()  # an ordinary application, resettled_retiree False
        await wait_until(lambda: len(platform.on_hold) == 1)
        side, sheet = platform.on_hold[0]
        platform.on_hold = [
            (side, sheet.model_copy(update={"payload": {**sheet.payload, "balance_rule": "R21"}}))
        ]
        await platform.release("outgoing")
        store = platform.incoming_store
        await wait_until(
            lambda: any(
                n in store.names() for n in ("case_completed", "escalated", "transfer_in_completed")
            )
        )
        assert not (
            "case_completed" in store.names() and not platform.incoming_records.transfer_ins
        ), f"an ordinary application closed as an R21 payout: {store.names()}"


async def test_attack_r10_finding_outgoing_never_watches_an_offline_transfer_in(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    """FINDING (I1 stuck unseen; docs/offline-channel.md says "the outgoing side's own
    limits run as online: a slow person shows there as the incoming agency's overdue
    transfer-in confirmation (R13)"): _run sets transfer_in_due = None for an offline
    case, so _await_confirmations waits for the transfer-in (and the credit behind it)
    with no timer. The outgoing agency remitted the balance and never escalates, however
    long the certificate stays unbrought; only the incoming side sees it."""
    async with switched_before_transfer_out(time_skipping_env, client) as platform:
        await wait_until(lambda: "balance_settled" in platform.outgoing_store.names())
        await wait_until(lambda: "insurance_certificate_issued" in platform.incoming_store.names())
        for _ in range(40):  # a day at a time: one long skip times out on the test server
            await platform.skip_until(await platform.now() + timedelta(days=1))
        await wait_until(lambda: "CERTIFICATE_NOT_BROUGHT" in escalations(platform, "incoming"))
        assert platform.sent("outgoing", "BalanceRemitted"), "the money has left"
        assert platform.incoming_records.credits == []
        assert escalations(platform, "outgoing"), (
            "40 days after the remittance the outgoing side has escalated nothing"
        )


async def test_attack_r10_finding_workflow_takes_a_changed_certificate_with_a_verified_number(
    time_skipping_env: WorkflowEnvironment, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FINDING (trust nothing; docs: "one that reached the workflow around the API is ...
    escalated CERTIFICATE_NOT_VERIFIED"): the workflow's check (certificate_verified) asks
    only whether a verified certificate of the case has that certificate_number, and then
    goes on with the envelope it was signalled. With the SQL semantics of has_verified
    (a field subset), a certificate changed after the genuine one was verified (here 360
    contribution months instead of 96, R24 deemed years) is transferred in."""
    async with switched_before_transfer_out(time_skipping_env, client) as platform:
        store = platform.incoming_store
        await wait_until(lambda: "insurance_certificate_issued" in store.names())
        genuine = platform.certificates.issued(platform.case_id)
        assert genuine is not None
        verified_rows = [genuine.document().model_dump(mode="json")]

        def has_verified(case_id: str, doc_type: str, fields: dict[str, Any]) -> bool:
            if doc_type != "InsuranceCertificate":
                return True
            return case_id == platform.case_id and any(
                all(row.get(k) == v for k, v in fields.items()) for row in verified_rows
            )

        monkeypatch.setattr(platform.verified, "has_verified", has_verified)
        sheet = dict(genuine.payload["info_sheet"])
        periods = [p | {"contribution_months": 360} for p in sheet["enrolment_periods"]]
        changed = genuine.model_copy(
            update={
                "payload": {
                    **genuine.payload,
                    "info_sheet": sheet
                    | {"total_contribution_months": 360, "enrolment_periods": periods},
                }
            }
        )
        InformationSheet.model_validate(changed.payload["info_sheet"])  # a valid document
        assert platform.incoming is not None
        await platform.incoming.signal(
            IncomingCaseWorkflow.load_certificate, CertificateLoad(envelope=changed, clerk="x")
        )
        await wait_until(
            lambda: (
                bool(platform.incoming_records.transfer_ins)
                or "CERTIFICATE_NOT_VERIFIED" in escalations(platform, "incoming")
            )
        )
        months = [t.sheet.total_contribution_months for t in platform.incoming_records.transfer_ins]
        assert months in ([], [CONTRIBUTION_MONTHS]), f"transferred in with {months} months"


@dataclass
class RefusedOnceRecords(FakeOutgoingRecords):
    """The records refuse the first transfer-out (a domain error, rolled back)."""

    failures: list[str] = field(default_factory=lambda: ["the enrolment changed"])

    def transfer_out(self, request: TransferOutInput) -> InformationSheet:
        if self.failures:
            raise LookupError(self.failures.pop())
        return super().transfer_out(request)


async def test_attack_r10_guard_offline_switch_crossing_a_refused_transfer_out_and_retry(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    """GUARD (I2): the records refuse the transfer-out (STEP_FAILED, nothing debited); the
    offline switch arrives while the step waits for a clerk; a clerk's retry then comes
    too. One transfer-out, by certificate, one debit, credited once."""
    records = RefusedOnceRecords()
    async with running_platform(time_skipping_env, client, outgoing_records=records) as platform:
        handle = await platform.start_case()
        await wait_until(lambda: "STEP_FAILED" in escalations(platform, "outgoing"))
        await handle.signal(IncomingCaseWorkflow.switch_offline, OFFLINE)
        # The switch is with the outgoing agency before the clerk's retry (a retry ahead of
        # it transfers out online, and the switch is then too late: another crossing).
        await wait_until(lambda: bool(platform.delivered("incoming", "WithdrawalRequested")))
        assert platform.outgoing is not None
        await platform.outgoing.signal(
            OutgoingCaseWorkflow.retry_step, ClerkAction(clerk="clerk-9", reason="checked")
        )
        await wait_until(lambda: "insurance_certificate_issued" in platform.incoming_store.names())
        await platform.load_certificate()
        assert await platform.results() == ("completed", "completed")
        assert len(records.transfers) == 1
        assert len(platform.certificates.certificates) == 1
        assert platform.sent("outgoing", "TransferOutCompleted") == []
        assert [c.amount_fen for c in platform.incoming_records.credits] == [BALANCE_FEN]
        assert_every_debit_settled_once(platform)
