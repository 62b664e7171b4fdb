"""The platform operator's part, played locally (``make run`` and the tests only).

In production the platform operator alone holds its signing key and publishes the
registry; each agency sends it the public entry of a new key (``python -m contracts.keys
generate``). Locally one trust folder stands in for the operator: ``platform.pem`` (its
key), ``platform.pub`` and the signed ``registry.json``. A deployment that starts in the
local demo enters keys for the regions it serves, each into its own key directory; the
registry is rewritten under a file lock, so deployments starting together add their keys
without losing each other's.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts.envelope import Envelope
from contracts.keyring import (
    KeyEntry,
    KeyRegistry,
    parse_registry,
    private_key_path,
    sign_registry,
    with_entry,
    write_private_key,
)
from contracts.signing import generate_keypair, load_private_key, public_key_b64, sign_envelope

# Local keys are valid from long before any demo case was signed.
LOCAL_NOT_BEFORE = datetime(2020, 1, 1, tzinfo=UTC)


def platform_key(trust_dir: Path) -> Ed25519PrivateKey:
    """The local platform operator's key, created on first use (mode 0600)."""
    path = trust_dir / "platform.pem"
    trust_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        pem, public = generate_keypair()
        fd, tmp = tempfile.mkstemp(dir=trust_dir, prefix=".platform.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(pem)
        try:
            os.link(tmp, path)
            (trust_dir / "platform.pub").write_text(public + "\n", encoding="ascii")
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return load_private_key(path.read_bytes())


def platform_public_key(trust_dir: Path) -> str:
    return public_key_b64(platform_key(trust_dir))


@contextmanager
def _locked(trust_dir: Path) -> Iterator[None]:
    trust_dir.mkdir(parents=True, exist_ok=True)
    with open(trust_dir / "registry.lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def read_registry(registry_file: Path, platform_public: str) -> KeyRegistry:
    if not registry_file.exists():
        return KeyRegistry((), datetime.now(UTC))
    return parse_registry(json.loads(registry_file.read_text(encoding="utf-8")), platform_public)


def publish(registry_file: Path, registry: KeyRegistry, key: Ed25519PrivateKey) -> None:
    """Sign and write the registry atomically (a reader sees the old or the new file)."""
    registry_file.parent.mkdir(parents=True, exist_ok=True)
    document = sign_registry(registry, key)
    fd, tmp = tempfile.mkstemp(dir=registry_file.parent, prefix=".registry.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(document, handle, ensure_ascii=False, indent=1)
    os.replace(tmp, registry_file)


def enrol_local_regions(registry_file: Path, keys_dir: Path, regions: Iterable[str]) -> None:
    """Give each region a key in ``keys_dir`` (its own) and enter it in the registry,
    unless the folder already holds a key the registry lists for it."""
    trust_dir = registry_file.parent
    with _locked(trust_dir):
        key = platform_key(trust_dir)
        registry = read_registry(registry_file, public_key_b64(key))
        changed = False
        for region in sorted(set(regions)):
            key_id = local_key_id(region)
            public = write_private_key(keys_dir, region, key_id)
            listed = registry.find(region, key_id)
            if listed is not None and listed.public_key == public:
                continue
            # Another deployment's folder held this id before (a test re-created its own
            # keys): the entry follows the key actually on disk here.
            registry = with_entry(
                registry,
                KeyEntry(region, key_id, public, not_before=LOCAL_NOT_BEFORE),
            )
            changed = True
        if changed or not registry_file.exists():
            publish(registry_file, KeyRegistry(registry.entries, datetime.now(UTC)), key)


def local_key_id(region: str) -> str:
    return f"{region}-local"


def sign_locally(keys_dir: Path, envelope: Envelope) -> Envelope:
    """Sign as the sender region's local key in ``keys_dir`` (demo and test peers)."""
    region = envelope.from_region
    key_id = local_key_id(region)
    key = load_private_key(private_key_path(keys_dir, region, key_id).read_bytes())
    return sign_envelope(envelope, key, key_id=key_id)
