"""Who vouches for the audit trail, pure: the emitting agency's signature on each record,
the link each record carries to its predecessor, and the signed checkpoint of a chain's
head (docs/audit-trust.md).

An ``AuditRecord`` is signed by the agency that emits it, with the current key of the
case's region on its side (``region``), over ``AuditRecord.signing_bytes()``. Its
``prev_hash`` is the ``content_digest()`` of the same agency's record ``sequence - 1`` of
the case and side, so the signature covers the link: the operator of the audit store can
neither alter nor forge a record, nor drop one in the middle, without it showing to anyone
holding only the public-key registry. What a signature cannot show, a suffix dropped
together with everything that points at it, an ``AuditCheckpoint`` shows: the emitter's
signed statement "this chain has ``last_sequence`` records, the last one's digest is
``head_hash``", kept outside the audit store.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from contracts.canonical import canonical_json
from contracts.documents import (
    AUDIT_GENESIS,
    AuditRecord,
    AuditSignature,
    NonEmpty,
    RegionCode,
    Sha256Hex,
)
from contracts.keyring import KeyRegistry
from contracts.signing import SignatureInvalid, verify_signature

__all__ = [
    "AUDIT_GENESIS",
    "AuditCheckpoint",
    "ByteSigner",
    "PublicKeys",
    "archived_problem",
    "checkpoint_problem",
    "record_problem",
    "sign_checkpoint",
    "sign_record",
]


class PublicKeys(Protocol):
    """Public keys only: ``contracts.keyring.KeyRegistrySource`` (or anything that hands
    out the registry in force)."""

    def current(self) -> KeyRegistry: ...


class ByteSigner(Protocol):
    """This deployment's own region keys: ``contracts.keyring.RegionSigner``."""

    def current_key_id(self, region: str, now: datetime | None = None) -> str: ...

    def sign_bytes(self, region: str, data: bytes, at: datetime) -> tuple[str, str]: ...


class AuditCheckpoint(BaseModel):
    """The emitting agency's signed statement of one chain's head: the chain of
    ``case_id`` and ``side`` holds records 1..``last_sequence``, and record
    ``last_sequence`` has ``content_digest()`` ``head_hash``. Signed by ``region``'s key
    over ``signing_bytes()``, the same way as an AuditRecord."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    side: Literal["incoming", "outgoing"]
    region: RegionCode
    case_id: NonEmpty
    last_sequence: int = Field(ge=1)
    head_hash: Sha256Hex
    signature: AuditSignature | None = None

    def signing_bytes(self) -> bytes:
        if self.signature is None:
            raise ValueError("the checkpoint is not signed")
        return canonical_json(self.model_dump(mode="json", exclude={"signature": {"value"}}))


def _with_signature(
    signer: ByteSigner, region: str, unsigned: AuditRecord | AuditCheckpoint, at: datetime
) -> dict[str, object]:
    at = at.astimezone(UTC)
    # key_id is part of the signed bytes, so it is chosen before signing; a rotation
    # taking effect between the two calls is caught and signed again.
    for _ in range(2):
        key_id = signer.current_key_id(region, at)
        stub = AuditSignature.model_construct(key_id=key_id, signed_at=at, value="-")
        data = unsigned.model_copy(update={"signature": stub}).signing_bytes()
        used, value = signer.sign_bytes(region, data, at)
        if used == key_id:
            return {"key_id": key_id, "signed_at": at, "value": value}
    raise RuntimeError(f"region {region}'s signing key changed while signing")


def sign_record(
    signer: ByteSigner, record: AuditRecord, *, region: str, prev_hash: str | None, at: datetime
) -> AuditRecord:
    """``record`` as its emitter publishes it: ``occurred_at`` in UTC, ``region``,
    ``prev_hash`` and the signature of ``region``'s current key."""
    unsigned = AuditRecord.model_validate(
        record.model_dump()
        | {
            "occurred_at": record.occurred_at.astimezone(UTC),
            "region": region,
            "prev_hash": prev_hash,
            "signature": None,
        }
    )
    signature = _with_signature(signer, region, unsigned, at)
    return AuditRecord.model_validate(unsigned.model_dump() | {"signature": signature})


def sign_checkpoint(
    signer: ByteSigner,
    *,
    side: Literal["incoming", "outgoing"],
    region: str,
    case_id: str,
    last_sequence: int,
    head_hash: str,
    at: datetime,
) -> AuditCheckpoint:
    unsigned = AuditCheckpoint(
        side=side,
        region=region,
        case_id=case_id,
        last_sequence=last_sequence,
        head_hash=head_hash,
    )
    signature = _with_signature(signer, region, unsigned, at)
    return AuditCheckpoint.model_validate(unsigned.model_dump() | {"signature": signature})


Check = Literal["arrival", "archive"]


def _signature_problem(
    document: AuditRecord | AuditCheckpoint,
    region: str | None,
    keys: PublicKeys,
    now: datetime,
    check: Check,
) -> str | None:
    signature = document.signature
    if signature is None:
        return "not signed"
    if region is None:
        return "signed, but names no region"
    try:
        data = document.signing_bytes()
    except ValueError:
        return "not representable as RFC 8785 JSON"
    registry = keys.current()
    try:
        if check == "arrival":
            registry.verify_bytes(
                region, signature.key_id, data, signature.value, signature.signed_at, now
            )
        else:
            _verify_archived(registry, region, signature, data, now)
    except SignatureInvalid as exc:
        return exc.reason
    return None


def _verify_archived(
    registry: KeyRegistry, region: str, signature: AuditSignature, data: bytes, now: datetime
) -> None:
    # A stored record stays verifiable after its key's rotation: the key must have been
    # valid when it signed and must not be revoked since. Unlike arrival (and envelopes),
    # no limit on how long ago the key ended: the trail is kept for years.
    entry = registry.usable_entry(
        region, signature.key_id, signature.signed_at, now, ended_grace=None
    )
    verify_signature(entry.public_key, signature.value, data)


def record_problem(record: AuditRecord, keys: PublicKeys, now: datetime) -> str | None:
    """Why ``record`` may not enter the store now (None when its signature vouches for
    it): unsigned, no region, or the platform's rules for a signature arriving now
    (``KeyRegistry.verify_bytes``) refuse it."""
    return _signature_problem(record, record.region, keys, now, "arrival")


def archived_problem(record: AuditRecord, keys: PublicKeys, now: datetime) -> str | None:
    """Why a stored ``record``'s signature does not vouch for it: like ``record_problem``
    but a key that has ended since (a rotation) still verifies what it signed in its time;
    only a revoked key does not."""
    return _signature_problem(record, record.region, keys, now, "archive")


def checkpoint_problem(checkpoint: AuditCheckpoint, keys: PublicKeys, now: datetime) -> str | None:
    return _signature_problem(checkpoint, checkpoint.region, keys, now, "archive")


def expected_prev_hash(previous: AuditRecord | None, sequence: int) -> str | None:
    """The ``prev_hash`` record ``sequence`` must carry, given its predecessor (None when
    the predecessor is unknown)."""
    if sequence == 1:
        return AUDIT_GENESIS
    return previous.content_digest() if previous is not None else None
