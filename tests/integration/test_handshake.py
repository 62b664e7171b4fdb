"""The handshake end to end: both services as processes on real Kafka and Temporal.

Each test names the rule it proves. People are fresh per test, so tests share the stack
but no state.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from contracts.audit_trust import archived_problem, expected_prev_hash
from contracts.documents import AuditRecord
from contracts.keyring import KeyRegistrySource
from harness.agencies import AgencyStack

pytestmark = pytest.mark.integration


def timeline_events(case: dict) -> list[str]:
    return [entry["event"] for entry in case["timeline"]]


async def test_r18_cross_province_balance_follows_the_person(agencies: AgencyStack) -> None:
    person = agencies.person("620800")
    await agencies.enrol(person, balance_fen=523_400)
    case_id = await agencies.submit_ok(agencies.application(person, "610100"))

    incoming = await agencies.wait_status("incoming", case_id, "completed")
    outgoing = await agencies.wait_status("outgoing", case_id, "completed")

    assert incoming["closed"]
    assert outgoing["closed"]
    assert "balance_credited" in timeline_events(incoming)
    sheet = next(e for e in incoming["timeline"] if e["event"] == "information_sheet_received")
    assert sheet["detail"]["balance_rule"] == "R18"
    assert sheet["detail"]["signature"] == "verified"
    assert set(incoming["deadlines"]) >= {"transfer_out_due", "transfer_in_due", "total_due"}
    # R16: the outgoing account is zero and the debit has exactly one matching credit.
    debit = agencies.query(
        "outgoing",
        "select amount_fen from ledger where case_id=? and leg='debit_outgoing'",
        case_id,
    )
    credit = agencies.query(
        "incoming",
        "select amount_fen from ledger where case_id=? and leg='credit_incoming'",
        case_id,
    )
    assert debit == credit == [(523_400,)]
    balance = agencies.query(
        "outgoing", "select balance_fen, status from enrolment where id_number=?", person.id_number
    )
    assert balance == [(0, "transferred_out")]
    # R24: the transferred months count at the incoming region.
    months = agencies.query(
        "incoming", "select deemed_contribution_months from transfer_in where case_id=?", case_id
    )
    assert months == [(120,)]
    # Every document was acknowledged by its receiver with a signed receipt.
    receipts = agencies.query(
        "incoming", "select count(*) from inbox where case_id=? and type='Receipt'", case_id
    )
    assert receipts[0][0] >= 2
    # Every state change of both sides is on the audit topic, in sequence.
    expected = len(incoming["timeline"]) + len(outgoing["timeline"])
    records = await audit_records(agencies, case_id, expected)
    for side, case in (("incoming", incoming), ("outgoing", outgoing)):
        sequences = sorted(r.sequence for r in records if r.side == side)
        assert sequences == [e["sequence"] for e in case["timeline"]], side
    # Each signed by its emitting agency with its region's registered key, and linked to
    # that agency's previous record (docs/audit-trust.md): public keys alone check them.
    registry_file = Path(agencies.env["MEDTRANSFER_KEY_REGISTRY_FILE"])
    platform_public = (registry_file.parent / "platform.pub").read_text(encoding="ascii")
    keys = KeyRegistrySource(registry_file, platform_public.strip())
    regions = {"incoming": "610100", "outgoing": "620800"}
    by_key = {(r.side, r.sequence): r for r in records}
    now = datetime.now(UTC)
    for (side, sequence), audit in sorted(by_key.items()):
        assert audit.region == regions[side], (side, sequence)
        assert archived_problem(audit, keys, now) is None, (side, sequence)
        assert audit.prev_hash == expected_prev_hash(by_key.get((side, sequence - 1)), sequence)


async def audit_records(agencies: AgencyStack, case_id: str, expected: int) -> list[AuditRecord]:
    consumer = AIOKafkaConsumer(
        agencies.topics.audit,
        bootstrap_servers=agencies.kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        enable_auto_commit=False,
    )
    await consumer.start()
    found: dict[tuple[str, int], AuditRecord] = {}
    try:
        for _ in range(60):
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    audit = AuditRecord.model_validate_json(record.value or b"{}")
                    if audit.case_id == case_id:
                        found[(audit.side, audit.sequence)] = audit
            if len(found) >= expected and not batch:
                break
    finally:
        await consumer.stop()
    return list(found.values())


async def test_r11_duplicate_application_returns_the_open_case(agencies: AgencyStack) -> None:
    person = agencies.person("620800")
    await agencies.enrol(person, status="active")  # refused softly, so the case stays open
    application = agencies.application(person, "610100")
    first = await agencies.submit(application)
    second = await agencies.submit(application)
    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json()["case_id"] == first.json()["case_id"]
    assert second.json()["duplicate_of_open_case"] is True


@pytest.mark.parametrize(
    ("overrides", "code", "rule", "soft"),
    [
        ({"status": "active", "suspended_on": None}, "ENROLMENT_ACTIVE", "R6", True),
        ({"arrears_fen": 36_000}, "CONTRIBUTION_ARREARS", "R7", True),
        ({"account_status": "frozen"}, "ACCOUNT_FROZEN", "R8", True),
        ({"also_active_in": "350100"}, "DOUBLE_ENROLMENT", "R5", True),
    ],
)
async def test_r5_to_r8_refusal_reasons(
    agencies: AgencyStack, overrides: dict, code: str, rule: str, soft: bool
) -> None:
    person = agencies.person("620800")
    await agencies.enrol(person, **overrides)
    case_id = await agencies.submit_ok(agencies.application(person, "610100"))
    case = await agencies.wait_status(
        "incoming", case_id, "refused_correctable" if soft else "refused"
    )
    refusal = next(e for e in case["timeline"] if e["event"].startswith("transfer_refused"))
    assert refusal["detail"]["codes"] == code
    assert refusal["rule"] == rule
    assert case["awaiting"]["from_party"] == "applicant"
    assert agencies.query("outgoing", "select count(*) from ledger where case_id=?", case_id) == [
        (0,)
    ]


async def test_r9_unknown_person_is_refused_hard(agencies: AgencyStack) -> None:
    person = agencies.person("620800")  # never enrolled at the outgoing agency
    case_id = await agencies.submit_ok(agencies.application(person, "610100"))
    case = await agencies.wait_status("incoming", case_id, "refused")
    assert case["closed"]
    refusal = next(e for e in case["timeline"] if e["event"] == "transfer_refused")
    assert (refusal["detail"]["codes"], refusal["rule"]) == ("PERSON_UNKNOWN", "R9")


async def test_r9_identity_mismatch_is_refused_hard(agencies: AgencyStack) -> None:
    person = agencies.person("620800")
    await agencies.enrol(person)
    application = agencies.application(person, "610100")
    application["person"]["name"] = person.name + "某"
    case_id = await agencies.submit_ok(application)
    case = await agencies.wait_status("incoming", case_id, "refused")
    refusal = next(e for e in case["timeline"] if e["event"] == "transfer_refused")
    assert (refusal["detail"]["codes"], refusal["rule"]) == ("IDENTITY_MISMATCH", "R9")


async def test_r7_soft_refusal_corrected_in_time_completes(agencies: AgencyStack) -> None:
    person = agencies.person("620800")
    await agencies.enrol(person, arrears_fen=12_000)
    application = agencies.application(person, "610100")
    case_id = await agencies.submit_ok(application)
    case = await agencies.wait_status("incoming", case_id, "refused_correctable")
    assert case["awaiting"]["by"]  # the correction window, in working days
    # The person pays the arrears; the agency corrects the application on the same case.
    await agencies.enrol(person, arrears_fen=0)
    response = await agencies.post("incoming", f"/v1/cases/{case_id}/correction", application)
    assert response.status_code == 202, response.text
    case = await agencies.wait_status("incoming", case_id, "completed")
    assert "correction_submitted" in timeline_events(case)
    outgoing = await agencies.wait_status("outgoing", case_id, "completed")
    assert "corrected_request_received" in timeline_events(outgoing)


async def test_r1_same_region_is_refused_with_a_reason(agencies: AgencyStack) -> None:
    person = agencies.person("620800")
    response = await agencies.submit(agencies.application(person, "620800"))
    assert response.status_code == 422
    reasons = response.json()["reasons"]
    assert [(r["code"], r["rule"]) for r in reasons] == [("SAME_REGION", "R1")]
    assert reasons[0]["message_zh"]
    assert reasons[0]["message_en"]


async def test_r3_resident_in_the_year_of_moving_is_refused(agencies: AgencyStack) -> None:
    person = agencies.person("620800")
    response = await agencies.submit(
        agencies.application(
            person,
            "610100",
            from_scheme="resident",
            to_scheme="resident",
            left_outgoing_on="2026-03-01",
            incoming_enrolled_since="2026-06-01",
        )
    )
    assert response.status_code == 422
    assert [r["code"] for r in response.json()["reasons"]] == ["RESIDENT_TOO_EARLY"]


async def test_r20_guangdong_intra_province_balance_stays_usable(agencies: AgencyStack) -> None:
    person = agencies.person("441900")
    await agencies.enrol(person, balance_fen=880_000)
    case_id = await agencies.submit_ok(agencies.application(person, "440300"))
    case = await agencies.wait_status("incoming", case_id, "completed")
    notice = next(e for e in case["timeline"] if e["event"] == "balance_not_transferred")
    assert notice["rule"] == "R20"
    assert agencies.query("outgoing", "select count(*) from ledger where case_id=?", case_id) == [
        (0,)
    ]
    # Not moved, so not cleared: the balance stays usable across Guangdong's cities.
    kept = agencies.query(
        "outgoing", "select balance_fen from enrolment where id_number=?", person.id_number
    )
    assert kept == [(880_000,)]


BANK = {
    "bank_name": "中国工商银行",
    "account_number": "6222020200112233445",
    "account_holder": "本人",
}


@pytest.mark.parametrize(
    ("retired", "holder", "code"),
    [
        (False, None, "RETIREE_NOT_ON_RECORD"),  # R21: the record says who is retired
        (True, "王五", "BANK_HOLDER_MISMATCH"),  # R19/R21: only the person's own account
    ],
)
async def test_r21_r19_retiree_status_and_account_holder_come_from_the_record(
    agencies: AgencyStack, retired: bool, holder: str | None, code: str
) -> None:
    person = agencies.person("110000")
    await agencies.enrol(person, balance_fen=2_000_000, retired=retired)
    case_id = await agencies.submit_ok(
        agencies.application(
            person,
            "440300",
            resettled_retiree=True,
            bank_account=BANK | {"account_holder": holder or person.name},
            incoming_enrolled_since=None,
        )
    )
    case = await agencies.wait_status("incoming", case_id, "refused_correctable")
    refusal = next(e for e in case["timeline"] if e["event"] == "transfer_refused_correctable")
    assert code in refusal["detail"]["codes"]
    assert agencies.query("outgoing", "select count(*) from ledger where case_id=?", case_id) == [
        (0,)
    ]


async def test_r21_resettled_retiree_balance_paid_to_own_bank_account(
    agencies: AgencyStack,
) -> None:
    person = agencies.person("110000")
    await agencies.enrol(person, balance_fen=2_000_000, retired=True)
    case_id = await agencies.submit_ok(
        agencies.application(
            person,
            "440300",
            resettled_retiree=True,
            bank_account=BANK | {"account_holder": person.name},
            incoming_enrolled_since=None,
        )
    )
    case = await agencies.wait_status("incoming", case_id, "completed")
    paid = next(e for e in case["timeline"] if e["event"] == "balance_paid_to_bank")
    assert paid["rule"] == "R21"
    assert paid["detail"]["account_last4"] == "3445"
    payout = agencies.query(
        "outgoing", "select amount_fen, rule from bank_payout where case_id=?", case_id
    )
    assert payout == [(2_000_000, "R21")]
    assert agencies.query("incoming", "select count(*) from ledger where case_id=?", case_id) == [
        (0,)
    ]


async def test_r22_employee_to_resident_balance_paid_to_bank(agencies: AgencyStack) -> None:
    person = agencies.person("620800")
    await agencies.enrol(person, balance_fen=310_000)
    case_id = await agencies.submit_ok(
        agencies.application(
            person,
            "350100",
            to_scheme="resident",
            bank_account=BANK | {"account_holder": person.name},
        )
    )
    case = await agencies.wait_status("incoming", case_id, "completed")
    paid = next(e for e in case["timeline"] if e["event"] == "balance_paid_to_bank")
    assert paid["rule"] == "R22"
    debit = agencies.query(
        "outgoing",
        "select amount_fen from ledger where case_id=? and leg='debit_outgoing'",
        case_id,
    )
    payout = agencies.query(
        "outgoing", "select amount_fen from ledger where case_id=? and leg='bank_payout'", case_id
    )
    assert debit == payout == [(310_000,)]


async def test_r23_region_not_connected_waits_then_goes_live(agencies: AgencyStack) -> None:
    person = agencies.person("654300")  # Altay: in the registry, not yet connected
    await agencies.enrol(person, balance_fen=100_000)
    case_id = await agencies.submit_ok(agencies.application(person, "610100"))
    case = await agencies.wait_status("incoming", case_id, "waiting_region_connection")
    assert "654300" in case["awaiting"]["what"]
    assert agencies.query(
        "outgoing", "select count(*) from case_record where case_id=?", case_id
    ) == [(0,)]

    response = await agencies.post(
        "incoming", "/v1/admin/regions/654300/connectivity", {"connected": True}, method="PUT"
    )
    assert response.status_code == 200
    case = await agencies.wait_status("incoming", case_id, "completed")
    assert "region_connected" in timeline_events(case)


async def test_r19_bank_fallback_when_incoming_region_cannot_receive(agencies: AgencyStack) -> None:
    person = agencies.person("620800")
    await agencies.enrol(person, balance_fen=450_000)
    # The outgoing agency sees Shanghai as not connected: the balance cannot be remitted.
    response = await agencies.post(
        "outgoing", "/v1/admin/regions/310000/connectivity", {"connected": False}, method="PUT"
    )
    assert response.status_code == 200
    try:
        case_id = await agencies.submit_ok(
            agencies.application(
                person, "310000", bank_account=BANK | {"account_holder": person.name}
            )
        )
        await agencies.wait_status("outgoing", case_id, "waiting_region_connection")
    finally:
        await agencies.post(
            "outgoing", "/v1/admin/regions/310000/connectivity", {"connected": True}, method="PUT"
        )
    case = await agencies.wait_status("incoming", case_id, "completed")
    paid = next(e for e in case["timeline"] if e["event"] == "balance_paid_to_bank")
    assert paid["rule"] == "R19"
    assert agencies.query(
        "outgoing", "select amount_fen, rule from bank_payout where case_id=?", case_id
    ) == [(450_000, "R19")]
