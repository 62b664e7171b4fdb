"""R21 between the two case workflows: retirees are outside the transfer procedure; a
resettled retiree's account is paid out to the bank, the enrolment stays at the outgoing
region, and the incoming side neither continues an enrolment nor deems any years."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from contracts.documents import BankAccount
from domain.eligibility import EnrolmentFacts, OutgoingRequestFacts, check_transfer_out
from tests.support.workflow_fakes import (
    BALANCE_FEN,
    FakeOutgoingRecords,
    refusal_reason,
    running_platform,
    transfer_request,
)
from workflows.outgoing.types import CheckRequestInput, TransferOutFacts

pytestmark = pytest.mark.workflow

BANK = BankAccount(
    bank_name="中国工商银行", account_number="6222020200112233445", account_holder="测试参保人"
)


@dataclass
class RetireeOnRecord(FakeOutgoingRecords):
    """The outgoing record shows a retiree; the real checks (R5-R9, R21) answer."""

    def check_request(self, request: CheckRequestInput) -> TransferOutFacts:
        self.checks.append(request)
        req = request.request
        record = EnrolmentFacts(
            id_number=req.person.id_number,
            name=req.person.name,
            region=req.from_region,
            scheme=req.from_scheme,
            status="suspended",
            suspended_on=date(2021, 5, 31),
            arrears_fen=0,
            account_status="normal",
            balance_fen=self.balance_fen,
            contribution_months=self.contribution_months,
            also_active_in=None,
            retired=True,
        )
        facts = OutgoingRequestFacts(
            id_number=req.person.id_number,
            name=req.person.name,
            from_region=req.from_region,
            to_region=req.to_region,
            from_scheme=req.from_scheme,
            to_scheme=req.to_scheme,
            bank_account_holder=req.bank_account.account_holder if req.bank_account else None,
            resettled_retiree=req.resettled_retiree,
        )
        return TransferOutFacts(
            refusals=[refusal_reason(r.code) for r in check_transfer_out(facts, record)],
            balance_fen=self.balance_fen,
            enrolment_periods_months=self.contribution_months,
            retired=True,
        )


async def test_r21_retiree_on_record_refused_an_ordinary_transfer(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    records = RetireeOnRecord()
    async with running_platform(time_skipping_env, client, outgoing_records=records) as platform:
        await platform.start_case()  # an ordinary job-change application

        assert await platform.results() == ("refused", "refused")

        refused = platform.incoming_store.one("transfer_refused")
        assert (refused.rule, refused.detail["codes"]) == ("R21", "RETIREE_OUTSIDE_TRANSFER")
        assert records.transfers == []  # nothing ended, nothing debited
        assert records.released == [platform.case_id]


@pytest.mark.parametrize("balance", [BALANCE_FEN, 0])
async def test_r21_resettled_retiree_payout_keeps_the_enrolment_and_deems_no_years(
    time_skipping_env: WorkflowEnvironment, client: Client, balance: int
) -> None:
    records = RetireeOnRecord(balance_fen=balance)
    async with running_platform(time_skipping_env, client, outgoing_records=records) as platform:
        accepted_on = await platform.today()
        await platform.start_case(
            accepted_on,
            transfer_request(accepted_on, resettled_retiree=True, bank_account=BANK),
        )

        assert await platform.results() == ("completed", "completed")

        # Outgoing: the account is paid out, the enrolment is not transferred out, and
        # the record's claim is released (R5); no transfer-in receipt is awaited.
        outgoing = platform.outgoing_store
        balance_event = "balance_paid_to_bank" if balance else "balance_not_transferred"
        assert outgoing.names() == [
            "transfer_request_received",
            "account_paid_out",
            "balance_settled",
            "case_completed",
        ]
        assert outgoing.one("account_paid_out").rule == "R21"
        assert [p.rule for p in records.payouts] == (["R21"] if balance else [])
        assert records.released == [platform.case_id]
        assert outgoing.decisions()["R21"].detail

        # Incoming: the payout path is recorded; no transfer-in, no continued enrolment,
        # no deemed contribution years (R24), no R13 limit.
        incoming = platform.incoming_store
        assert incoming.names() == [
            "application_accepted",
            "transfer_request_sent",
            "information_sheet_received",
            balance_event,
            "case_completed",
        ]
        sheet = incoming.one("information_sheet_received")
        assert (sheet.rule, sheet.status) == ("R21", "awaiting_balance")
        assert sheet.detail["path"] == "resettled_retiree_payout"
        assert incoming.one(balance_event).rule == "R21"
        assert incoming.named("continuity_assessed") == []
        assert "R13" not in incoming.decisions()
        assert platform.incoming_records.transfer_ins == []
        assert platform.sent("incoming", "TransferInCompleted") == []
        assert platform.incoming_records.credits == []
