"""Attacks on the public-key registry (contracts/keyring.py).

1. Rollback: ``KeyRegistrySource`` accepts any registry the operator ever signed, also
   one older than the registry in force. Putting yesterday's file back (a stale mirror,
   a config-management rollback, anyone who can write the file or serve it) un-revokes a
   stolen key: its forgeries verify again.
2. An expired key never dies: ``valid_at(sent_at)`` plus a ``sent_at`` the signer chooses
   means a key that ended a year ago (rotated out, not revoked; its holder may have
   decommissioned the HSM or left it on an old disk) still signs documents that every
   deployment accepts -- the replay window only logs a warning.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from contracts.documents import Reminder
from contracts.envelope import Envelope
from contracts.keyring import (
    KeyEntry,
    KeyRegistry,
    KeyRegistrySource,
    private_key_path,
    write_private_key,
)
from contracts.local_trust import platform_key, publish
from contracts.signing import SignatureInvalid, load_private_key, sign_envelope

pytestmark = pytest.mark.unit

XIAN, PINGLIANG = "610100", "620800"
T0 = datetime(2027, 1, 1, tzinfo=UTC)


def envelope(sent_at: datetime) -> Envelope:
    return Envelope.wrap(
        Reminder(stage="transfer_out", due_on=sent_at.date(), message_en="due", message_zh="到期"),
        case_id="C-1",
        step="reminder-1",
        from_region=PINGLIANG,
        to_region=XIAN,
        sent_at=sent_at,
    )


def key(keys_dir: Path, key_id: str, **changes: object) -> KeyEntry:
    public = write_private_key(keys_dir, PINGLIANG, key_id)
    entry = KeyEntry(PINGLIANG, key_id, public, not_before=T0 - timedelta(days=365))
    return KeyEntry(**{**entry.__dict__, **changes})


def signed(keys_dir: Path, entry: KeyEntry, sent_at: datetime) -> Envelope:
    private = load_private_key(private_key_path(keys_dir, PINGLIANG, entry.key_id).read_bytes())
    return sign_envelope(envelope(sent_at), private, key_id=entry.key_id)


def test_an_older_signed_registry_does_not_replace_a_newer_one(tmp_path: Path) -> None:
    trust = tmp_path / "trust"
    operator = platform_key(trust)
    registry_file = trust / "registry.json"
    stolen = key(tmp_path / "keys", "620800-stolen")
    publish(registry_file, KeyRegistry((stolen,), T0), operator)
    before_revocation = registry_file.read_text(encoding="utf-8")  # public, kept by anyone
    source = KeyRegistrySource(registry_file, (trust / "platform.pub").read_text().strip())

    revoked = KeyEntry(**{**stolen.__dict__, "revoked_at": T0 + timedelta(hours=1)})
    publish(registry_file, KeyRegistry((revoked,), T0 + timedelta(hours=1)), operator)
    forged = signed(tmp_path / "keys", stolen, T0 + timedelta(hours=2))
    with pytest.raises(SignatureInvalid, match="revoked"):
        source.verify(forged, T0 + timedelta(hours=2))

    # The attacker puts the operator's own, genuinely signed, older registry back.
    registry_file.write_text(before_revocation, encoding="utf-8")
    with pytest.raises(SignatureInvalid, match="revoked"):
        source.verify(forged, T0 + timedelta(hours=3))


def test_a_key_that_ended_long_ago_cannot_sign_backdated_documents(tmp_path: Path) -> None:
    ended = key(tmp_path, "620800-2026", not_after=T0)
    current = key(tmp_path, "620800-2027", not_before=T0)
    registry = KeyRegistry((ended, current), T0)
    # A year after the rotation, a document "signed" the day before the old key ended.
    forged = signed(tmp_path, ended, T0 - timedelta(days=1))
    with pytest.raises(SignatureInvalid):
        registry.verify(forged, T0 + timedelta(days=365))
