"""Temporal closed (issue 13 item 4): payloads encrypted with AES-256-GCM under a key id,
rotation, nothing unencrypted accepted; money moves only on verified documents."""

from __future__ import annotations

import base64
import json
import os
from datetime import date
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from services.common.codec import (
    REFUSED,
    CodecError,
    EncryptionCodec,
    codec_from_settings,
    decode_for_ui,
    encrypted_converter,
)
from tests.support.workflow_fakes import (
    FakeIncomingRecords,
    FakeOutgoingRecords,
    FakeVerifiedDocuments,
)
from workflows.activities import UNVERIFIED_DOCUMENT
from workflows.incoming.activities import IncomingActivities
from workflows.incoming.types import CreditInput
from workflows.outgoing.activities import OutgoingActivities
from workflows.outgoing.types import ReturnInput

pytestmark = pytest.mark.unit

ID_NUMBER = "62080019900101123X"


def keys(*ids: str) -> dict[str, bytes]:
    return {key_id: os.urandom(32) for key_id in ids}


async def test_a_payload_holds_no_personal_data_in_clear_and_names_its_key() -> None:
    codec = EncryptionCodec(keys("k1"), "k1")
    converter = encrypted_converter(codec)
    payloads = await converter.encode([{"id_number": ID_NUMBER, "name": "测试人"}])
    (payload,) = payloads
    assert payload.metadata["encoding"] == b"binary/encrypted"
    assert payload.metadata["encryption-key-id"] == b"k1"
    assert ID_NUMBER.encode() not in payload.SerializeToString()
    assert "测试人".encode() not in payload.SerializeToString()
    assert await converter.decode(payloads, [dict]) == [{"id_number": ID_NUMBER, "name": "测试人"}]


async def test_rotation_decrypts_old_payloads_and_encrypts_with_the_current_key() -> None:
    ring = keys("k1", "k2")
    old = await EncryptionCodec(ring, "k1").encode([Payload(data=b"x")])
    rotated = EncryptionCodec(ring, "k2")
    assert (await rotated.decode(old))[0].data == b"x"
    assert (await rotated.encode([Payload(data=b"y")]))[0].metadata["encryption-key-id"] == b"k2"
    retired = EncryptionCodec({"k2": ring["k2"]}, "k2")
    with pytest.raises(CodecError, match="no codec key 'k1'"):
        retired.decrypt(old[0])


async def test_an_unencrypted_or_altered_payload_is_refused() -> None:
    codec = EncryptionCodec(keys("k1"), "k1")
    converter = encrypted_converter(codec)
    (sealed,) = await codec.encode([Payload(data=b"amount 100")])
    altered = Payload(
        metadata=sealed.metadata, data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    )
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b"{}")
    other_key = EncryptionCodec({"k1": os.urandom(32)}, "k1")
    for payload in (plain, altered):
        with pytest.raises(CodecError):
            codec.decrypt(payload)
    with pytest.raises(CodecError):
        other_key.decrypt(sealed)
    # On decode they become payloads no converter reads (a signal is dropped, the workflow
    # task does not fail): never their content.
    refused = await codec.decode([plain, altered])
    assert [p.metadata["encoding"] for p in refused] == [REFUSED, REFUSED]
    assert all(p.data == b"" for p in refused)
    with pytest.raises(KeyError, match="binary/refused-not-ours"):
        await converter.decode([plain], [dict])


def test_outside_the_local_demo_the_codec_keys_are_required(tmp_path: Path) -> None:
    with pytest.raises(CodecError, match="in clear"):
        codec_from_settings("", "", local_demo=False, trust_dir=tmp_path)
    with pytest.raises(CodecError, match="32 bytes"):
        codec_from_settings(
            json.dumps({"k": base64.b64encode(b"short").decode()}),
            "k",
            local_demo=False,
            trust_dir=tmp_path,
        )
    local = codec_from_settings("", "", local_demo=True, trust_dir=tmp_path)
    again = codec_from_settings("", "", local_demo=True, trust_dir=tmp_path)
    assert again.decrypt(local.encrypt(Payload(data=b"z"))).data == b"z"


async def test_the_codec_endpoint_exchange_decodes_for_the_ui() -> None:
    codec = EncryptionCodec(keys("k1"), "k1")
    (sealed,) = await codec.encode([Payload(metadata={"encoding": b"json/plain"}, data=b'{"a":1}')])
    body = {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in sealed.metadata.items()},
                "data": base64.b64encode(sealed.data).decode(),
            }
        ]
    }
    (shown,) = decode_for_ui(codec, body)["payloads"]
    assert base64.b64decode(shown["data"]) == b'{"a":1}'
    with pytest.raises(CodecError):
        decode_for_ui(codec, {"payloads": "nope"})


async def test_a_credit_without_a_verified_remittance_moves_no_money() -> None:
    records, verified = FakeIncomingRecords(), FakeVerifiedDocuments()
    verified.unverified_types.add("BalanceRemitted")
    activities = IncomingActivities(records, verified)
    request = CreditInput(
        case_id="C-1", remittance_id="C-1-main", amount_fen=100, credited_on=date(2027, 1, 4)
    )
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(activities.credit_balance, request)
    assert refused.value.type == UNVERIFIED_DOCUMENT
    assert refused.value.non_retryable
    assert records.credits == []
    assert verified.asked == [
        ("C-1", "BalanceRemitted", {"remittance_id": "C-1-main", "amount_fen": 100})
    ]


async def test_a_return_without_a_verified_return_document_restores_nothing() -> None:
    verified = FakeVerifiedDocuments()
    verified.unverified_types.add("BalanceReturned")
    activities = OutgoingActivities(FakeOutgoingRecords(), verified)
    request = ReturnInput(case_id="C-1", remittance_id="C-1-main", amount_fen=100)
    assert await ActivityEnvironment().run(activities.restore_returned_balance, request) == 0
