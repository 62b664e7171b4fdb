"""Key custody: each agency holds its own regions' private keys; every region's public
keys come from a registry the platform operator signs.

- Private keys: ``<keys_dir>/<region>/<key_id>.pem`` (PKCS#8, mode 0600), only for the
  regions the deployment serves.
- The public-key registry: a JSON document listing, per region, entries with ``key_id``,
  ``public_key`` (base64 raw Ed25519), ``not_before``, ``not_after`` and ``revoked_at``,
  signed by the platform operator's key (Ed25519 over the JCS canonical bytes of the
  document without its ``signature``). It is loaded with the operator's public key only.

Verification: the envelope's ``key_id`` selects the sender region's entry; the key must
be valid at the signed ``sent_at`` (rotation: an old key still verifies what it signed
during its validity, so nothing in flight is lost) and not revoked (a revoked key may be
in an attacker's hands, whatever ``sent_at`` it claims: its documents are refused, and
the sender's resend sweep sends them again signed with the new key).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import secrets
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
)

from contracts.canonical import canonical_json
from contracts.envelope import Envelope
from contracts.signing import (
    SignatureInvalid,
    generate_keypair,
    load_private_key,
    public_key_b64,
    sign_envelope,
    verify_envelope,
    verify_signature,
)

log = logging.getLogger("medtransfer.keys")

REGISTRY_VERSION = 1
# How long after its end a rotated-out key still verifies what it signed in its time.
EXPIRED_KEY_GRACE = timedelta(days=7)
_REGION = re.compile(r"^\d{6}$")
_KEY_ID = re.compile(r"^\d{6}-[A-Za-z0-9][A-Za-z0-9._-]{0,60}$")


class KeyRegistryError(ValueError):
    """The registry document is malformed or its platform signature does not verify."""


class KeyCustodyError(Exception):
    """This deployment may not sign for the region (it does not serve it), or holds no
    valid key for it."""


def _instant(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise KeyRegistryError(f"{name} is not an ISO 8601 time") from exc
    if parsed.tzinfo is None:
        raise KeyRegistryError(f"{name} needs a time zone")
    return parsed


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class KeyEntry:
    """One region key in the registry."""

    region: str
    key_id: str
    public_key: str
    not_before: datetime
    not_after: datetime | None = None
    revoked_at: datetime | None = None

    def __post_init__(self) -> None:
        if not _REGION.match(self.region):
            raise KeyRegistryError("a key's region is a 6-digit code")
        if not _KEY_ID.match(self.key_id) or not self.key_id.startswith(self.region):
            raise KeyRegistryError(f"key id {self.key_id!r} must be <region>-<label>")
        try:
            raw = base64.b64decode(self.public_key, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise KeyRegistryError(f"key {self.key_id}: public_key is not base64") from exc
        if len(raw) != 32:
            raise KeyRegistryError(f"key {self.key_id}: public_key is not a raw Ed25519 key")
        if self.not_after is not None and self.not_after <= self.not_before:
            raise KeyRegistryError(f"key {self.key_id}: not_after must follow not_before")

    def valid_at(self, instant: datetime) -> bool:
        """Within not_before..not_after (the end excluded)."""
        return self.not_before <= instant and (self.not_after is None or instant < self.not_after)

    def revoked_by(self, now: datetime) -> bool:
        return self.revoked_at is not None and self.revoked_at <= now

    def to_json(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "key_id": self.key_id,
            "public_key": self.public_key,
            "not_before": _iso(self.not_before),
            "not_after": _iso(self.not_after),
            "revoked_at": _iso(self.revoked_at),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KeyEntry:
        try:
            not_before = _instant(data["not_before"], "not_before")
            assert not_before is not None
            return cls(
                region=str(data["region"]),
                key_id=str(data["key_id"]),
                public_key=str(data["public_key"]),
                not_before=not_before,
                not_after=_instant(data.get("not_after"), "not_after"),
                revoked_at=_instant(data.get("revoked_at"), "revoked_at"),
            )
        except (KeyError, AssertionError) as exc:
            raise KeyRegistryError(f"a key entry lacks {exc}") from None


@dataclass(frozen=True)
class KeyRegistry:
    """Every region's public keys, as the platform operator signed them."""

    entries: tuple[KeyEntry, ...]
    issued_at: datetime
    _by_id: dict[tuple[str, str], KeyEntry] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for entry in self.entries:
            if (entry.region, entry.key_id) in self._by_id:
                raise KeyRegistryError(f"key id {entry.key_id} is listed twice")
            self._by_id[(entry.region, entry.key_id)] = entry

    def find(self, region: str, key_id: str | None) -> KeyEntry | None:
        return None if key_id is None else self._by_id.get((region, key_id))

    def of_region(self, region: str) -> list[KeyEntry]:
        return [entry for entry in self.entries if entry.region == region]

    def regions(self) -> set[str]:
        return {entry.region for entry in self.entries}

    def verify(self, envelope: Envelope, now: datetime) -> None:
        """Check ``envelope`` against its sender region's key named by ``key_id``.

        Raises ``SignatureInvalid`` naming why (unknown key, revoked, not valid at the
        signed time, wrong signature); never a payload value.
        """
        entry = self.usable_entry(envelope.from_region, envelope.key_id, envelope.sent_at, now)
        verify_envelope(envelope, entry.public_key)

    def usable_entry(
        self,
        region: str,
        key_id: str | None,
        signed_at: datetime,
        now: datetime,
        ended_grace: timedelta | None = EXPIRED_KEY_GRACE,
    ) -> KeyEntry:
        """The region's key named ``key_id`` if it may verify a signature made at
        ``signed_at`` and checked ``now``; raises ``SignatureInvalid`` naming why.

        Not revoked by ``now`` (a stolen key can claim any signing time); valid at
        ``signed_at`` (rotation: what an old key signed in its time still verifies); and
        not ended longer ago than ``EXPIRED_KEY_GRACE`` (a key that ended long ago cannot
        sign backdated documents for ever; what it signed in flight is re-signed with the
        current key by the sender's resend sweep). An archive (the audit trail, kept for
        years) passes ``ended_grace=None``: no limit on how long ago the key ended."""
        entry = self.find(region, key_id)
        if entry is None:
            shown = key_id if key_id and _KEY_ID.match(key_id) else "<invalid>"
            raise SignatureInvalid(f"no key {shown} registered for region {region}")
        if entry.revoked_by(now):
            raise SignatureInvalid(f"key {entry.key_id} is revoked")
        if not entry.valid_at(signed_at):
            raise SignatureInvalid(f"key {entry.key_id} was not valid at the signing time")
        ended = entry.not_after
        if ended_grace is not None and ended is not None and now > ended + ended_grace:
            raise SignatureInvalid(f"key {entry.key_id} ended more than {ended_grace} ago")
        return entry

    def verify_bytes(
        self,
        region: str,
        key_id: str,
        data: bytes,
        signature: str,
        signed_at: datetime,
        now: datetime,
    ) -> None:
        """Check a signature of ``region`` over ``data`` (a document that is not an
        envelope, e.g. an audit record) with the same rules as ``verify``: the key named by
        ``key_id`` is the region's, not revoked by ``now``, valid at ``signed_at``.

        Raises ``SignatureInvalid`` naming why; never a value of ``data``.
        """
        entry = self.usable_entry(region, key_id, signed_at, now)
        verify_signature(entry.public_key, signature, data)

    def signing_entry(self, region: str, now: datetime, held: Iterable[str]) -> KeyEntry | None:
        """The key to sign with now: valid, not revoked, held here; the newest of them, so
        a rotation takes effect as soon as the new key's not_before has come."""
        held_ids = set(held)
        usable = [
            entry
            for entry in self.of_region(region)
            if entry.key_id in held_ids and entry.valid_at(now) and not entry.revoked_by(now)
        ]
        return max(usable, key=lambda entry: entry.not_before, default=None)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": REGISTRY_VERSION,
            "issued_at": _iso(self.issued_at),
            "keys": [entry.to_json() for entry in self.entries],
        }


def sign_registry(registry: KeyRegistry, platform_key: Ed25519PrivateKey) -> dict[str, Any]:
    """The registry document the platform operator publishes: entries plus its signature."""
    body = registry.to_json()
    signature = platform_key.sign(canonical_json(body))
    return {**body, "signature": base64.b64encode(signature).decode("ascii")}


def parse_registry(document: Mapping[str, Any], platform_public_key: str) -> KeyRegistry:
    """Verify the platform operator's signature and read the entries.

    Raises ``KeyRegistryError``; a registry that does not verify is never used.
    """
    if not platform_public_key:
        raise KeyRegistryError("no platform public key is configured")
    body = {k: v for k, v in document.items() if k != "signature"}
    try:
        verify_signature(
            platform_public_key, str(document.get("signature", "")), canonical_json(body)
        )
    except SignatureInvalid as refused:
        if refused.reason == "signature does not match":
            raise KeyRegistryError("the registry is not signed by the platform operator") from None
        raise KeyRegistryError("the platform key or the registry signature is malformed") from None
    if body.get("version") != REGISTRY_VERSION:
        raise KeyRegistryError(f"registry version {body.get('version')!r} is not supported")
    issued_at = _instant(body.get("issued_at"), "issued_at")
    if issued_at is None:
        raise KeyRegistryError("the registry has no issued_at")
    keys = body.get("keys")
    if not isinstance(keys, list):
        raise KeyRegistryError("the registry has no key list")
    return KeyRegistry(tuple(KeyEntry.from_json(item) for item in keys), issued_at)


# --- this deployment's private keys -------------------------------------------------------


def new_key_id(region: str, now: datetime) -> str:
    """``<region>-<yyyymmdd>-<random>``: readable, and unique without coordination."""
    return f"{region}-{now:%Y%m%d}-{secrets.token_hex(3)}"


def write_private_key(keys_dir: Path, region: str, key_id: str) -> str:
    """Create ``<keys_dir>/<region>/<key_id>.pem`` (mode 0600) unless it exists; return the
    public key. Safe against a concurrent writer: the file appears whole or not at all."""
    path = private_key_path(keys_dir, region, key_id)
    if path.exists():
        return public_key_b64(load_private_key(path.read_bytes()))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem, public_key = generate_keypair()
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(pem)
        try:
            os.link(tmp_name, path)  # fails if the name exists: a key is never overwritten
        except FileExistsError:
            return public_key_b64(load_private_key(path.read_bytes()))
    finally:
        os.unlink(tmp_name)
    return public_key


def private_key_path(keys_dir: Path, region: str, key_id: str) -> Path:
    if not _REGION.match(region):
        raise ValueError("region must be a 6-digit code")
    if not _KEY_ID.match(key_id) or not key_id.startswith(region):
        raise ValueError(f"key id must be <region>-<label>, got {key_id!r}")
    return keys_dir / region / f"{key_id}.pem"


def held_keys(keys_dir: Path) -> dict[str, dict[str, Ed25519PrivateKey]]:
    """Region -> key id -> private key, for every key file in ``keys_dir``."""
    held: dict[str, dict[str, Ed25519PrivateKey]] = {}
    if not keys_dir.exists():
        return held
    for path in sorted(keys_dir.glob("*/*.pem")):
        region = path.parent.name
        if not _REGION.match(region) or not _KEY_ID.match(path.stem):
            raise ValueError(f"key file {region}/{path.name} is not <region>/<key_id>.pem")
        held.setdefault(region, {})[path.stem] = load_private_key(path.read_bytes())
    for stray in sorted(keys_dir.glob("*.pem")):
        raise ValueError(f"key file {stray.name} is not in a region folder")
    return held


def custody_problems(keys_dir: Path, served: set[str]) -> list[str]:
    """What in ``keys_dir`` breaks key custody: a private key of a region not served."""
    return [
        f"the key directory holds a private key of region {region}, which this deployment "
        "does not serve"
        for region in sorted(held_keys(keys_dir))
        if region not in served
    ]


class RegionSigner:
    """Signs this deployment's documents with its own regions' current keys only."""

    def __init__(
        self, keys_dir: Path, served: set[str], registry: KeyRegistrySource | KeyRegistry
    ) -> None:
        self._keys_dir = keys_dir
        self._served = frozenset(served)
        self._registry = registry
        self._held: dict[str, dict[str, Ed25519PrivateKey]] = {}

    def current_key_id(self, region: str, now: datetime | None = None) -> str:
        return self._key(region, now or datetime.now(UTC))[0]

    def sign(self, envelope: Envelope) -> Envelope:
        key_id, key = self._key(envelope.from_region, envelope.sent_at)
        return sign_envelope(envelope, key, key_id=key_id)

    @property
    def served(self) -> frozenset[str]:
        """The regions this deployment signs for."""
        return self._served

    def sign_bytes(self, region: str, data: bytes, at: datetime) -> tuple[str, str]:
        """Sign ``data`` (a document that is not an envelope, e.g. an audit record) with
        ``region``'s key current at ``at``; returns ``(key_id, base64 signature)``.

        ``key_id`` and ``at`` are not part of ``data`` unless the caller puts them there:
        a document that carries them should (``KeyRegistry.verify_bytes`` checks the key
        against the claimed signing time). Raises ``KeyCustodyError`` like ``sign``.
        """
        key_id, key = self._key(region, at)
        return key_id, base64.b64encode(key.sign(data)).decode("ascii")

    def _key(self, region: str, now: datetime) -> tuple[str, Ed25519PrivateKey]:
        if region not in self._served:
            raise KeyCustodyError(f"this deployment does not serve region {region}")
        registry = (
            self._registry.current()
            if isinstance(self._registry, KeyRegistrySource)
            else self._registry
        )
        entry = registry.signing_entry(region, now, self._held.get(region, {}))
        if entry is None:
            self._held = held_keys(self._keys_dir)  # a key added since: read the folder again
            entry = registry.signing_entry(region, now, self._held.get(region, {}))
        if entry is None:
            raise KeyCustodyError(f"no registered, valid key of region {region} is held here")
        key = self._held[region][entry.key_id]
        if public_key_b64(key) != entry.public_key:
            raise KeyCustodyError(f"key {entry.key_id} does not match its registry entry")
        return entry.key_id, key


class KeyRegistrySource:
    """The registry file, read again when it changes (a rotation or revocation is
    published without a restart). A changed file that does not verify is refused and the
    last good registry stays in force."""

    def __init__(
        self, path: Path, platform_public_key: str, high_water_file: Path | None = None
    ) -> None:
        self._path = path
        self._platform_public_key = platform_public_key
        # The newest issued_at accepted so far, kept across restarts: a registry the
        # operator signed earlier (before a revocation) is never taken back.
        self._high_water_file = high_water_file
        self._newest = _read_instant(high_water_file)
        self._stamp: tuple[int, int] | None = None
        self._registry: KeyRegistry | None = None
        self.current()

    def current(self) -> KeyRegistry:
        stamp = _stamp(self._path)
        if stamp != self._stamp or self._registry is None:
            try:
                document = json.loads(self._path.read_text(encoding="utf-8"))
                registry = parse_registry(document, self._platform_public_key)
                if self._newest is not None and registry.issued_at < self._newest:
                    raise KeyRegistryError(
                        f"the registry issued at {_iso(registry.issued_at)} is older than the "
                        f"one in force ({_iso(self._newest)}): a rollback is refused"
                    )
            except (OSError, ValueError) as exc:
                if self._registry is None:
                    raise KeyRegistryError(f"key registry {self._path}: {exc}") from exc
                log.error("key registry change refused, the previous one stays: %s", exc)
            else:
                self._registry = registry
                self._remember(registry.issued_at)
            self._stamp = stamp
        assert self._registry is not None
        return self._registry

    def _remember(self, issued_at: datetime) -> None:
        if self._newest is not None and issued_at <= self._newest:
            return
        self._newest = issued_at
        if self._high_water_file is not None:
            try:
                self._high_water_file.parent.mkdir(parents=True, exist_ok=True)
                tmp = self._high_water_file.with_suffix(".tmp")
                tmp.write_text(_iso(issued_at) or "", encoding="ascii")
                os.replace(tmp, self._high_water_file)
            except OSError as exc:
                # Still refused in this process; only a restart could be rolled back.
                log.error("registry high-water mark not saved: %s", exc)

    def verify(self, envelope: Envelope, now: datetime) -> None:
        self.current().verify(envelope, now)

    def verify_bytes(
        self,
        region: str,
        key_id: str,
        data: bytes,
        signature: str,
        signed_at: datetime,
        now: datetime,
    ) -> None:
        self.current().verify_bytes(region, key_id, data, signature, signed_at, now)


def _read_instant(path: Path | None) -> datetime | None:
    if path is None or not path.exists():
        return None
    return _instant(path.read_text(encoding="ascii").strip(), "registry high-water mark")


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def with_entry(registry: KeyRegistry, entry: KeyEntry) -> KeyRegistry:
    """A registry with ``entry`` added (or replacing the entry of the same key id)."""
    kept = tuple(
        e for e in registry.entries if (e.region, e.key_id) != (entry.region, entry.key_id)
    )
    return replace(registry, entries=(*kept, entry), _by_id={})
