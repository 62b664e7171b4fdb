"""The worker runs activities in threads (asyncio.to_thread) against one SQLite file: a
transaction that reads and then writes must neither fail ("database is locked") nor lose
another thread's write (services/common/db.py begins SQLite transactions IMMEDIATE)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text

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
