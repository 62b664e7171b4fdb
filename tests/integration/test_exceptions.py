"""Exceptions, redeliveries and hostile input, with the test playing the outgoing agency
of PEER_REGION over the real topics (documents signed with that region's real key)."""

from __future__ import annotations

import asyncio
import re
from datetime import date

import pytest
from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from contracts.documents import (
    BalanceRemitted,
    WithdrawalRequested,
)
from contracts.envelope import Envelope
from contracts.local_trust import local_key_id
from contracts.signing import generate_keypair, load_private_key, sign_envelope
from harness.agencies import PEER_REGION, AgencyStack
from tests.support.agencies import PeerAgency, sheet_document
from workflows.outgoing.workflows import stop_answer

pytestmark = pytest.mark.integration


async def peer_case(agencies: AgencyStack, peer: PeerAgency) -> tuple[str, str, str]:
    person = agencies.person(PEER_REGION)
    case_id = await agencies.submit_ok(agencies.application(person, "610100"))
    request = await peer.expect(case_id, "TransferRequested")
    assert request.from_region == "610100"
    return case_id, person.id_number, person.name


async def test_r15_amount_mismatch_goes_to_a_clerk_never_credited_automatically(
    agencies: AgencyStack,
    peer: PeerAgency,
) -> None:
    case_id, id_number, name = await peer_case(agencies, peer)
    await peer.send(
        peer.envelope(sheet_document(id_number, name, 100_000), case_id, "sheet", "610100")
    )
    await peer.send(
        peer.envelope(
            BalanceRemitted(
                remittance_id=f"{case_id}-main", amount_fen=90_000, remitted_on=date.today()
            ),
            case_id,
            "remit",
            "610100",
        )
    )

    case = await agencies.wait_status("incoming", case_id, "balance_mismatch")
    assert case["escalated"] is True
    assert case["awaiting"]["from_party"] == "incoming agency clerk"
    mismatch = await peer.expect(case_id, "BalanceMismatch")
    assert mismatch.payload["expected_fen"] == 100_000
    assert mismatch.payload["received_fen"] == 90_000
    assert agencies.query("incoming", "select count(*) from ledger where case_id=?", case_id) == [
        (0,)
    ]

    response = await agencies.post(
        "incoming",
        f"/v1/cases/{case_id}/mismatch-resolution",
        {
            "decision": "credit_received",
            "clerk": "clerk-07",
            "note": "short remittance confirmed by phone",
        },
    )
    assert response.status_code == 202, response.text
    await agencies.wait_status("incoming", case_id, "completed")
    await peer.expect(case_id, "BalanceCredited")
    assert agencies.query("incoming", "select amount_fen from ledger where case_id=?", case_id) == [
        (90_000,)
    ]


async def test_withdrawal_before_transfer_out(agencies: AgencyStack, peer: PeerAgency) -> None:
    case_id, _, _ = await peer_case(agencies, peer)
    response = await agencies.post("incoming", f"/v1/cases/{case_id}/withdraw", {"reason": "stays"})
    assert response.status_code == 202, response.text
    # A request the outgoing agency (the peer) answers; the case stays open until then.
    request = await peer.expect(case_id, "WithdrawalRequested")
    assert (request.payload["kind"], request.payload["reason"]) == ("withdrawal", "stays")
    pending = await agencies.wait_status("incoming", case_id, "withdrawal_requested")
    assert not pending["closed"]
    again = await agencies.post("incoming", f"/v1/cases/{case_id}/withdraw", {"reason": "again"})
    assert again.json()["reasons"][0]["code"] == "STOP_ALREADY_REQUESTED"
    answer = stop_answer(request.document_as(WithdrawalRequested), transferred_out=False)
    await peer.send(peer.envelope(answer, case_id, "withdrawal-answer", "610100"))
    case = await agencies.wait_status("incoming", case_id, "withdrawn")
    assert case["closed"]
    late = await agencies.post("incoming", f"/v1/cases/{case_id}/withdraw", {"reason": "again"})
    assert late.status_code == 409
    assert late.json()["reasons"][0]["code"] == "TOO_LATE_TO_WITHDRAW"


async def test_a_money_document_for_a_closed_case_opens_a_clerk_exception(
    agencies: AgencyStack, peer: PeerAgency
) -> None:
    """Never a silent park: a sheet arriving after the case was withdrawn (a peer that
    accepted the withdrawal and sent the sheet anyway) is held with an alert."""
    case_id, id_number, name = await peer_case(agencies, peer)
    await agencies.post("incoming", f"/v1/cases/{case_id}/withdraw", {"reason": "stays"})
    request = await peer.expect(case_id, "WithdrawalRequested")
    answer = stop_answer(request.document_as(WithdrawalRequested), transferred_out=False)
    await peer.send(peer.envelope(answer, case_id, "withdrawal-answer", "610100"))
    await agencies.wait_status("incoming", case_id, "withdrawn")
    sheet = peer.envelope(sheet_document(id_number, name, 70_000), case_id, "sheet", "610100")
    await peer.send(sheet)
    case = await agencies.wait_case(
        "incoming", case_id, lambda c: c.get("exception_code") == "DOCUMENT_AFTER_CLOSE"
    )
    held = next(e for e in case["timeline"] if e["event"] == "document_after_close")
    assert held["detail"]["type"] == "TransferOutCompleted"
    assert case["status"] == "withdrawn"


async def test_duplicate_delivery_of_every_document_changes_nothing(
    agencies: AgencyStack,
    peer: PeerAgency,
) -> None:
    case_id, id_number, name = await peer_case(agencies, peer)
    sheet = peer.envelope(sheet_document(id_number, name, 70_000), case_id, "sheet", "610100")
    remit = peer.envelope(
        BalanceRemitted(
            remittance_id=f"{case_id}-main", amount_fen=70_000, remitted_on=date.today()
        ),
        case_id,
        "remit",
        "610100",
    )
    for envelope in (sheet, sheet, remit, remit):
        await peer.send(envelope)
    await agencies.wait_status("incoming", case_id, "completed")
    await peer.send(remit)  # after the close, too
    await peer.send(sheet)

    # A real case through both services, then every document of it delivered again.
    person = agencies.person("620800")
    await agencies.enrol(person, balance_fen=41_000)
    real_case = await agencies.submit_ok(agencies.application(person, "610100"))
    await agencies.wait_status("incoming", real_case, "completed")
    await agencies.wait_status("outgoing", real_case, "completed")
    documents = await all_documents_of(agencies, real_case)
    assert {e.type for e in documents} >= {
        "TransferRequested",
        "TransferOutCompleted",
        "BalanceRemitted",
        "TransferInCompleted",
        "BalanceCredited",
        "Receipt",
    }
    for envelope in documents:
        await peer.send(
            envelope,
            topic=agencies.topics.to_outgoing
            if envelope.to_region == "620800"
            else agencies.topics.to_incoming,
        )
    await asyncio.sleep(3)  # give the consumers time to (not) act on the redeliveries

    for case in (case_id, real_case):
        credits = agencies.query("incoming", "select count(*) from ledger where case_id=?", case)
        assert credits == [(1,)], case
    assert agencies.query("outgoing", "select count(*) from ledger where case_id=?", real_case) == [
        (1,)
    ]
    assert agencies.query(
        "incoming",
        "select count(*) from case_record where open_key is not null and case_id=?",
        real_case,
    ) == [(0,)]
    incoming = await agencies.case("incoming", real_case)
    assert incoming["status"] == "completed"
    assert [e["event"] for e in incoming["timeline"]].count("balance_credited") == 1


async def all_documents_of(agencies: AgencyStack, case_id: str) -> list[Envelope]:
    consumer = AIOKafkaConsumer(
        agencies.topics.to_incoming,
        agencies.topics.to_outgoing,
        bootstrap_servers=agencies.kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[Envelope] = []
    try:
        quiet = 0
        while quiet < 3:
            batch = await consumer.getmany(timeout_ms=700)
            quiet = 0 if batch else quiet + 1
            for records in batch.values():
                for record in records:
                    try:
                        envelope = Envelope.model_validate_json(record.value or b"{}")
                    except ValidationError:
                        continue  # a hostile record another test sent
                    if envelope.case_id == case_id:
                        found.append(envelope)
    finally:
        await consumer.stop()
    return found


async def test_forged_document_is_dead_lettered_not_acted_on(
    agencies: AgencyStack,
    peer: PeerAgency,
) -> None:
    case_id, id_number, name = await peer_case(agencies, peer)
    forger_key = load_private_key(generate_keypair()[0])
    unsigned = Envelope.wrap(
        sheet_document(id_number, name, 1),
        case_id=case_id,
        step="sheet",
        from_region=PEER_REGION,
        to_region="610100",
        sent_at=peer.envelope(sheet_document(id_number, name, 1), case_id, "x", "610100").sent_at,
    )
    await peer.send(sign_envelope(unsigned, forger_key, key_id=local_key_id(PEER_REGION)))
    await peer.send_raw(b"{not json", key=case_id.encode())
    await peer.send_raw(b'{"message_id": "x"}', key=case_id.encode())

    for _ in range(100):
        reasons = [r[0] for r in agencies.query("incoming", "select reason from dead_letter")]
        if sum(r.startswith(("SIGNATURE_INVALID", "INVALID_ENVELOPE")) for r in reasons) >= 3:
            break
        await asyncio.sleep(0.3)
    assert any(r.startswith("SIGNATURE_INVALID") for r in reasons), reasons
    assert sum(r.startswith("INVALID_ENVELOPE") for r in reasons) >= 2, reasons
    case = await agencies.case("incoming", case_id)
    assert case["status"] == "awaiting_transfer_out"  # the forged sheet was not acted on


async def test_residual_remittance_after_transfer_out_is_credited_once(
    agencies: AgencyStack,
) -> None:
    person = agencies.person("620800")
    await agencies.enrol(person, balance_fen=60_000)
    case_id = await agencies.submit_ok(agencies.application(person, "610100"))
    await agencies.wait_status("outgoing", case_id, "completed")
    body = {"contribution_id": "2026-11", "amount_fen": 2_500}
    first = await agencies.post("outgoing", f"/v1/cases/{case_id}/late-contributions", body)
    second = await agencies.post("outgoing", f"/v1/cases/{case_id}/late-contributions", body)
    assert first.status_code == second.status_code == 202
    residual_id = first.json()["remittance_id"]

    for _ in range(100):
        rows = agencies.query(
            "incoming", "select amount_fen from ledger where remittance_id=?", residual_id
        )
        if rows:
            break
        await asyncio.sleep(0.3)
    assert rows == [(2_500,)]
    case = await agencies.wait_case(
        "outgoing",
        case_id,
        lambda c: "residual_credit_confirmed" in [e["event"] for e in c["timeline"]],
    )
    assert case["status"] == "completed"
    debits = agencies.query(
        "outgoing",
        "select amount_fen from ledger where case_id=? and "
        "leg='debit_outgoing' order by amount_fen",
        case_id,
    )
    assert debits == [(2_500,), (60_000,)]


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (
            lambda a: a["person"].update(
                id_number=a["person"]["id_number"][:-1] + "0"
                if a["person"]["id_number"][-1] != "0"
                else a["person"]["id_number"][:-1] + "1"
            ),
            "INVALID_ID_NUMBER",
        ),
        (lambda a: a.update(to_region="999999"), "UNKNOWN_REGION"),
        (
            lambda a: a.update(
                bank_account={
                    "bank_name": "x",
                    "account_number": "12345678901x",
                    "account_holder": "本人",
                }
            ),
            "INVALID_BANK_ACCOUNT",
        ),
        (lambda a: a.pop("to_scheme"), "INVALID_FIELD"),
        (lambda a: a.update(from_scheme="pension"), "INVALID_FIELD"),
        (lambda a: a.update(to_region="61010"), "INVALID_FIELD"),
    ],
)
async def test_bad_applications_get_a_4xx_with_a_reason_and_no_personal_data(
    agencies: AgencyStack,
    mutate,
    code: str,
) -> None:
    person = agencies.person("620800")
    application = agencies.application(person, "610100")
    mutate(application)
    response = await agencies.submit(application)
    assert 400 <= response.status_code < 500, response.text
    assert code in [r["code"] for r in response.json()["reasons"]]
    assert person.id_number[6:14] not in response.text
    assert person.name not in response.text


async def test_logs_name_no_person_in_clear_text(agencies: AgencyStack) -> None:
    """Runs last in this module: every log line of every process, against every person the
    integration tests used."""
    person = agencies.person("620800")
    await agencies.enrol(person)
    await agencies.submit_ok(
        agencies.application(
            person,
            "610100",
            bank_account={
                "bank_name": "中国银行",
                "account_number": "6216610200016587010",
                "account_holder": person.name,
            },
        )
    )
    await asyncio.sleep(2)
    text = "\n".join(p.read_text(errors="replace") for p in agencies.log_dir.glob("*.log"))
    assert text, "no logs written"
    for someone in agencies.persons:
        assert someone.id_number not in text
        assert someone.name not in text
    assert "6216610200016587010" not in text
    assert "6222020200112233445" not in text
    assert not re.search(r"(?<!\d)\d{17}[\dX](?!\d)", text)
