"""Settings of the audit process: the shared ones plus its own database."""

from __future__ import annotations

from pathlib import Path

from contracts.keyring import KeyRegistry, KeyRegistryError, KeyRegistrySource
from services.common.config import Settings


class AuditSettings(Settings):
    """``MEDTRANSFER_AUDIT_DATABASE_URL`` (a SQLAlchemy URL) overrides the default SQLite
    file ``<MEDTRANSFER_DATA_DIR>/audit.db``. The audit store never shares a database with
    either agency: it is the independent witness of what both sides published.

    The emitters' signatures are checked with the public-key registry of the services,
    ``MEDTRANSFER_KEY_REGISTRY_FILE``, verified with ``MEDTRANSFER_PLATFORM_PUBLIC_KEY``
    (in the local demo, ``MEDTRANSFER_LOCAL_DEMO``, the operator's public key may instead be
    read from ``platform.pub`` beside the registry). No private key is ever read.
    """

    audit_database_url: str | None = None

    @property
    def audit_url(self) -> str:
        return self.audit_database_url or f"sqlite:///{self.data_dir / 'audit.db'}"

    def platform_public(self) -> str:
        """The platform operator's public key; raises ``KeyRegistryError`` without one."""
        if self.platform_public_key:
            return self.platform_public_key
        if self.local_demo:
            # Read, never created: the audit process does not play the platform operator.
            path = self.key_registry_file.parent / "platform.pub"
            if path.exists():
                return path.read_text(encoding="ascii").strip()
        raise KeyRegistryError(
            "MEDTRANSFER_PLATFORM_PUBLIC_KEY is not set: the emitters' signatures cannot be checked"
        )

    def key_registry(self, high_water_file: Path | None = None) -> KeyRegistrySource:
        """The public-key registry; raises ``KeyRegistryError`` when it cannot be read.
        ``high_water_file``: where the newest registry's issue time is kept, so an older
        one (from before a revocation) is refused, also after a restart."""
        return KeyRegistrySource(self.key_registry_file, self.platform_public(), high_water_file)

    def lazy_key_registry(self) -> LazyKeyRegistry:
        """The registry, loaded on first use: the consumer may start before the local
        demo's agencies have written it; a record that comes while it cannot be read
        fails and is redelivered."""
        return LazyKeyRegistry(self)


class LazyKeyRegistry:
    """A ``KeyRegistrySource`` built on first use; until then every use tries again."""

    def __init__(self, settings: AuditSettings) -> None:
        self._settings = settings
        self._source: KeyRegistrySource | None = None

    def current(self) -> KeyRegistry:
        if self._source is None:
            self._settings.data_dir.mkdir(parents=True, exist_ok=True)
            high_water = self._settings.data_dir / "audit-registry-issued-at"
            self._source = self._settings.key_registry(high_water)
        return self._source.current()
