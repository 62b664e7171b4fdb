"""The signed bytes are RFC 8785 (JCS) and the signature Ed25519 over them, checked three ways:
our code reproduces the committed vectors (contracts/vectors/signatures.json); libraries this
project did not write (``rfc8785`` by Trail of Bits, PyNaCl on libsodium) agree with our
bytes and signatures, in both directions; and hypothesis finds no JSON value on which our
canonical form and ``rfc8785`` differ. docs/signatures.md is the spec the vectors illustrate.
"""

import base64
import json
import math
import struct
from decimal import Decimal
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.signing
import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

import contracts
from contracts import Envelope
from contracts.canonical import MAX_SAFE_INTEGER, canonical_json
from contracts.signing import SignatureInvalid, sign_envelope, verify_envelope

pytestmark = pytest.mark.unit

VECTORS_FILE = Path(contracts.__file__).parent / "vectors" / "signatures.json"
DATA = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
VECTORS: list[dict[str, Any]] = DATA["vectors"]
SECRET_KEY = bytes.fromhex(DATA["key"]["secret_key_hex"])
PUBLIC_KEY_B64: str = DATA["key"]["public_key_b64"]
# RFC 8032 section 7.1 TEST 1: the signature of the empty message, printed in the RFC.
RFC8032_TEST1_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
RFC8032_TEST1_EMPTY_SIGNATURE = (
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)

by_name = pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])


def unsigned_json(vector: dict[str, Any]) -> dict[str, Any]:
    """The vector's envelope as a foreign implementer sees it: JSON minus ``signature``."""
    return {k: v for k, v in vector["envelope"].items() if k != "signature"}


def expected_bytes(vector: dict[str, Any]) -> bytes:
    return bytes.fromhex(vector["canonical_hex"])


def our_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(SECRET_KEY)


def with_signature(vector: dict[str, Any], signature: str) -> Envelope:
    return Envelope.model_validate({**vector["envelope"], "signature": signature})


# --- (a) our code reproduces the vectors ------------------------------------------------------


def test_signed_bytes_vectors_use_the_rfc8032_test_1_key():
    assert DATA["key"]["public_key_hex"] == RFC8032_TEST1_PUBLIC
    assert base64.b64decode(PUBLIC_KEY_B64).hex() == RFC8032_TEST1_PUBLIC
    assert our_key().sign(b"").hex() == RFC8032_TEST1_EMPTY_SIGNATURE


def test_signed_bytes_vectors_cover_the_cases_an_implementer_gets_wrong():
    canonical = b"".join(expected_bytes(v) for v in VECTORS)
    assert "测试人".encode() in canonical  # non-ASCII written as UTF-8, not \u escaped
    assert b'\\"' in canonical
    assert b"\\\\" in canonical
    assert b"\\u001f" in canonical
    assert b"\\u007f" not in canonical  # DEL is no control to JCS: written as it is
    assert "\u2028".encode() in canonical
    assert canonical.index("\U0001f600".encode()) < canonical.index("\ue000".encode())
    assert b":9007199254740991," in canonical
    assert len({v["name"] for v in VECTORS}) == len(VECTORS) >= 5


@by_name
def test_signed_bytes_are_jcs_of_the_envelope_without_signature(vector):
    envelope = Envelope.model_validate(vector["envelope"])
    assert vector["canonical_utf8"].encode("utf-8") == expected_bytes(vector)
    assert canonical_json(unsigned_json(vector)) == expected_bytes(vector)
    assert envelope.signing_bytes() == expected_bytes(vector)


@by_name
def test_signed_bytes_vector_envelopes_keep_their_json_form(vector):
    # Our verifier re-serializes the parsed envelope: its JSON form must be the one received,
    # or a foreign signer's bytes would differ from ours (sent_at's spelling above all).
    envelope = Envelope.model_validate(vector["envelope"])
    assert envelope.model_dump(mode="json") == vector["envelope"]
    assert envelope.key_id == vector["key_id"]
    envelope.document()  # the vectors are valid documents, not only valid JSON


@by_name
def test_signed_bytes_our_signature_reproduces_the_vector(vector):
    # Ed25519 is deterministic: the same key and bytes give the same signature everywhere.
    envelope = Envelope.model_validate(vector["envelope"])
    signed = sign_envelope(envelope, our_key(), key_id=vector["key_id"])
    assert signed.signature == vector["signature"]
    verify_envelope(with_signature(vector, vector["signature"]), PUBLIC_KEY_B64)


# --- (b) implementations this project did not write agree ------------------------------------


@by_name
def test_signed_bytes_match_an_independent_jcs(vector):
    independent = rfc8785.dumps(unsigned_json(vector))
    assert independent == expected_bytes(vector)
    assert independent == Envelope.model_validate(vector["envelope"]).signing_bytes()


@by_name
def test_signed_bytes_our_signature_verifies_with_libsodium(vector):
    verify_key = nacl.signing.VerifyKey(base64.b64decode(PUBLIC_KEY_B64))
    signature = base64.b64decode(vector["signature"], validate=True)
    assert len(signature) == 64
    message = rfc8785.dumps(unsigned_json(vector))
    verify_key.verify(message, signature)
    tampered = message.replace(b'"key_id":"', b'"key_id":"x', 1)
    with pytest.raises(nacl.exceptions.BadSignatureError):
        verify_key.verify(tampered, signature)


@by_name
def test_signed_bytes_a_libsodium_signature_verifies_with_ours(vector):
    signing_key = nacl.signing.SigningKey(SECRET_KEY)
    signature = signing_key.sign(rfc8785.dumps(unsigned_json(vector))).signature
    assert base64.b64encode(signature).decode("ascii") == vector["signature"]
    verify_envelope(with_signature(vector, vector["signature"]), PUBLIC_KEY_B64)


@by_name
def test_signed_bytes_a_foreign_key_and_key_id_verify_with_ours(vector):
    # A region with its own key signs an envelope it built as plain JSON, as a non-Python
    # agency would; key_id is inside the signed bytes.
    foreign = nacl.signing.SigningKey.generate()
    data = {**unsigned_json(vector), "key_id": "999999-20260301-f00d01"}
    signature = base64.b64encode(foreign.sign(rfc8785.dumps(data)).signature).decode("ascii")
    public_key = base64.b64encode(bytes(foreign.verify_key)).decode("ascii")
    envelope = Envelope.model_validate({**data, "signature": signature})
    verify_envelope(envelope, public_key)
    swapped = envelope.model_copy(update={"key_id": vector["key_id"]})
    with pytest.raises(SignatureInvalid):
        verify_envelope(swapped, public_key)


# --- (c) no JSON value on which we and rfc8785 differ -----------------------------------------

SPECIAL_CHARACTERS = st.sampled_from(
    ['"', "\\", "/", "\b", "\f", "\n", "\r", "\t", "\x00", "\x1f", "\x7f", "\x80", "\u2028",
     "\ue000", "\ufb33", "\uffff", "\U0001f600", "\U00010000", "\U0010ffff", "测", "é"]
)  # fmt: skip
CHARACTERS = st.one_of(
    st.characters(codec="utf-8"),  # every code point but the surrogates
    st.characters(min_codepoint=0x10000, codec="utf-8"),  # astral: two UTF-16 units
    st.characters(max_codepoint=0x1F),
    SPECIAL_CHARACTERS,
)
TEXT = st.text(CHARACTERS, max_size=12)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
    st.sampled_from([0, -1, MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER]),
    TEXT,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(TEXT, children, max_size=6),
    max_leaves=25,
)
PAYLOADS = st.dictionaries(TEXT, JSON_VALUES, max_size=6)


@settings(max_examples=300, deadline=None)
@given(value=JSON_VALUES)
def test_signed_bytes_canonical_json_equals_an_independent_jcs(value):
    assert canonical_json(value) == rfc8785.dumps(value)


@settings(max_examples=300, deadline=None)
@given(keys=st.lists(TEXT, min_size=2, max_size=8, unique=True))
def test_signed_bytes_sort_keys_by_utf16_code_units(keys):
    data = dict.fromkeys(keys, 0)
    assert canonical_json(data) == rfc8785.dumps(data)
    written = list(json.loads(canonical_json(data)))
    assert written == sorted(keys, key=lambda k: k.encode("utf-16-be"))


@settings(max_examples=50, deadline=None)
@given(payload=PAYLOADS)
def test_signed_bytes_of_any_payload_verify_with_independent_libraries(payload):
    envelope = Envelope.model_validate({**VECTORS[0]["envelope"], "payload": payload})
    signed = sign_envelope(envelope, our_key(), key_id="620800-20260101-8032a1")
    message = rfc8785.dumps(signed.model_dump(mode="json", exclude={"signature"}))
    assert message == signed.signing_bytes()
    assert signed.signature is not None
    nacl.signing.VerifyKey(base64.b64decode(PUBLIC_KEY_B64)).verify(
        message, base64.b64decode(signed.signature)
    )


# Envelopes carry integer fen, but JCS defines every number: ECMAScript's Number-to-String.
@settings(max_examples=500, deadline=None)
@given(number=st.floats(allow_nan=False, allow_infinity=False))
def test_signed_bytes_write_floats_as_ecmascript_does(number):
    written = canonical_json(number)
    assert written == rfc8785.dumps(number)
    assert float(written) == number


def _double(bits: str) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(bits))[0]
    return value


@pytest.mark.parametrize(
    ("bits", "text"),
    [
        ("0000000000000000", "0"),
        ("8000000000000000", "0"),
        ("0000000000000001", "5e-324"),
        ("8000000000000001", "-5e-324"),
        ("7fefffffffffffff", "1.7976931348623157e+308"),
        ("ffefffffffffffff", "-1.7976931348623157e+308"),
        ("4340000000000000", "9007199254740992"),
        ("c340000000000000", "-9007199254740992"),
        ("4430000000000000", "295147905179352830000"),
        ("44b52d02c7e14af5", "9.999999999999997e+22"),
        ("44b52d02c7e14af6", "1e+23"),
        ("44b52d02c7e14af7", "1.0000000000000001e+23"),
        ("444b1ae4d6e2ef4e", "999999999999999700000"),
        ("444b1ae4d6e2ef4f", "999999999999999900000"),
        ("444b1ae4d6e2ef50", "1e+21"),
        ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
        ("3eb0c6f7a0b5ed8d", "0.000001"),
        ("41b3de4355555553", "333333333.3333332"),
        ("41b3de4355555554", "333333333.33333325"),
        ("41b3de4355555555", "333333333.3333333"),
        ("41b3de4355555556", "333333333.3333334"),
        ("41b3de4355555557", "333333333.33333343"),
        ("becbf647612f3696", "-0.0000033333333333333333"),
        ("43143ff3c1cb0959", "1424953923781206.2"),
    ],
)
def test_signed_bytes_numbers_of_rfc8785_appendix_b(bits, text):
    assert canonical_json(_double(bits)) == text.encode("ascii")


# --- what JCS cannot carry is refused, never written differently -----------------------------


@pytest.mark.parametrize("number", [MAX_SAFE_INTEGER + 1, -MAX_SAFE_INTEGER - 1, 2**64])
def test_signed_bytes_refuse_integers_a_double_cannot_hold(number):
    with pytest.raises(ValueError, match=r"2\*\*53"):
        canonical_json({"amount_fen": number})
    with pytest.raises(rfc8785.IntegerDomainError):
        rfc8785.dumps({"amount_fen": number})


def test_signed_bytes_keep_the_largest_safe_integers():
    assert canonical_json([MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER]) == (
        b"[9007199254740991,-9007199254740991]"
    )


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_signed_bytes_refuse_nan_and_infinity(value):
    with pytest.raises(ValueError, match="not a JSON number"):
        canonical_json([value])


@pytest.mark.parametrize(
    "value",
    [
        "\ud800",
        "ok \udfff",
        {"\udbff": 1},
        ["a", {"b": "\ud83d"}],  # the first half of U+1F600 alone
    ],
)
def test_signed_bytes_refuse_lone_surrogates(value):
    with pytest.raises(ValueError, match="lone surrogate") as raised:
        canonical_json(value)
    # The text may be personal data: the message names a position, never the characters.
    message = str(raised.value)
    assert "\\ud" not in message
    assert all(not 0xD800 <= ord(char) <= 0xDFFF for char in message)


@pytest.mark.parametrize(
    "value", [b"bytes", {1, 2}, Decimal("1.5"), {1: "int key"}, object(), 1 + 2j]
)
def test_signed_bytes_refuse_what_is_not_json(value):
    with pytest.raises(TypeError):
        canonical_json(value)


def test_signed_bytes_write_booleans_and_null_as_json_literals():
    assert canonical_json([True, False, None, 1, 0]) == b"[true,false,null,1,0]"
    assert canonical_json({"b": True, "a": 1}) == b'{"a":1,"b":true}'
    assert canonical_json(("tuple", [])) == b'["tuple",[]]'
    assert canonical_json({}) == b"{}"


def test_signed_bytes_an_envelope_too_big_for_jcs_is_not_signed():
    envelope = Envelope.model_validate(
        {**VECTORS[0]["envelope"], "payload": {"amount_fen": MAX_SAFE_INTEGER + 1}}
    )
    with pytest.raises(ValueError, match=r"2\*\*53"):
        sign_envelope(envelope, our_key(), key_id="620800-20260101-8032a1")


def test_signed_bytes_a_received_envelope_jcs_cannot_carry_fails_verification():
    # schema_version has no upper bound, so such an envelope passes validation.
    envelope = Envelope.model_validate(
        {**VECTORS[0]["envelope"], "schema_version": 2**60, "signature": VECTORS[0]["signature"]}
    )
    with pytest.raises(SignatureInvalid):
        verify_envelope(envelope, PUBLIC_KEY_B64)
