"""The worker runs activities in threads (asyncio.to_thread) against one SQLite file: a
transaction that reads and then writes must neither fail ("database is locked") nor lose
another thread's write (services/common/db.py begins SQLite transactions IMMEDIATE)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from services.common import db
from services.common.db import make_engine, session_scope

pytestmark = pytest.mark.unit

THREADS = 8
ROUNDS = 25


def test_read_then_write_transactions_in_threads_neither_fail_nor_lose_updates(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'concurrent.db'}")
    with session_scope(engine) as session:
        session.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, value INTEGER)"))
        session.execute(text("INSERT INTO counter (id, value) VALUES (1, 0)"))
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def bump() -> None:
        start.wait()
        for _ in range(ROUNDS):
            try:
                # Read, then write what was read plus one: the shape of the records'
                # balance updates and the timeline's next sequence.
                with session_scope(engine) as session:
                    value = session.execute(
                        text("SELECT value FROM counter WHERE id = 1")
                    ).scalar_one()
                    session.execute(
                        text("UPDATE counter SET value = :value WHERE id = 1"), {"value": value + 1}
                    )
            except Exception as error:  # collected: an assertion in a thread would be lost
                errors.append(error)

    workers = [threading.Thread(target=bump) for _ in range(THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    with session_scope(engine) as session:
        final = session.execute(text("SELECT value FROM counter WHERE id = 1")).scalar_one()
    engine.dispose()
    assert [type(error).__name__ for error in errors] == []
    assert final == THREADS * ROUNDS


class _LockedCursor:
    """A cursor whose journal-mode switch finds the file locked ``locked`` times."""

    def __init__(self, locked: int, error: str = "database is locked") -> None:
        self.locked = locked
        self.error = error
        self.calls = 0

    def execute(self, statement: str) -> None:
        self.calls += 1
        if self.calls <= self.locked:
            raise sqlite3.OperationalError(self.error)


def test_the_switch_to_wal_is_tried_again_while_another_process_holds_the_lock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The side's API and worker open a fresh file at once: SQLite answers "database is
    locked" to the switch at once (no busy wait), so a start-up must not die of it."""
    monkeypatch.setattr("services.common.db.time.sleep", lambda _s: None)
    cursor = _LockedCursor(locked=3)
    db._switch_to_wal(cursor)
    assert cursor.calls == 4
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        db._switch_to_wal(_LockedCursor(locked=db.WAL_SWITCH_ATTEMPTS))
    other = _LockedCursor(locked=1, error="disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk"):
        db._switch_to_wal(other)
    assert other.calls == 1
