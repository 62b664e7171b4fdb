"""Ed25519 signatures on envelopes.

A public key is shared as base64 of its 32 raw bytes; private keys are PKCS#8 PEM. Which
key a region signs with, and which keys verify it, is key custody (contracts/keyring.py).
The signed bytes are defined in docs/signatures.md.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from contracts.envelope import Envelope


class SignatureInvalid(Exception):
    """An envelope's signature is missing or does not verify."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def generate_keypair() -> tuple[bytes, str]:
    """Return a new key pair: (PEM private key bytes, base64 raw public key)."""
    private_key = Ed25519PrivateKey.generate()
    return _private_pem(private_key), public_key_b64(private_key)


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    """Load an unencrypted PEM private key; raise ``ValueError`` if it is not Ed25519."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return key


def public_key_b64(private_key: Ed25519PrivateKey) -> str:
    """The base64 raw public key belonging to ``private_key``."""
    raw = private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.b64encode(raw).decode("ascii")


def sign_envelope(env: Envelope, private_key: Ed25519PrivateKey, key_id: str) -> Envelope:
    """Return a copy of ``env`` carrying ``key_id`` and its signature.

    ``key_id`` is part of the signed bytes, so it cannot be swapped afterwards.
    """
    unsigned = env.model_copy(update={"key_id": key_id, "signature": None})
    signature = private_key.sign(unsigned.signing_bytes())
    return unsigned.model_copy(update={"signature": base64.b64encode(signature).decode("ascii")})


def verify_signature(public_key_b64: str, signature_b64: str, data: bytes) -> None:
    """Check a base64 Ed25519 signature over ``data`` with a base64 raw public key.

    Raises ``SignatureInvalid`` when the key or signature is malformed or wrong.
    """
    try:
        public_key = Ed25519PublicKey.from_public_bytes(
            base64.b64decode(public_key_b64, validate=True)
        )
    except (binascii.Error, ValueError) as exc:
        raise SignatureInvalid("malformed public key") from exc
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureInvalid("malformed signature") from exc
    try:
        public_key.verify(signature, data)
    except InvalidSignature as exc:
        raise SignatureInvalid("signature does not match") from exc


def verify_envelope(env: Envelope, public_key_b64: str) -> None:
    """Check ``env``'s signature with a base64 raw Ed25519 public key.

    Raises ``SignatureInvalid`` when the signature is missing, malformed or wrong.
    """
    if env.signature is None:
        raise SignatureInvalid("missing signature")
    try:
        signed = env.signing_bytes()
    except ValueError as exc:
        # A number JCS cannot carry (beyond 2^53) can only come from a hostile sender.
        raise SignatureInvalid("not representable as RFC 8785 JSON") from exc
    verify_signature(public_key_b64, env.signature, signed)


def _private_pem(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
