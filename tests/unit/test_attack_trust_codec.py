"""Attacks on the Temporal payload codec (services/common/codec.py).

1. A payload that claims ``binary/encrypted`` under our (public, visible in any history)
   key id with fewer than 8 data bytes makes AESGCM raise ``ValueError`` (nonce too short),
   which ``decode`` does not turn into a refused payload: the exception escapes the codec,
   the worker fails the workflow task, and Temporal retries that task forever (the case
   is jammed) -- exactly what the codec promises cannot happen.
2. The ciphertext is bound only to the key id: a payload copied from one workflow's history
   (a clerk's decision, a document of case A) decrypts in any other workflow, so whoever
   can reach Temporal without the codec key can still hand a workflow a decision or a
   document by cut-and-paste.
3. Failure messages (activity/workflow errors) are not encrypted: the data converter keeps
   the default failure converter (``encode_common_attributes=False``), so an error text
   with an ID number (e.g. a SQLAlchemy error echoing its bound parameters) lies in clear
   in Temporal's history.
"""

from __future__ import annotations

import os

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.converter import WorkflowSerializationContext

from services.common.codec import ENCODING, KEY_ID, REFUSED, EncryptionCodec, encrypted_converter

pytestmark = pytest.mark.unit

ID_NUMBER = "11010519491231002X"


def codec() -> EncryptionCodec:
    return EncryptionCodec({"k1": os.urandom(32)}, "k1")


@pytest.mark.parametrize("length", [0, 1, 7])
async def test_a_truncated_encrypted_payload_is_refused_not_raised(length: int) -> None:
    hostile = Payload(metadata={"encoding": ENCODING, KEY_ID: b"k1"}, data=b"\0" * length)
    (decoded,) = await codec().decode([hostile])
    assert decoded.metadata["encoding"] == REFUSED


async def test_a_payload_copied_from_another_workflow_does_not_decode() -> None:
    converter = encrypted_converter(codec())
    case_a = converter.with_context(
        WorkflowSerializationContext(namespace="agency-a", workflow_id="outgoing-C-A")
    )
    case_b = converter.with_context(
        WorkflowSerializationContext(namespace="agency-a", workflow_id="outgoing-C-B")
    )
    # e.g. a clerk's mismatch decision signalled into case A, read from A's history.
    (copied,) = await case_a.encode([{"decision": "credit", "clerk": "clerk-1"}])
    assert await case_a.decode([copied], [dict]) == [{"decision": "credit", "clerk": "clerk-1"}]
    # In case B it is refused (a payload no converter reads: the SDK drops the signal).
    with pytest.raises(KeyError, match="binary/refused-not-ours"):
        await case_b.decode([copied], [dict])


async def test_a_failure_message_holds_no_personal_data_in_clear() -> None:
    converter = encrypted_converter(codec())
    failure = Failure()
    error = RuntimeError(
        "(sqlite3.IntegrityError) UNIQUE constraint failed: enrolment.id_number "
        f"[SQL: INSERT INTO enrolment ...] [parameters: ('{ID_NUMBER}', '测试参保人')]"
    )
    await converter.encode_failure(error, failure)
    assert ID_NUMBER.encode() not in failure.SerializeToString()
