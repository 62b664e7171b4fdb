"""Schema migrations with Alembic, for whichever database its caller hands it.

A database's :class:`History` names its revisions (``<name>_0001`` ...), the folder they
live in and the models at head; each service passes its own (the agencies in
services/common/bootstrap.py from the tables they start with, the audit store its
``AUDIT_HISTORY``), and services/cli/migrate.py lists the three for the operator's
command. Nothing here knows a side's or the audit's tables. SQLite and PostgreSQL run the
same migrations.

Each service calls :func:`upgrade` at start-up. It is idempotent and safe when several
processes start at once: PostgreSQL serialises them with an advisory lock, SQLite with
its database write lock (``BEGIN IMMEDIATE``); the whole upgrade is one transaction, so
the replica that waited finds the database at head and does nothing. A database made
by the services before migrations existed (their tables, no ``alembic_version``) is
stamped at the revision whose schema it matches exactly, then upgraded; one that matches
none is left alone with an error naming the differences.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, MetaData, Table, create_engine, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool
from sqlmodel import SQLModel

# The Alembic environment (env.py) and revision template every history shares.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Where this repository keeps its histories, one folder per database.
VERSIONS_DIR = MIGRATIONS_DIR / "versions"
LOCK_WAIT_SECONDS = 300.0

log = logging.getLogger("medtransfer.migrate")
# Alembic narrates every step at INFO; the services log one line per change instead.
logging.getLogger("alembic").setLevel(logging.WARNING)


@dataclass(frozen=True)
class History:
    """One database's migration history: ``name`` prefixes its revision ids and keys its
    lock, ``versions`` is the folder of its revisions, ``models`` are its tables at head
    (all services' models share one SQLModel metadata, so each database names its own)."""

    name: str
    versions: Path
    models: tuple[type[SQLModel], ...]

    @property
    def baseline(self) -> str:
        """The first revision: exactly the tables the services created before migrations."""
        return f"{self.name}_0001"

    def tables(self) -> list[Table]:
        return [model.__table__ for model in self.models]  # type: ignore[attr-defined]

    def metadata(self) -> MetaData:
        metadata = MetaData()
        for table in self.tables():
            table.to_metadata(metadata)
        return metadata


class MigrationError(RuntimeError):
    """The database cannot be brought to head safely (the message says why and what to do)."""


def alembic_config(history: History, connection: Connection | None = None) -> Config:
    """An Alembic configuration for one history, built here (the repository's alembic.ini
    serves Alembic's own command line, not the services)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(history.versions))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.attributes["connection"] = connection
    config.attributes["target_metadata"] = history.metadata()
    return config


def head_revision(history: History) -> str:
    head = ScriptDirectory.from_config(alembic_config(history)).get_current_head()
    if head is None:
        raise MigrationError(f"the {history.name} history has no revisions")
    return head


# --- locking -------------------------------------------------------------------------------
def _lock_key(name: str) -> int:
    # A stable signed 64-bit key per history, for pg_advisory_lock.
    digest = hashlib.sha256(f"medtransfer-migrate-{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def _locked(engine: Engine, name: str) -> Iterator[Connection]:
    """A connection inside a transaction that no other migrating process can enter.

    The caller commits; leaving without a commit rolls everything back."""
    with engine.connect() as connection:
        dialect = connection.dialect.name
        if dialect == "sqlite":
            # Takes the write lock now (a second process waits on busy_timeout), so the
            # look at the schema and the changes happen under one lock. SQLite's DDL is
            # transactional: a failed upgrade leaves the file as it was.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            yield connection
            return
        if dialect != "postgresql":
            raise MigrationError(f"unsupported database {dialect!r} (SQLite or PostgreSQL)")
        key = _lock_key(name)
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while not connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
            connection.rollback()
            if time.monotonic() > deadline:
                raise MigrationError(
                    f"another process has held the {name} migration lock for "
                    f"{LOCK_WAIT_SECONDS:.0f} s (pg_advisory_lock {key}); is a migration stuck?"
                )
            time.sleep(0.5)
        connection.commit()  # the session-level lock outlives this transaction
        try:
            yield connection
        finally:
            connection.rollback()
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            connection.commit()


# --- the schema as a comparable shape ------------------------------------------------------
Shape = dict[str, dict[str, Any]]


def _shape(connection: Connection, tables: list[str]) -> Shape:
    """Columns (nullability and type family), primary key, unique column sets and plain
    indexes of ``tables``, in a form that is the same for SQLite and PostgreSQL (names
    of unnamed constraints differ by dialect, so uniques are compared by columns)."""
    inspector = inspect(connection)
    shape: Shape = {}
    for table in tables:
        if not inspector.has_table(table):
            continue
        columns = {
            c["name"]: (c["nullable"], c["type"]._type_affinity.__name__)  # type: ignore[union-attr]
            for c in inspector.get_columns(table)
        }
        uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)}
        indexes = set()
        for index in inspector.get_indexes(table):
            names = tuple(str(c) for c in index["column_names"])
            if index["unique"]:
                uniques.add(names)
            else:
                indexes.add((index["name"], names))
        shape[table] = {
            "columns": columns,
            "primary_key": tuple(inspector.get_pk_constraint(table)["constrained_columns"]),
            "unique": uniques,
            "indexes": indexes,
        }
    return shape


@cache
def revision_shape(history: History, revision: str) -> Shape:
    """The schema at ``revision``, found by running the history on an in-memory SQLite."""
    engine = create_engine("sqlite://", poolclass=StaticPool)
    try:
        with engine.connect() as connection:
            config = alembic_config(history, connection)
            command.upgrade(config, revision)
            connection.commit()
            names = [t for t in inspect(connection).get_table_names() if t != "alembic_version"]
            return _shape(connection, names)
    finally:
        engine.dispose()


def _differences(expected: Shape, actual: Shape) -> list[str]:
    problems: list[str] = []
    for table, want in expected.items():
        have = actual.get(table)
        if have is None:
            problems.append(f"table {table} is missing")
            continue
        for column, spec in want["columns"].items():
            if column not in have["columns"]:
                problems.append(f"{table}.{column} is missing")
            elif have["columns"][column] != spec:
                problems.append(
                    f"{table}.{column} is (nullable, type) {have['columns'][column]}, "
                    f"expected {spec}"
                )
        for column in sorted(set(have["columns"]) - set(want["columns"])):
            problems.append(f"{table}.{column} is not in the baseline")
        for key in ("primary_key", "unique", "indexes"):
            if have[key] != want[key]:
                problems.append(f"{table}: {key} is {have[key]}, expected {want[key]}")
    return problems


# --- operations ----------------------------------------------------------------------------
def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, history: History, revision: str = "head") -> str:
    """Bring the database of ``history`` to ``revision``; returns what was done: ``created`` (an empty
    database), ``adopted`` (made before migrations: checked and stamped, then upgraded),
    ``upgraded``, ``current`` (nothing to do) or ``newer`` (a later release migrated it)."""
    database = history.name
    with _locked(engine, database) as connection:
        config = alembic_config(history, connection)
        names = set(inspect(connection).get_table_names())
        before = current_revision(connection) if "alembic_version" in names else None
        if before is not None and not _known(config, before):
            # During a rolling upgrade an old replica may (re)start after the new release
            # migrated: migrations keep the previous release working, so it runs as is.
            log.warning(
                "the %s database is at %s, a revision this release does not know (a newer "
                "release migrated it); starting without migrating",
                database,
                before,
            )
            return "newer"
        if before is None and names & set(revision_shape(history, history.baseline)):
            command.stamp(config, _unversioned_revision(connection, history))
            outcome = "adopted"
        elif before is None:
            outcome = "created"
        else:
            outcome = "upgraded"
        command.upgrade(config, revision)
        after = current_revision(connection)
        connection.commit()
    if outcome != "upgraded" or after != before:
        log.info("%s database %s, now at %s (was %s)", database, outcome, after, before)
    if revision == "head":
        # A model changed without a migration: say so at start-up, not at the first
        # query that needs the new column.
        drift = _model_drift(engine, history)
        if drift:
            log.warning(
                "the %s schema at head differs from the models (a migration is missing: "
                "python -m services.cli.migrate revision %s -m ...): %s",
                database,
                database,
                "; ".join(drift),
            )
    return "current" if outcome == "upgraded" and after == before else outcome


def _known(config: Config, revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(config).get_revision(revision) is not None
    except CommandError:
        return False


def _model_drift(engine: Engine, history: History) -> list[str]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return [repr(diff) for diff in compare_metadata(context, history.metadata())]


def _unversioned_revision(connection: Connection, history: History) -> str:
    """The revision a database made before migrations existed is at: the newest one whose
    schema it matches exactly (the services' create_all, and the nullable columns they
    added on their own, made the baseline or, for a column added since, a later one)."""
    script = ScriptDirectory.from_config(alembic_config(history))
    revisions = [r.revision for r in script.walk_revisions()]  # newest first
    for revision in revisions:
        expected = revision_shape(history, revision)
        if not _differences(expected, _shape(connection, sorted(expected))):
            return revision
    baseline = revision_shape(history, history.baseline)
    problems = _differences(baseline, _shape(connection, sorted(baseline)))
    raise MigrationError(
        f"the {history.name} database has tables but no migration history, and they match no "
        f"revision, so it was not stamped; against the first revision {history.baseline}: "
        f"{'; '.join(problems)}"
    )


def check(engine: Engine, history: History) -> list[str]:
    """Problems that keep the database of ``history`` from matching the models: not at head, or a
    difference between the migrated schema and the models (a migration is missing)."""
    with engine.connect() as connection:
        at = current_revision(connection)
        head = head_revision(history)
    if at != head:
        return [f"at revision {at or 'none'}, head is {head}: run upgrade"]
    return _model_drift(engine, history)


def new_revision(history: History, message: str, autogenerate: bool = True) -> Path:
    """Write the next migration of ``history``: autogenerated against a scratch SQLite
    upgraded to head (review it: Alembic does not see renames or data changes)."""
    head = ScriptDirectory.from_config(alembic_config(history)).get_current_head()
    number = int(head.rsplit("_", 1)[1]) + 1 if head else 1
    engine = create_engine("sqlite://", poolclass=StaticPool)
    try:
        with engine.connect() as connection:
            config = alembic_config(history, connection)
            config.attributes["skip_empty"] = autogenerate
            command.upgrade(config, "head")
            script = command.revision(
                config,
                message=message,
                autogenerate=autogenerate,
                rev_id=f"{history.name}_{number:04d}",
            )
    finally:
        engine.dispose()
    if script is None or isinstance(script, list):
        raise MigrationError(
            f"the {history.name} models match head: nothing written (--empty for a migration "
            "written by hand, e.g. a data change)"
        )
    return Path(script.path)
