"""Two agencies' region keys and the platform-signed registry, in a temporary folder, for
the audit trail's signature tests: agency A serves the outgoing region, agency B the
incoming one; each holds only its own private key."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts.audit_trust import expected_prev_hash, sign_record
from contracts.documents import AuditRecord
from contracts.keyring import (
    KeyEntry,
    KeyRegistry,
    KeyRegistrySource,
    RegionSigner,
    sign_registry,
    write_private_key,
)
from contracts.signing import public_key_b64

OUTGOING_REGION = "620800"
INCOMING_REGION = "610100"
REGION_OF_SIDE = {"outgoing": OUTGOING_REGION, "incoming": INCOMING_REGION}
NOT_BEFORE = datetime(2020, 1, 1, tzinfo=UTC)
T0 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


@dataclass
class AuditTrust:
    registry_file: Path
    platform_public: str
    platform_key: Ed25519PrivateKey
    keys_dirs: dict[str, Path]  # side -> that agency's own key directory
    entries: list[KeyEntry]

    @property
    def registry(self) -> KeyRegistrySource:
        """Public keys only, as a verifier loads them."""
        return KeyRegistrySource(self.registry_file, self.platform_public)

    def signer(self, side: str) -> RegionSigner:
        return RegionSigner(self.keys_dirs[side], {REGION_OF_SIDE[side]}, self.registry)

    def publish(self, entries: list[KeyEntry]) -> None:
        self.entries = entries
        registry = KeyRegistry(tuple(entries), datetime.now(UTC))
        document = sign_registry(registry, self.platform_key)
        self.registry_file.write_text(json.dumps(document), encoding="utf-8")

    def env(self, **extra: str) -> dict[str, str]:
        """What a verifying process needs: the registry and the operator's public key."""
        return {
            "MEDTRANSFER_KEY_REGISTRY_FILE": str(self.registry_file),
            "MEDTRANSFER_PLATFORM_PUBLIC_KEY": self.platform_public,
            "MEDTRANSFER_LOCAL_DEMO": "false",
            **extra,
        }


def make_trust(root: Path) -> AuditTrust:
    platform = Ed25519PrivateKey.generate()
    trust_dir = root / "trust"
    trust_dir.mkdir(parents=True)
    keys_dirs = {side: root / f"keys-{side}" for side in REGION_OF_SIDE}
    entries = []
    for side, region in REGION_OF_SIDE.items():
        key_id = f"{region}-20200101-{side[:3]}"
        public = write_private_key(keys_dirs[side], region, key_id)
        entries.append(KeyEntry(region, key_id, public, NOT_BEFORE))
    trust = AuditTrust(
        trust_dir / "registry.json", public_key_b64(platform), platform, keys_dirs, []
    )
    trust.publish(entries)
    return trust


def content(case_id: str, side: str, sequence: int, status: str = "submitted") -> AuditRecord:
    """The record as a repository builds it: unsigned, no region, no link."""
    return AuditRecord.model_validate(
        {
            "case_id": case_id,
            "side": side,
            "sequence": sequence,
            "event": f"event_{sequence}",
            "status": status,
            "occurred_at": T0 + timedelta(minutes=sequence),
            "detail": {"step": sequence, "note": "转入"},
            "rule": "R12",
        }
    )


def signed(
    trust: AuditTrust,
    case_id: str,
    side: str,
    sequence: int,
    status: str = "submitted",
    at: datetime | None = None,
) -> AuditRecord:
    """The record as its emitter publishes it, linked to ``content(sequence - 1)``."""
    before = content(case_id, side, sequence - 1) if sequence > 1 else None
    return sign_record(
        trust.signer(side),
        content(case_id, side, sequence, status),
        region=REGION_OF_SIDE[side],
        prev_hash=expected_prev_hash(before, sequence),
        at=at or datetime.now(UTC),
    )
