"""A calendar year loaded while a case is open applies to the deadlines the case computes
from then on (R12, R13), recorded as a decision; deadlines already set stay as they are.

Today is 2026-12-02 and the data know 2026 at most: a case accepted in late December
counts its 2027 deadlines without official data until the operator loads 2027. Each test
runs on a test server of its own, because it moves the clock to late December 2026.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from contracts.documents import TransferRequested
from domain.regions import load_region_registry
from services.common import calendar_admin
from services.common.config import Settings
from services.common.policy_context import PolicyContext
from tests.support.workflow_fakes import (
    OUTGOING_REGION,
    FakeCaseStore,
    FakeContextSource,
    InMemoryPlatform,
    running_platform,
    wait_until,
)
from workflows.clock import CHINA_TZ
from workflows.types import CaseContext, CaseEvent, LoadContextInput

pytestmark = [pytest.mark.workflow, pytest.mark.own_server]

D = date.fromisoformat
# Deliberately not the official 2027 arrangement: a year whose 4 January is off, so a
# deadline counted with it differs from one counted without it (1 January is off in both).
TEST_2027 = {
    "year": 2027,
    "version": "test-2027",
    "source": "workflow test fixture, not an official calendar",
    "holidays": ["2027-01-01", "2027-01-04"],
    "makeup_workdays": [],
}


class CalendarDirContext(FakeContextSource):
    """The real PolicyContext reading a calendar directory of the test's, as the services
    read MEDTRANSFER_CALENDAR_DIR; remembers what each load was asked for."""

    def __init__(self, calendar_dir: Path) -> None:
        super().__init__()
        self._policy = PolicyContext(
            Settings(
                calendar_dir=calendar_dir,
                delivery_retry_initial_seconds=60.0,
                delivery_retry_max_seconds=6 * 3600.0,
            ),
            load_region_registry(),
        )
        self.requests: list[LoadContextInput] = []

    def load(self, request: LoadContextInput) -> CaseContext:
        self.requests.append(request)
        return super().load(request)


def install_2027(tmp_path: Path, calendar_dir: Path) -> None:
    """The operator's calendar-load of the (test) 2027 file."""
    source = tmp_path / "2027.json"
    source.write_text(json.dumps(TEST_2027), encoding="utf-8")
    calendar_admin.load(source, calendar_dir)


async def skip_to(env: WorkflowEnvironment, day: date, hour: int = 10) -> None:
    """Skip to ``hour`` o'clock China time on ``day``, a day at a time (a long skip's RPC
    can time out on a loaded machine; a day's is asked again)."""
    target = datetime.combine(day, time(hour), CHINA_TZ)
    if await env.get_current_time() > target:
        pytest.skip(f"the test server's clock is past {target}: the case would not be new")
    while (remaining := target - await env.get_current_time()) > timedelta(0):
        step = min(remaining, timedelta(days=1))
        for attempt in range(3):
            try:
                await env.sleep(step)
                break
            except RPCError:
                if attempt == 2:
                    raise


def decisions(store: FakeCaseStore, rule: str) -> list[CaseEvent]:
    return [e for e in store.events if e.event == "decision" and e.rule == rule]


def calendar_loaded(store: FakeCaseStore, rule: str) -> list[CaseEvent]:
    return [
        e
        for e in decisions(store, rule)
        if str(e.detail["outcome"]).startswith("official calendar loaded")
    ]


async def test_r13_deadline_after_the_sheet_uses_a_calendar_loaded_since_acceptance(
    time_skipping_env: WorkflowEnvironment, client: Client, tmp_path: Path
) -> None:
    calendar_dir = tmp_path / "calendar"
    calendar_dir.mkdir()
    context = CalendarDirContext(calendar_dir)
    await skip_to(time_skipping_env, D("2026-12-20"))
    async with running_platform(time_skipping_env, client, context=context) as platform:
        # The outgoing agency gets the request only once 2027 is loaded: the sheet arrives
        # on 28 December, and its R13 limit runs into 2027.
        platform.hold("incoming", ["TransferRequested"])
        await platform.start_case(D("2026-12-20"))
        store = platform.incoming_store
        await wait_until(lambda: "transfer_request_sent" in store.names())
        sent = store.one("transfer_request_sent")
        # R12/R14 at acceptance: 2027 without data, Monday-Friday minus 1 January.
        assert sent.deadlines == {
            "transfer_out_due": D("2027-01-04"),
            "total_due": D("2027-01-11"),
        }
        assert sent.warnings == ["calendar-fallback-2027"]
        assert calendar_loaded(store, "R13") == []

        await skip_to(time_skipping_env, D("2026-12-27"))
        install_2027(tmp_path, calendar_dir)
        await skip_to(time_skipping_env, D("2026-12-28"))
        await platform.release("incoming")

        assert await platform.results() == ("completed", "completed")
        received = store.one("information_sheet_received")
        assert received.occurred_at.astimezone(CHINA_TZ).date() == D("2026-12-28")
        # R13 with the loaded 2027: 29-31 December, 5-6 January (1 and 4 January off).
        assert received.deadlines["transfer_in_due"] == D("2027-01-06")
        assert received.awaiting is not None
        assert received.awaiting.by == D("2027-01-06")
        # Deadlines set before stay as they were computed, with their warning.
        assert received.deadlines["transfer_out_due"] == D("2027-01-04")
        assert received.deadlines["total_due"] == D("2027-01-11")
        assert "calendar-fallback-2027" in received.warnings

        [loaded] = calendar_loaded(store, "R13")
        assert loaded.detail["outcome"] == "official calendar loaded: 2027"
        explanation_en = str(loaded.detail["explanation_en"])
        explanation_zh = str(loaded.detail["explanation_zh"])
        assert "official working-day calendar for 2027 (version test-2027)" in explanation_en
        assert "deadlines already set stay as they are" in explanation_en
        assert explanation_zh.startswith("2027年官方工作日日历已载入")
        assert "此前已确定的期限保持不变" in explanation_zh
        # Wholly Chinese: no Latin word but the rule id.
        assert not any(c.isascii() and c.isalpha() for c in explanation_zh.replace("R13", ""))
        r13 = [e for e in decisions(store, "R13") if e not in (loaded,)]
        assert [e.detail["outcome"] for e in r13] == ["due 2027-01-06"]
        assert "Monday-Friday" not in str(r13[0].detail["explanation_en"])
        # The decision comes before the deadline it explains.
        assert store.events.index(loaded) < store.events.index(r13[0])
        # The current calendar was fetched once more, for the day the sheet arrived.
        incoming = [r for r in context.requests if r.side == "incoming"]
        assert [r.start for r in incoming] == [D("2026-12-20"), D("2026-12-28")]


async def test_r12_limit_after_a_region_wait_uses_a_calendar_loaded_meanwhile(
    time_skipping_env: WorkflowEnvironment, client: Client, tmp_path: Path
) -> None:
    calendar_dir = tmp_path / "calendar"
    calendar_dir.mkdir()
    context = CalendarDirContext(calendar_dir)
    await skip_to(time_skipping_env, D("2026-12-20"))
    platform = InMemoryPlatform(time_skipping_env, client, context=context)
    async with platform.worker("incoming"), platform.worker("outgoing"):
        try:
            platform.connectivity.disconnected.add(OUTGOING_REGION)
            await platform.start_case(D("2026-12-20"))
            store = platform.incoming_store
            await wait_until(lambda: "waiting_for_region_connection" in store.names())
            # R23's escalation day was counted as the case started, with the calendar it
            # had just loaded (no second fetch; nothing to record).
            assert [r.start for r in context.requests] == [D("2026-12-20")]
            assert calendar_loaded(store, "R23") == []

            await skip_to(time_skipping_env, D("2026-12-27"))
            install_2027(tmp_path, calendar_dir)
            await skip_to(time_skipping_env, D("2026-12-28"), hour=9)
            platform.connectivity.disconnected.clear()  # the region goes live

            assert await platform.results() == ("completed", "completed")
        finally:
            await platform.terminate_open()
    sent = store.one("transfer_request_sent")
    went_live = sent.occurred_at.astimezone(CHINA_TZ).date()
    assert went_live == D("2026-12-28")
    # R12 from the day the region went live, with the loaded 2027: 29-31 December,
    # 5-8 and 11-13 January (1 and 4 January off).
    assert sent.deadlines["transfer_out_due"] == D("2027-01-13")
    [loaded] = calendar_loaded(store, "R12")
    assert loaded.detail["outcome"] == "official calendar loaded: 2027"
    assert "（R12）" in str(loaded.detail["explanation_zh"])
    [request] = platform.sent("incoming", "TransferRequested")
    assert request.document_as(TransferRequested).limit_starts_on == went_live
