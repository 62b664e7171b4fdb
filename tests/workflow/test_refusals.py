"""Refusals by the outgoing agency (R5-R9): soft ones can be corrected on the same case
within the window, hard ones end the case at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from contracts.documents import TransferRefused, TransferRequested
from domain.limits import CaseLimits
from tests.support.workflow_fakes import (
    FakeOutgoingRecords,
    refusal_reason,
    running_platform,
    transfer_request,
    wait_until,
)
from workflows.clock import china_date, end_of_day
from workflows.incoming.types import CorrectionSignal
from workflows.incoming.workflows import IncomingCaseWorkflow

pytestmark = pytest.mark.workflow

LIMITS = CaseLimits()


async def test_r7_soft_refusal_corrected_within_window_completes(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    records = FakeOutgoingRecords(refusals=[[refusal_reason("CONTRIBUTION_ARREARS")]])
    async with running_platform(time_skipping_env, client, outgoing_records=records) as platform:
        accepted_on = await platform.today()
        handle = await platform.start_case(accepted_on)
        store = platform.incoming_store
        await wait_until(lambda: "transfer_refused_correctable" in store.names())

        [refused] = platform.sent("outgoing", "TransferRefused")
        until = refused.document_as(TransferRefused).correctable_until
        calendar = platform.context.calendar(accepted_on)
        window = LIMITS.soft_refusal_window_days
        assert until == calendar.add_working_days(china_date(refused.sent_at), window).due
        event = store.one("transfer_refused_correctable")
        assert (event.rule, event.detail["codes"]) == ("R7", "CONTRIBUTION_ARREARS")
        view = await platform.view("incoming")
        assert view is not None
        assert view.status == "refused_correctable"
        assert view.awaiting is not None
        assert view.awaiting.by == until

        # The person pays the arrears; the incoming clerk submits the corrected letter.
        await handle.signal(
            IncomingCaseWorkflow.correct, transfer_request(accepted_on, reason="arrears paid")
        )

        assert await platform.results() == ("completed", "completed")
        assert len(records.checks) == 2
        second: TransferRequested = records.checks[1].request
        assert second.correction_of == refused.message_id
        assert store.names()[:6] == [
            "application_accepted",
            "transfer_request_sent",
            "transfer_refused_correctable",
            "correction_submitted",
            "transfer_request_sent",
            "information_sheet_received",
        ]
        assert platform.outgoing_store.names()[:4] == [
            "transfer_request_received",
            "transfer_refused_correctable",
            "corrected_request_received",
            "transferred_out",
        ]
        assert len(platform.incoming_records.credits) == 1


async def test_r7_correction_accepted_by_a_clerk_is_recorded_with_the_clerk(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    records = FakeOutgoingRecords(refusals=[[refusal_reason("CONTRIBUTION_ARREARS")]])
    async with running_platform(time_skipping_env, client, outgoing_records=records) as platform:
        accepted_on = await platform.today()
        handle = await platform.start_case(accepted_on)
        store = platform.incoming_store
        await wait_until(lambda: "transfer_refused_correctable" in store.names())
        await handle.signal(
            IncomingCaseWorkflow.accept_correction,
            CorrectionSignal(
                request=transfer_request(accepted_on, reason="arrears paid"),
                submitted_by="clerk-3",
                reason="receipt checked",
            ),
        )

        assert await platform.results() == ("completed", "completed")
        event = store.one("correction_submitted")
        assert event.rule == "R7"
        assert (event.detail["submitted_by"], event.detail["reason"]) == (
            "clerk-3",
            "receipt checked",
        )
        assert records.checks[1].request.reason == "arrears paid"


async def test_r7_soft_refusal_not_corrected_expires_as_refused(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    records = FakeOutgoingRecords(refusals=[[refusal_reason("CONTRIBUTION_ARREARS")]])
    async with running_platform(time_skipping_env, client, outgoing_records=records) as platform:
        await platform.start_case()

        assert await platform.results() == ("refused", "refused")

        [refused] = platform.sent("outgoing", "TransferRefused")
        until = refused.document_as(TransferRefused).correctable_until
        assert until is not None
        store = platform.incoming_store
        assert store.names() == [
            "application_accepted",
            "transfer_request_sent",
            "transfer_refused_correctable",
            "correction_window_expired",
        ]
        expired = store.one("correction_window_expired")
        assert (expired.status, expired.terminal) == ("refused", True)
        assert end_of_day(until) <= expired.occurred_at < end_of_day(until) + timedelta(hours=1)
        assert platform.outgoing_store.names()[-1] == "correction_window_expired"
        assert records.transfers == []
        assert platform.incoming_records.credits == []
        view = await platform.view("incoming")
        assert view is not None
        assert (view.status, view.awaiting) == ("refused", None)


async def test_r9_hard_refusal_person_unknown_ends_case_at_once(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    records = FakeOutgoingRecords(refusals=[[refusal_reason("PERSON_UNKNOWN")]])
    async with running_platform(time_skipping_env, client, outgoing_records=records) as platform:
        await platform.start_case()

        assert await platform.results() == ("refused", "refused")

        [refused] = platform.sent("outgoing", "TransferRefused")
        assert refused.document_as(TransferRefused).correctable_until is None
        store = platform.incoming_store
        assert store.names() == [
            "application_accepted",
            "transfer_request_sent",
            "transfer_refused",
        ]
        final = store.events[-1]
        assert (final.status, final.rule, final.terminal) == ("refused", "R9", True)
        assert final.detail["codes"] == "PERSON_UNKNOWN"
        # At once: no window, no timer between acceptance and the end of the case.
        assert final.occurred_at - store.events[0].occurred_at < timedelta(minutes=5)
        assert platform.outgoing_store.names() == ["transfer_request_received", "transfer_refused"]
        assert records.transfers == []


async def test_r6_r7_refusal_with_two_rules_is_recorded(
    time_skipping_env: WorkflowEnvironment, client: Client
) -> None:
    records = FakeOutgoingRecords(
        refusals=[[refusal_reason("ENROLMENT_ACTIVE"), refusal_reason("CONTRIBUTION_ARREARS")]]
    )
    async with running_platform(time_skipping_env, client, outgoing_records=records) as platform:
        await platform.start_case()
        await wait_until(
            lambda: "transfer_refused_correctable" in platform.outgoing_store.names(),
            timeout=2.0,
        )
        refused = next(
            e for e in platform.outgoing_store.events if e.event == "transfer_refused_correctable"
        )
        assert refused.rule == "R6"
        assert refused.detail["rules"] == "R6,R7"
        await wait_until(
            lambda: "transfer_refused_correctable" in platform.incoming_store.names(),
            timeout=2.0,
        )
