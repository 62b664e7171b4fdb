"""The servers under the services killed (kill -9) or frozen (SIGSTOP) while cases are in
flight, then brought back: every case still ends once, with its money moved once.

These faults are destructive: they hit the fault suite's own Kafka broker and Temporal dev
server (the ``dedicated`` fixture in tests/faults/conftest.py), never the session's.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time

import pytest

from harness.agencies import AgencyStack
from harness.invariants import wait_for_invariants
from tests.faults.conftest import (
    Dedicated,
    FaultFigures,
    start_cases,
    terminal_count,
    wait_for,
)

pytestmark = pytest.mark.faults

# FastStream's consumer session timeout (session_timeout_ms default): a broker frozen for
# longer makes the group coordinator drop every member when it wakes up.
SESSION_TIMEOUT_SECONDS = 10


def gone(pid: int) -> bool:
    """The process has exited and been reaped (a zombie still answers signal 0, and the
    deploy scripts would take it for a server still starting)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def kill_hard(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def duplicates_seen(stack: AgencyStack) -> int:
    """Redeliveries both consumers recognised (and ignored) so far."""
    pattern = re.compile(r"duplicate \w+ \S+ ignored")
    return sum(
        len(pattern.findall((stack.log_dir / f"{side}-api.log").read_text(errors="replace")))
        for side in ("incoming", "outgoing")
    )


async def settle_and_record(
    stack: AgencyStack,
    cases: list[str],
    figures: FaultFigures,
    fault_at: float,
    duplicates_before: int,
) -> None:
    """After a server fault: every case completes on both sides with I1-I3 intact; the
    recovery time and the redeliveries the consumers ignored go into the figures."""
    report = await wait_for_invariants(stack, cases, timeout=240)
    figures.recovery_seconds = time.monotonic() - fault_at
    figures.checked(report)
    assert set(report.states.values()) == {("completed", "completed")}
    figures.duplicates_attempted = figures.duplicates_blocked = (
        duplicates_seen(stack) - duplicates_before
    )


async def test_kafka_broker_killed_and_restarted_loses_nothing(
    dedicated: Dedicated, figures: FaultFigures
) -> None:
    figures.fault = "kafka broker kill -9, restarted" + figures.suffix
    stack = dedicated.stack
    cases = await start_cases(stack, 3)
    duplicates_before = duplicates_seen(stack)
    pid = dedicated.kafka_pid
    kill_hard(pid)
    killed_at = time.monotonic()
    await wait_for(lambda: gone(pid), 30, "the broker to die")
    figures.cases_affected = len(cases) - terminal_count(stack, cases)
    await asyncio.sleep(3)  # documents and receipts pile up against a dead broker
    await asyncio.to_thread(dedicated.kafka.start)
    figures.notes["broker_down_seconds"] = round(time.monotonic() - killed_at, 1)

    await settle_and_record(stack, cases, figures, killed_at, duplicates_before)


async def test_kafka_broker_frozen_past_the_session_timeout_loses_nothing(
    dedicated: Dedicated, figures: FaultFigures
) -> None:
    figures.fault = f"kafka broker SIGSTOP {SESSION_TIMEOUT_SECONDS + 4} s" + figures.suffix
    stack = dedicated.stack
    cases = await start_cases(stack, 3)
    duplicates_before = duplicates_seen(stack)
    pid = dedicated.kafka_pid
    os.kill(pid, signal.SIGSTOP)
    frozen_at = time.monotonic()
    try:
        figures.cases_affected = len(cases) - terminal_count(stack, cases)
        # Longer than the consumers' session timeout: on waking, the broker finds every
        # member's session expired and rebalances; uncommitted records come again.
        await asyncio.sleep(SESSION_TIMEOUT_SECONDS + 4)
    finally:
        os.kill(pid, signal.SIGCONT)

    await settle_and_record(stack, cases, figures, frozen_at, duplicates_before)


async def test_temporal_dev_server_killed_and_restarted_with_its_database(
    dedicated: Dedicated, figures: FaultFigures
) -> None:
    figures.fault = "temporal kill -9, restarted on its db" + figures.suffix
    stack = dedicated.stack
    cases = await start_cases(stack, 3)
    duplicates_before = duplicates_seen(stack)
    pid = dedicated.temporal_pid
    kill_hard(pid)
    killed_at = time.monotonic()
    await wait_for(lambda: gone(pid), 30, "the dev server to die")
    figures.cases_affected = len(cases) - terminal_count(stack, cases)
    await asyncio.sleep(2)  # signals, activity results and polls fail meanwhile
    await asyncio.to_thread(dedicated.temporal.start)  # same --db-filename: nothing lost
    figures.notes["server_down_seconds"] = round(time.monotonic() - killed_at, 1)

    await settle_and_record(stack, cases, figures, killed_at, duplicates_before)
