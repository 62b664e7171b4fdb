"""Ed25519 signatures on envelopes, and the per-region key files.

Each region's private key lives in ``<dir>/<region>.pem`` (PKCS#8, mode 0600); its public key
is shared as base64 of the 32 raw bytes. A receiver verifies a message against the public key
of the message's ``from_region``.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from contracts.envelope import Envelope

_REGION = re.compile(r"^\d{6}$")


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


def verify_envelope(env: Envelope, public_key_b64: str) -> None:
    """Check ``env``'s signature with a base64 raw Ed25519 public key.

    Raises ``SignatureInvalid`` when the signature is missing, malformed or wrong.
    """
    if env.signature is None:
        raise SignatureInvalid("missing signature")
    try:
        public_key = Ed25519PublicKey.from_public_bytes(
            base64.b64decode(public_key_b64, validate=True)
        )
    except (binascii.Error, ValueError) as exc:
        raise SignatureInvalid("malformed public key") from exc
    try:
        signature = base64.b64decode(env.signature, validate=True)
    except binascii.Error as exc:
        raise SignatureInvalid("malformed signature") from exc
    try:
        public_key.verify(signature, env.signing_bytes())
    except InvalidSignature as exc:
        raise SignatureInvalid("signature does not match") from exc


def verify_from_region(env: Envelope, region_keys: Mapping[str, str]) -> None:
    """Verify ``env`` against the registered key of its ``from_region``.

    Raises ``SignatureInvalid`` when the region has no registered key or the check fails.
    """
    public_key = region_keys.get(env.from_region)
    if public_key is None:
        raise SignatureInvalid(f"no public key registered for region {env.from_region}")
    verify_envelope(env, public_key)


def write_region_key(dir: Path, region: str) -> str:
    """Create ``<dir>/<region>.pem`` (mode 0600) unless it exists; return the public key."""
    path = _key_path(dir, region)
    if path.exists():
        return public_key_b64(load_region_private_key(dir, region))
    dir.mkdir(parents=True, exist_ok=True)
    pem, public_key = generate_keypair()
    fd, tmp_name = tempfile.mkstemp(dir=dir, prefix=f".{region}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(pem)
        try:
            # link() fails if the name exists: a concurrent writer never sees a half key
            # and never has its key overwritten.
            os.link(tmp_name, path)
        except FileExistsError:
            return public_key_b64(load_region_private_key(dir, region))
    finally:
        os.unlink(tmp_name)
    return public_key


def load_region_private_key(dir: Path, region: str) -> Ed25519PrivateKey:
    """Load the private key of ``region`` from ``<dir>/<region>.pem``."""
    return load_private_key(_key_path(dir, region).read_bytes())


def load_region_keys(dir: Path) -> dict[str, str]:
    """Region -> base64 public key, for every ``<region>.pem`` in ``dir``."""
    keys: dict[str, str] = {}
    for path in sorted(dir.glob("*.pem")):
        if not _REGION.match(path.stem):
            raise ValueError(f"key file {path.name} is not named after a 6-digit region code")
        keys[path.stem] = public_key_b64(load_private_key(path.read_bytes()))
    return keys


def _key_path(dir: Path, region: str) -> Path:
    if not _REGION.match(region):
        raise ValueError(f"region must be a 6-digit code, got {region!r}")
    return dir / f"{region}.pem"


def _private_pem(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
