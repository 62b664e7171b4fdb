"""Key custody (issue 13 items 1 and 7): a deployment holds only its own regions' private
keys, verifies with a registry the platform operator signed, selects the key by key_id,
checks it at sent_at and refuses revoked keys; rotation with overlap loses nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from contracts import keys as keys_cli
from contracts.documents import Reminder
from contracts.envelope import Envelope
from contracts.keyring import (
    KeyCustodyError,
    KeyEntry,
    KeyRegistry,
    KeyRegistryError,
    KeyRegistrySource,
    RegionSigner,
    custody_problems,
    parse_registry,
    private_key_path,
    sign_registry,
    write_private_key,
)
from contracts.local_trust import platform_key, publish
from contracts.signing import SignatureInvalid, generate_keypair, load_private_key, sign_envelope
from services.common.config import Settings
from services.common.keys import load_trust

pytestmark = pytest.mark.unit

XIAN, PINGLIANG = "610100", "620800"
T0 = datetime(2027, 1, 1, tzinfo=UTC)


def envelope(sent_at: datetime, from_region: str = PINGLIANG) -> Envelope:
    return Envelope.wrap(
        Reminder(
            stage="transfer_out",
            due_on=sent_at.date(),
            message_en="due soon",
            message_zh="即将到期",
        ),
        case_id="C-1",
        step="reminder-1",
        from_region=from_region,
        to_region=XIAN,
        sent_at=sent_at,
    )


def key(keys_dir: Path, region: str, key_id: str) -> KeyEntry:
    public = write_private_key(keys_dir, region, key_id)
    return KeyEntry(region, key_id, public, not_before=T0 - timedelta(days=365))


def signed(keys_dir: Path, entry: KeyEntry, sent_at: datetime) -> Envelope:
    private = load_private_key(private_key_path(keys_dir, entry.region, entry.key_id).read_bytes())
    return sign_envelope(envelope(sent_at, entry.region), private, key_id=entry.key_id)


def test_a_document_signed_with_another_regions_key_is_refused(tmp_path: Path) -> None:
    pingliang, xian = key(tmp_path, PINGLIANG, "620800-a"), key(tmp_path, XIAN, "610100-a")
    registry = KeyRegistry((pingliang, xian), T0)
    forged = signed(tmp_path, xian, T0).model_copy(update={"from_region": PINGLIANG})
    with pytest.raises(SignatureInvalid, match="no key 610100-a"):
        registry.verify(forged, T0)
    relabelled = sign_envelope(
        envelope(T0),
        load_private_key(private_key_path(tmp_path, XIAN, "610100-a").read_bytes()),
        key_id="620800-a",
    )
    with pytest.raises(SignatureInvalid, match="does not match"):
        registry.verify(relabelled, T0)


def test_an_expired_key_is_refused_for_what_it_signs_after_its_end(tmp_path: Path) -> None:
    old = key(tmp_path, PINGLIANG, "620800-old")
    registry = KeyRegistry((KeyEntry(**{**old.__dict__, "not_after": T0}),), T0)
    with pytest.raises(SignatureInvalid, match="not valid at the signing time"):
        registry.verify(signed(tmp_path, old, T0 + timedelta(seconds=1)), T0 + timedelta(days=1))


def test_a_revoked_key_is_refused_whatever_sent_at_it_claims(tmp_path: Path) -> None:
    stolen = key(tmp_path, PINGLIANG, "620800-stolen")
    revoked = KeyEntry(**{**stolen.__dict__, "revoked_at": T0})
    registry = KeyRegistry((revoked,), T0)
    backdated = signed(tmp_path, stolen, T0 - timedelta(days=3))
    with pytest.raises(SignatureInvalid, match="revoked"):
        registry.verify(backdated, T0 + timedelta(minutes=1))


def test_rotation_with_overlap_accepts_the_old_key_and_signs_with_the_new(
    tmp_path: Path,
) -> None:
    old = key(tmp_path, PINGLIANG, "620800-old")
    new = KeyEntry(**{**key(tmp_path, PINGLIANG, "620800-new").__dict__, "not_before": T0})
    overlap_end = T0 + timedelta(days=7)
    registry = KeyRegistry((KeyEntry(**{**old.__dict__, "not_after": overlap_end}), new), T0)
    # In flight during the overlap (signed with the old key, arriving after it ended).
    registry.verify(signed(tmp_path, old, T0 + timedelta(days=1)), overlap_end + timedelta(days=2))
    signer = RegionSigner(tmp_path, {PINGLIANG}, registry)
    assert signer.current_key_id(PINGLIANG, T0 - timedelta(days=1)) == "620800-old"
    assert signer.current_key_id(PINGLIANG, T0 + timedelta(hours=1)) == "620800-new"
    registry.verify(signer.sign(envelope(T0 + timedelta(hours=1))), T0 + timedelta(hours=1))


def test_a_deployment_refuses_to_sign_for_a_region_it_does_not_serve(tmp_path: Path) -> None:
    xian = key(tmp_path, XIAN, "610100-a")
    signer = RegionSigner(tmp_path, {PINGLIANG}, KeyRegistry((xian,), T0))
    with pytest.raises(KeyCustodyError, match="does not serve region 610100"):
        signer.sign(envelope(T0, XIAN))
    with pytest.raises(KeyCustodyError, match="no registered, valid key"):
        signer.sign(envelope(T0, PINGLIANG))


def test_a_key_directory_holding_another_regions_private_key_stops_the_service(
    tmp_path: Path,
) -> None:
    keys_dir, trust = tmp_path / "keys", tmp_path / "trust"
    write_private_key(keys_dir, PINGLIANG, "620800-a")
    write_private_key(keys_dir, XIAN, "610100-a")
    assert custody_problems(keys_dir, {PINGLIANG}) == [
        "the key directory holds a private key of region 610100, which this deployment "
        "does not serve"
    ]
    settings = Settings(
        keys_dir=keys_dir,
        key_registry_file=trust / "registry.json",
        served_regions=[PINGLIANG],
        local_demo=True,
    )
    with pytest.raises(ValueError, match="region 610100"):
        load_trust(settings, {PINGLIANG})


def test_outside_the_local_demo_nothing_is_created_and_the_platform_key_is_required(
    tmp_path: Path,
) -> None:
    settings = Settings(
        keys_dir=tmp_path / "keys",
        key_registry_file=tmp_path / "trust" / "registry.json",
        served_regions=[PINGLIANG],
    )
    with pytest.raises(ValueError, match="MEDTRANSFER_PLATFORM_PUBLIC_KEY"):
        load_trust(settings, {PINGLIANG})
    assert not (tmp_path / "keys").exists()
    assert not (tmp_path / "trust").exists()


def test_the_registry_must_be_signed_by_the_platform_operator(tmp_path: Path) -> None:
    entry = key(tmp_path, PINGLIANG, "620800-a")
    operator = platform_key(tmp_path / "trust")
    document = sign_registry(KeyRegistry((entry,), T0), operator)
    _, operator_public = generate_keypair()
    with pytest.raises(KeyRegistryError, match="not signed by the platform operator"):
        parse_registry(document, operator_public)
    tampered = {
        **document,
        "keys": [{**document["keys"][0], "revoked_at": None, "key_id": "620800-b"}],
    }
    real_public = (tmp_path / "trust" / "platform.pub").read_text().strip()
    with pytest.raises(KeyRegistryError):
        parse_registry(tampered, real_public)
    assert parse_registry(document, real_public).find(PINGLIANG, "620800-a") == entry


def test_a_published_revocation_takes_effect_without_a_restart_and_a_forged_file_is_refused(
    tmp_path: Path,
) -> None:
    trust = tmp_path / "trust"
    operator = platform_key(trust)
    entry = key(tmp_path, PINGLIANG, "620800-a")
    registry_file = trust / "registry.json"
    publish(registry_file, KeyRegistry((entry,), T0), operator)
    source = KeyRegistrySource(registry_file, (trust / "platform.pub").read_text().strip())
    document = signed(tmp_path, entry, T0)
    source.verify(document, T0)

    publish(
        registry_file,
        KeyRegistry((KeyEntry(**{**entry.__dict__, "revoked_at": T0}),), T0),
        operator,
    )
    with pytest.raises(SignatureInvalid, match="revoked"):
        source.verify(document, T0 + timedelta(seconds=1))

    # A registry rewritten by someone without the operator's key is refused; the last good
    # one (with the revocation) stays in force.
    forged = json.loads(registry_file.read_text())
    forged["keys"][0]["revoked_at"] = None
    registry_file.write_text(json.dumps(forged))
    with pytest.raises(SignatureInvalid, match="revoked"):
        source.verify(document, T0 + timedelta(seconds=2))


def test_the_keys_command_generates_rotates_and_revokes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trust = tmp_path / "trust"
    platform_key(trust)
    registry = str(trust / "registry.json")
    operator = str(trust / "platform.pem")
    public = (trust / "platform.pub").read_text().strip()
    assert keys_cli.main(["generate", "--dir", str(tmp_path / "keys"), "--region", PINGLIANG]) == 0
    entry = json.loads(capsys.readouterr().out)
    assert (
        keys_cli.main(
            [
                "add",
                "--registry",
                registry,
                "--platform-key",
                operator,
                "--entry",
                json.dumps(entry),
            ]
        )
        == 0
    )
    assert (
        keys_cli.main(
            [
                "revoke",
                "--registry",
                registry,
                "--platform-key",
                operator,
                "--key-id",
                entry["key_id"],
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert keys_cli.main(["show", "--registry", registry, "--platform-public-key", public]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["key_id"] == entry["key_id"]
    assert shown["revoked_at"] is not None
    _, stranger = generate_keypair()
    assert keys_cli.main(["show", "--registry", registry, "--platform-public-key", stranger]) == 2


def test_a_rolled_back_registry_is_refused_also_after_a_restart(tmp_path: Path) -> None:
    trust = tmp_path / "trust"
    operator = platform_key(trust)
    public = (trust / "platform.pub").read_text().strip()
    registry_file, high_water = trust / "registry.json", tmp_path / "data" / "registry-issued-at"
    entry = key(tmp_path, PINGLIANG, "620800-a")
    publish(registry_file, KeyRegistry((entry,), T0), operator)
    old = registry_file.read_text()
    revoked = KeyEntry(**{**entry.__dict__, "revoked_at": T0})
    publish(registry_file, KeyRegistry((revoked,), T0 + timedelta(hours=1)), operator)
    KeyRegistrySource(registry_file, public, high_water)
    registry_file.write_text(old)
    with pytest.raises(KeyRegistryError, match="rollback is refused"):
        KeyRegistrySource(registry_file, public, high_water)
