"""The outgoing database's migration history (see services/common/migrate.py)."""
