"""The ladder's workflows (bench/ladder.py), in a module of their own: the workflow sandbox
re-imports it, so it imports nothing but temporalio."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

QUICK = timedelta(seconds=30)


@activity.defn(name="ladder_noop")
async def ladder_noop() -> None:
    """Nothing but the local activity's own round trip inside the worker."""


@workflow.defn(name="LadderStart")
class LadderStart:
    @workflow.run
    async def run(self) -> str:
        return "done"


class _AwaitsGo:
    """Waits for one signal, the stimulus of the ladder's second workflow task."""

    def __init__(self) -> None:
        self._go = False

    @workflow.signal
    def go(self) -> None:
        self._go = True

    async def _signalled(self) -> None:
        await workflow.wait_condition(lambda: self._go)


@workflow.defn(name="LadderSignal")
class LadderSignal(_AwaitsGo):
    @workflow.run
    async def run(self) -> str:
        await self._signalled()
        return "done"


@workflow.defn(name="LadderLocal")
class LadderLocal(_AwaitsGo):
    @workflow.run
    async def run(self) -> str:
        await self._signalled()
        await workflow.execute_local_activity(ladder_noop, start_to_close_timeout=QUICK)
        return "done"


WORKFLOWS: dict[str, Any] = {"start": LadderStart, "signal": LadderSignal, "local": LadderLocal}
