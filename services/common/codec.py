"""Temporal payload encryption: every workflow, signal, query and activity payload is
AES-256-GCM encrypted before it leaves the process, so the Temporal server, its database
and its UI hold no ID number, name or bank account in clear.

A payload becomes ``encoding: binary/encrypted`` with the key id in its metadata and
``nonce (12 bytes) || ciphertext+tag`` as data. The associated data binds the key id and
the workflow the payload belongs to (namespace and workflow id, also in the metadata):
a payload copied from one case's history into another case's signal does not decode
there (a clerk's decision cannot be replayed into someone else's case).
Keys rotate by adding a new key id and making it current: every listed key decrypts, the
current one encrypts. A payload that is not encrypted under one of our keys is refused on
decode: it becomes an empty payload of an encoding no converter reads, so the SDK drops
such a signal ("Failed deserializing signal input ... dropping the signal") instead of
acting on it, and the workflow task does not fail (which would jam the case): whoever can
reach Temporal but holds no codec key cannot hand a workflow a document or a decision.

The codec endpoint (``POST /codec/decode`` on the APIs, operator role) lets the Temporal
UI show an authorised operator a case's payloads; there is no encode endpoint, as the UI
runs with write actions off.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import fcntl
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)

ENCODING = b"binary/encrypted"
REFUSED = b"binary/refused-not-ours"
KEY_ID = "encryption-key-id"
BINDING = "encryption-binding"
TAG_BYTES = 16
NONCE_BYTES = 12

log = logging.getLogger("medtransfer.codec")


class CodecError(ValueError):
    """A codec key set that cannot be used, or a payload that cannot be decrypted."""


def _binding(context: SerializationContext) -> str | None:
    if isinstance(context, WorkflowSerializationContext):
        return f"{context.namespace}/{context.workflow_id}"
    if isinstance(context, ActivitySerializationContext) and context.workflow_id:
        return f"{context.namespace}/{context.workflow_id}"
    return None


class EncryptionCodec(PayloadCodec, WithSerializationContext):
    def __init__(self, keys: dict[str, bytes], current: str, binding: str | None = None) -> None:
        self._keys = keys
        self._binding = binding
        if current not in keys:
            raise CodecError(f"the current codec key {current!r} is not among the keys")
        for key_id, key in keys.items():
            if len(key) != 32:
                raise CodecError(f"codec key {key_id} is not 32 bytes (AES-256)")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._current = current

    def with_context(self, context: SerializationContext) -> EncryptionCodec:
        """The codec of one workflow's payloads (the SDK asks for it per workflow and
        activity): what it seals names that workflow; what it opens must name it."""
        return EncryptionCodec(self._keys, self._current, _binding(context))

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        decoded = []
        for payload in payloads:
            try:
                decoded.append(self.decrypt(payload))
            except CodecError as refused:
                log.warning("security refusal: a Temporal payload refused: %s", refused)
                decoded.append(Payload(metadata={"encoding": REFUSED}))
        return decoded

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        key_id = self._current
        metadata = {"encoding": ENCODING, KEY_ID: key_id.encode("utf-8")}
        if self._binding is not None:
            metadata[BINDING] = self._binding.encode("utf-8")
        sealed = self._ciphers[key_id].encrypt(
            nonce, payload.SerializeToString(), _associated(key_id, self._binding)
        )
        return Payload(metadata=metadata, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        """Open one of our payloads. Raises ``CodecError`` for anything else: not ours,
        another workflow's, cut short or altered."""
        if payload.metadata.get("encoding") != ENCODING:
            raise CodecError("refused: a payload that is not encrypted")
        key_id = payload.metadata.get(KEY_ID, b"").decode("utf-8", "replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise CodecError(f"no codec key {key_id[:40]!r} here")
        raw_binding = payload.metadata.get(BINDING)
        binding = None if raw_binding is None else raw_binding.decode("utf-8", "replace")
        if self._binding is not None and binding != self._binding:
            # Decoding for a workflow: only that workflow's own payloads.
            raise CodecError("refused: a payload sealed for another workflow")
        if len(payload.data) < NONCE_BYTES + TAG_BYTES:
            raise CodecError("refused: an encrypted payload cut short")
        try:
            clear = cipher.decrypt(
                payload.data[:NONCE_BYTES],
                payload.data[NONCE_BYTES:],
                _associated(key_id, binding),
            )
            return Payload.FromString(clear)
        except (InvalidTag, ValueError):
            raise CodecError(f"a payload under key {key_id[:40]!r} does not decrypt") from None


def _associated(key_id: str, binding: str | None) -> bytes:
    return key_id.encode("utf-8") + b"\n" + (binding or "").encode("utf-8")


def parse_codec_keys(text: str) -> dict[str, bytes]:
    try:
        raw = json.loads(text)
        keys = {str(k): base64.b64decode(str(v), validate=True) for k, v in dict(raw).items()}
    except (ValueError, TypeError, binascii.Error) as exc:
        raise CodecError("MEDTRANSFER_TEMPORAL_CODEC_KEYS is not {key_id: base64 key}") from exc
    if not keys:
        raise CodecError("MEDTRANSFER_TEMPORAL_CODEC_KEYS lists no key")
    return keys


def local_codec_keys(trust_dir: Path) -> tuple[dict[str, bytes], str]:
    """The local demo's one codec key, made on first use in the deployment's secret
    folder (its key directory)."""
    trust_dir.mkdir(parents=True, exist_ok=True)
    path = trust_dir / "temporal-codec.json"
    with open(trust_dir / "codec.lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                key = base64.b64encode(AESGCM.generate_key(bit_length=256)).decode("ascii")
                json.dump({"local-1": key}, handle)
        keys = parse_codec_keys(path.read_text(encoding="ascii"))
    return keys, "local-1"


def codec_from_settings(
    keys_text: str, current: str, *, local_demo: bool, trust_dir: Path
) -> EncryptionCodec:
    """The codec of this deployment; outside the local demo the keys must be configured."""
    if keys_text.strip():
        keys = parse_codec_keys(keys_text)
        return EncryptionCodec(keys, current or sorted(keys)[-1])
    if not local_demo:
        raise CodecError(
            "MEDTRANSFER_TEMPORAL_CODEC_KEYS is not set: Temporal payloads would be in clear"
        )
    keys, local_current = local_codec_keys(trust_dir)
    return EncryptionCodec(keys, local_current)


def encrypted_converter(codec: EncryptionCodec) -> DataConverter:
    """The pydantic converter with the codec; failure messages and stack traces go into
    encoded attributes, so the codec seals them too (an error can quote a record)."""
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def decode_for_ui(codec: EncryptionCodec, body: dict[str, Any]) -> dict[str, Any]:
    """The Temporal UI's codec-server ``/decode`` exchange: ``{"payloads": [{"metadata":
    {name: base64}, "data": base64}]}`` in and out. A payload that is not ours is shown
    as it came (the UI also sends its own plain ones)."""
    items = body.get("payloads")
    if not isinstance(items, list):
        raise CodecError("the body needs a payloads list")
    out: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, dict):
            raise CodecError("a payload is an object")
        try:
            metadata = {
                str(k): base64.b64decode(str(v), validate=True)
                for k, v in dict(item.get("metadata") or {}).items()
            }
            payload = Payload(
                metadata=metadata, data=base64.b64decode(str(item.get("data") or ""), validate=True)
            )
        except (binascii.Error, ValueError, TypeError) as exc:
            raise CodecError("a payload's metadata or data is not base64") from exc
        if payload.metadata.get("encoding") == ENCODING:
            payload = codec.decrypt(payload)
        out.append(
            {
                "metadata": {
                    k: base64.b64encode(v).decode("ascii") for k, v in payload.metadata.items()
                },
                "data": base64.b64encode(payload.data).decode("ascii"),
            }
        )
    return {"payloads": out}
