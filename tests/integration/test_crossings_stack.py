"""Crossing steps on the real stack (both services as processes, real Kafka and Temporal):
two applications for one person at once, a withdrawal that crosses the transfer-out, a
document for a closed case, a case whose step keeps failing, and free text refused where
it is typed."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta

import pytest

from harness.agencies import PEER_REGION, AgencyStack
from harness.invariants import assert_invariants, wait_for_invariants
from tests.integration.test_metrics_and_reconciliation import scrape, value
from tests.support.agencies import PeerAgency, today

pytestmark = pytest.mark.integration


def events(case: dict) -> list[str]:
    return [entry["event"] for entry in case["timeline"]]


async def settle(agencies: AgencyStack, case_id: str, timeout: float = 90) -> None:
    await agencies.wait_case("incoming", case_id, lambda c: c["closed"], timeout)
    await agencies.wait_case("outgoing", case_id, lambda c: c["closed"], timeout)


async def test_r5_two_applications_for_one_person_at_once_transfer_once_and_strand_nothing(
    agencies: AgencyStack,
) -> None:
    people = [agencies.person("620800") for _ in range(3)]
    for person in people:
        await agencies.enrol(person, balance_fen=523_400)
    responses = await asyncio.gather(
        *(
            agencies.submit(agencies.application(person, region))
            for person in people
            for region in ("610100", "110000", "440300")
        )
    )
    applicants = [f"person-{n}" for n in range(len(people)) for _ in range(3)]
    # By who applied (a label, no ID number): two people's masked IDs can look the same.
    applied_by = {
        r.json()["case_id"]: applicant
        for r, applicant in zip(responses, applicants, strict=True)
        if r.status_code in (200, 201)
    }
    accepted = list(applied_by)
    refused_here = [r for r in responses if r.status_code not in (200, 201)]
    for response in refused_here:  # R5 at the incoming agency: its own open cases
        assert response.status_code == 409, response.text
        assert response.json()["reasons"][0]["rule"] == "R5"
    for case_id in accepted:
        await settle(agencies, case_id)
    statuses: dict[str, list[str]] = {}
    for case_id in accepted:
        case = await agencies.case("incoming", case_id)
        statuses.setdefault(applied_by[case_id], []).append(case["status"])
        if case["status"] == "refused":
            refusal = next(e for e in case["timeline"] if e["event"] == "transfer_refused")
            assert refusal["rule"] == "R5"
            assert "ENROLMENT_IN_TRANSFER" in refusal["detail"]["codes"]
    # One transfer per person, whichever application won.
    assert all(s.count("completed") == 1 for s in statuses.values()), statuses
    assert len(statuses) == len(people)
    assert_invariants(agencies, accepted, http_rejections=refused_here, strict=True)


async def test_r16_withdrawal_crossing_the_transfer_out_goes_on_to_the_credit(
    agencies: AgencyStack,
) -> None:
    """The issue's first finding: the incoming region briefly not connected (at the
    outgoing side), the sheet and remittance wait, the person withdraws. The outgoing
    account is already debited, so the withdrawal is refused as too late and the case
    is credited; nothing is parked."""
    person = agencies.person("350100")
    await agencies.enrol(person, balance_fen=77_700)
    await agencies.post(
        "outgoing", "/v1/admin/regions/440300/connectivity", {"connected": False}, method="PUT"
    )
    try:
        # R19 needs a bank account to pay out instead; without one the remittance waits.
        case_id = await agencies.submit_ok(agencies.application(person, "440300"))
        deadline = asyncio.get_running_loop().time() + 60
        while not agencies.query(
            "outgoing",
            "select 1 from ledger where case_id=? and leg='debit_outgoing'",
            case_id,
        ):
            assert asyncio.get_running_loop().time() < deadline, "no debit within 60 s"
            await asyncio.sleep(0.3)
        response = await agencies.post(
            "incoming", f"/v1/cases/{case_id}/withdraw", {"reason": "changed my mind"}
        )
        assert response.status_code == 202, response.text
        await agencies.wait_status("incoming", case_id, "withdrawal_requested", timeout=60)
    finally:
        await agencies.post(
            "outgoing", "/v1/admin/regions/440300/connectivity", {"connected": True}, method="PUT"
        )
    incoming = await agencies.wait_status("incoming", case_id, "completed", timeout=90)
    assert "withdrawal_refused" in events(incoming)
    outgoing = await agencies.wait_status("outgoing", case_id, "completed", timeout=60)
    assert "withdrawal_refused_too_late" in events(outgoing)
    assert "application_withdrawn" not in events(incoming)
    again = await agencies.post("incoming", f"/v1/cases/{case_id}/withdraw", {"reason": "again"})
    assert again.status_code == 409
    await wait_for_invariants(agencies, [case_id], strict=True)


async def test_r16_withdrawal_before_transfer_out_is_answered_and_frees_the_enrolment(
    agencies: AgencyStack,
) -> None:
    person = agencies.person("620800")
    await agencies.enrol(person, balance_fen=1_000)
    await agencies.post(
        "incoming", "/v1/admin/regions/620800/connectivity", {"connected": False}, method="PUT"
    )
    try:
        case_id = await agencies.submit_ok(agencies.application(person, "610100"))
        await agencies.wait_status("incoming", case_id, "waiting_region_connection")
        response = await agencies.post(
            "incoming", f"/v1/cases/{case_id}/withdraw", {"reason": "stays"}
        )
        assert response.status_code == 202
        # Nothing was sent yet: it takes effect at once, whatever the region does.
        await agencies.wait_status("incoming", case_id, "withdrawn", timeout=30)
    finally:
        await agencies.post(
            "incoming", "/v1/admin/regions/620800/connectivity", {"connected": True}, method="PUT"
        )
    # The person applies again and the enrolment is transferred out by the new case.
    second = await agencies.submit_ok(agencies.application(person, "610100"))
    await agencies.wait_status("incoming", second, "completed", timeout=90)
    # The outgoing agency closes once the transfer-in confirmation reaches it, a moment
    # after the incoming side completes: the invariants are waited for, not sampled.
    await wait_for_invariants(agencies, [case_id, second], strict=True)


async def test_a_case_whose_step_keeps_failing_is_reported_stuck_and_cleared_when_it_moves(
    agencies: AgencyStack,
) -> None:
    """No silent stuck case: the incoming agency's local system refuses transfer-in
    (its table is away); within seconds here (minutes by default) the case is marked
    stuck with the step and error type, counted in medtransfer_stuck_cases and listed
    for the operations page; when the table is back the case completes and is cleared."""
    database = agencies.root / "data" / "incoming-agency.db"

    def rename(old: str, new: str) -> None:
        with sqlite3.connect(database, timeout=30) as connection:
            connection.execute(f"ALTER TABLE {old} RENAME TO {new}")

    person = agencies.person("620800")
    await agencies.enrol(person, balance_fen=4_200)
    rename("transfer_in", "transfer_in_away")
    try:
        case_id = await agencies.submit_ok(agencies.application(person, "610100"))
        stuck = await agencies.wait_case(
            "incoming", case_id, lambda c: c.get("stuck_reason") is not None, timeout=90
        )
        assert stuck["stuck_reason"].startswith("ACTIVITY_FAILING:complete_transfer_in:")
        assert "stuck_detected" in events(stuck)
        metrics = await scrape(agencies.incoming_url)
        assert value(metrics, "medtransfer_stuck_cases", side="incoming") >= 1
    finally:
        rename("transfer_in_away", "transfer_in")
    done = await agencies.wait_case(
        "incoming",
        case_id,
        lambda c: c["status"] == "completed" and c.get("stuck_reason") is None,
        timeout=120,
    )
    assert "stuck_cleared" in events(done)


async def test_free_text_with_personal_data_and_impossible_dates_are_refused_at_the_api(
    agencies: AgencyStack,
) -> None:
    person = agencies.person("620800")
    leaky = await agencies.submit(
        agencies.application(person, "610100", reason=f"for {person.id_number}")
    )
    assert leaky.status_code == 422, leaky.text
    assert person.id_number not in leaky.text
    future = await agencies.submit(
        agencies.application(person, "610100", applied_on=str(today() + timedelta(days=3)))
    )
    assert future.status_code == 422
    assert future.json()["reasons"][0]["code"] == "APPLIED_ON_IN_FUTURE"
    old = await agencies.submit(
        agencies.application(person, "610100", applied_on=str(today() - timedelta(days=800)))
    )
    assert old.json()["reasons"][0]["code"] == "APPLIED_ON_TOO_OLD"
    await agencies.enrol(person)
    case_id = await agencies.submit_ok(agencies.application(person, "610100"))
    long_reason = await agencies.post(
        "incoming", f"/v1/cases/{case_id}/actions/cancel", {"reason": "x" * 201}
    )
    assert long_reason.status_code == 422
    phone = await agencies.post(
        "incoming", f"/v1/cases/{case_id}/actions/cancel", {"reason": "call 13812345678"}
    )
    assert phone.status_code == 422
    assert "13812345678" not in phone.text
    await agencies.wait_status("incoming", case_id, "completed", timeout=90)


async def test_a_document_is_sent_again_until_its_receipt_and_escalated_without_one(
    agencies: AgencyStack,
) -> None:
    """Transient stays transient: the outgoing agency (the test, PEER_REGION) takes the
    contact letter but sends no receipt (say it was dead-lettered for a cause that
    cleared): the incoming agency sends it again, the same message id, and after four
    sends (test settings) opens NO_RECEIPT on the case; the receipt stops the resending."""
    async with PeerAgency(agencies, auto_receipts=False) as peer:
        person = agencies.person(PEER_REGION)
        case_id = await agencies.submit_ok(agencies.application(person, "610100"))
        first = await peer.expect(case_id, "TransferRequested")
        case = await agencies.wait_case(
            "incoming", case_id, lambda c: c.get("exception_code") == "NO_RECEIPT", timeout=90
        )
        assert "document_not_received" in events(case)
        await peer.drain(1.0)
        copies = [e for e in peer.received if e.message_id == first.message_id]
        assert len(copies) >= 2  # sent again, the same message id and signature
        assert {e.signature for e in copies} == {first.signature}
        await peer.acknowledge(first)
        await asyncio.sleep(1.0)
        sent = agencies.query(
            "incoming",
            "select attempts, receipt_at is not null from sent_document where message_id=?",
            first.message_id,
        )
        attempts, received = sent[0]
        assert received
        await asyncio.sleep(6.0)  # no further send once the receipt is in
        assert agencies.query(
            "incoming", "select attempts from sent_document where message_id=?", first.message_id
        ) == [(attempts,)]
