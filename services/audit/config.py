"""Settings of the audit process: the shared ones plus its own database."""

from __future__ import annotations

from services.common.config import Settings


class AuditSettings(Settings):
    """``MEDTRANSFER_AUDIT_DATABASE_URL`` (a SQLAlchemy URL) overrides the default SQLite
    file ``<MEDTRANSFER_DATA_DIR>/audit.db``. The audit store never shares a database with
    either agency: it is the independent witness of what both sides published."""

    audit_database_url: str | None = None

    @property
    def audit_url(self) -> str:
        return self.audit_database_url or f"sqlite:///{self.data_dir / 'audit.db'}"
