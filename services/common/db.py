"""Database engines: SQLite (embedded default) or PostgreSQL, same models."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, SQLModel, create_engine

# About 30 s in all, as long as busy_timeout would have waited.
WAL_SWITCH_ATTEMPTS = 25


def make_engine(url: str) -> Engine:
    """An engine with SQLite tuned for several processes (API and worker) on one file."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            # A database error's text never carries the statement's values (an ID number,
            # a name): it can end up in a log line or a Temporal failure.
            hide_parameters=True,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # pysqlite would BEGIN only before the first INSERT/UPDATE/DELETE, so a read
            # before it sat outside the transaction and a read-then-write could overwrite
            # another connection's commit. SQLAlchemy's documented recipe: the driver
            # begins nothing, _begin_immediate below does.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            # busy_timeout waits for a lock instead of failing at once.
            cursor.execute("PRAGMA busy_timeout=30000")
            # WAL lets the API read while the worker writes.
            _switch_to_wal(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "before_cursor_execute")
        def _begin_immediate(
            connection: Connection, cursor: Any, statement: str, *_args: Any
        ) -> None:
            # Each transaction begins IMMEDIATE, before its first statement: that takes the
            # write lock at once, waiting up to busy_timeout. A deferred transaction that
            # read and then writes after another connection committed fails at once with
            # "database is locked" (a WAL snapshot cannot be upgraded; busy_timeout does not
            # apply), and the worker runs activities in threads, so read-then-write
            # transactions of one process overlap. A transaction that begins itself
            # (migrate.py's lock) is left to do so.
            if connection.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
                return
            if not statement.lstrip().upper().startswith("BEGIN"):
                cursor.execute("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, hide_parameters=True)


def _switch_to_wal(cursor: Any) -> None:
    """``PRAGMA journal_mode=WAL``, again while another process holds the write lock: on a
    file still in rollback mode (the side's API and worker opening a fresh database at
    once), SQLite answers "database is locked" at once instead of waiting (busy_timeout is
    not applied where waiting could deadlock), so the switch is tried again."""
    for attempt in range(WAL_SWITCH_ATTEMPTS):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == WAL_SWITCH_ATTEMPTS - 1:
                raise
            time.sleep(0.1 * (attempt + 1))


def create_tables(engine: Engine, tables: list[type[SQLModel]]) -> None:
    """Create the given tables only (both sides' models share one metadata): for tests
    and tools that need a few tables. The services' schema comes from their migrations
    (services/common/migrate.py), which also adopt databases this function made.

    The API and the worker of a side start together on a fresh database; when the other
    process creates a table between our check and our CREATE, check again.
    """
    for attempt in range(10):
        try:
            SQLModel.metadata.create_all(engine, tables=[t.__table__ for t in tables])  # type: ignore[attr-defined]
            _add_missing_nullable_columns(engine, tables)
            return
        except OperationalError as exc:
            racing = any(m in str(exc) for m in ("already exists", "duplicate column"))
            if not racing or attempt == 9:
                raise
            time.sleep(0.2)


def _add_missing_nullable_columns(engine: Engine, tables: list[type[SQLModel]]) -> None:
    """Bring a database made by an earlier version up to date with columns added since
    (all nullable), as the services did before migrations (kept for create_tables' users)."""
    inspector = inspect(engine)
    for model in tables:
        table = model.__table__  # type: ignore[attr-defined]
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present or not column.nullable:
                continue
            kind = column.type.compile(dialect=engine.dialect)
            with engine.begin() as connection:
                connection.execute(
                    text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}')
                )


def serialise_on(session: Session, key: str) -> None:
    """Hold ``key`` until this transaction ends: another transaction asking for the same
    key waits (a check and the write it decides, made atomic across threads and
    processes). PostgreSQL: a transaction advisory lock; SQLite needs none, every
    transaction there begins IMMEDIATE and so runs alone (make_engine)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
        )


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
