"""Temporal is no side door (issue 13 item 4): a remittance handed to a case workflow
straight through Temporal, not through the verified Kafka path, credits nothing, even
from someone who holds the deployment's codec key; without the key the workflow cannot
even read it."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from contracts.documents import BalanceRemitted
from contracts.envelope import Envelope
from harness.agencies import PEER_REGION, AgencyStack
from services.common.codec import EncryptionCodec, encrypted_converter, local_codec_keys
from tests.support.agencies import PeerAgency, sheet_document
from workflows.incoming.workflows import incoming_workflow_id

pytestmark = pytest.mark.integration


async def test_a_remittance_signalled_into_temporal_directly_credits_nothing(
    agencies: AgencyStack, peer: PeerAgency
) -> None:
    person = agencies.person(PEER_REGION)
    case_id = await agencies.submit_ok(agencies.application(person, "610100"))
    await peer.expect(case_id, "TransferRequested")
    await peer.send(
        peer.envelope(
            sheet_document(person.id_number, person.name, 100_000), case_id, "sheet", "610100"
        )
    )
    await agencies.wait_status("incoming", case_id, "awaiting_balance")

    remittance = peer.envelope(
        BalanceRemitted(
            remittance_id=f"{case_id}-main", amount_fen=100_000, remitted_on=date.today()
        ),
        case_id,
        "remit",
        "610100",
    )
    # An insider with Temporal access and the codec key: a validly signed document, but not
    # one the inbound path verified and recorded.
    keys, current = local_codec_keys(agencies.keys_dir)
    namespace = agencies.env.get("MEDTRANSFER_TEMPORAL_NAMESPACE", "default")
    target = agencies.env["MEDTRANSFER_TEMPORAL_TARGET"]
    insider = await Client.connect(
        target,
        namespace=namespace,
        data_converter=encrypted_converter(EncryptionCodec(keys, current)),
    )
    await insider.get_workflow_handle(incoming_workflow_id(case_id)).signal("document", remittance)
    case = await agencies.wait_case("incoming", case_id, lambda c: c["escalated"], timeout=60)
    assert case["status"] != "completed"
    assert agencies.query(
        "incoming",
        "SELECT count(*) FROM ledger WHERE case_id = ? AND leg = 'credit_incoming'",
        case_id,
    ) == [(0,)]

    # Without the codec key the signal is not even readable by the workflow (and nothing
    # moves); Temporal holds only ciphertext.
    outsider = await Client.connect(
        target, namespace=namespace, data_converter=pydantic_data_converter
    )
    forged = Envelope.model_validate(
        remittance.model_dump() | {"message_id": f"{case_id}/BalanceRemitted/x"}
    )
    await outsider.get_workflow_handle(incoming_workflow_id(case_id)).signal("document", forged)
    await asyncio.sleep(3)
    assert agencies.query(
        "incoming",
        "SELECT count(*) FROM ledger WHERE case_id = ? AND leg = 'credit_incoming'",
        case_id,
    ) == [(0,)]

    # The same remittance through the platform (verified), then a clerk's retry of the
    # step: credited, once.
    await peer.send(remittance)
    for _ in range(100):
        if agencies.query(
            "incoming",
            "SELECT 1 FROM verified_document WHERE message_id = ?",
            remittance.message_id,
        ):
            break
        await asyncio.sleep(0.3)
    response = await agencies.post(
        "incoming",
        f"/v1/cases/{case_id}/actions/retry-step",
        {"clerk": "clerk-07", "reason": "remittance arrived through the platform"},
    )
    assert response.status_code == 202, response.text
    await agencies.wait_status("incoming", case_id, "completed", timeout=60)
    assert agencies.query(
        "incoming",
        "SELECT amount_fen FROM ledger WHERE case_id = ? AND leg = 'credit_incoming'",
        case_id,
    ) == [(100_000,)]
