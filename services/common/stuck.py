"""The stuck-case sweep: no case sits failing without anyone told.

Temporal retries a failing workflow task for ever and an activity with backoff, both
silently. Every ``interval`` the sweep looks at the open cases that should have moved
(an internal status left alone longer than ``quiet``, a document received after the
case's last change, or a case already marked stuck) and asks Temporal how their
workflow stands. A workflow task failing again and again, an activity failing attempt
after attempt (other than the R23 wait for a region), or a workflow closed while the
case is open, marks the case stuck and escalated: ``stuck_since`` and ``stuck_reason`` on its row, an
event on its timeline and the audit trail, ``medtransfer_stuck_cases``, the operations
page's stuck list. The reason names a step and an error type, never a message (it may
carry personal data). A case that moves again is cleared the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import col, select
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from domain.vocabulary import INTERNAL_STATUSES
from services.common.broker import KafkaDocumentPublisher
from services.common.db import session_scope
from services.common.repository import CaseRepository, utcnow
from services.common.tables import CaseRow, InboxRow
from workflows.activities import REGION_NOT_CONNECTED

log = logging.getLogger("medtransfer.stuck")

# A case resting in one of the INTERNAL_STATUSES (its own workflow works, not another
# party) longer than the quiet period is looked at.
WORKFLOW_TASK_ATTEMPTS = 3
ACTIVITY_ATTEMPTS = 4
SWEEP_LIMIT = 500


@dataclass(frozen=True)
class SweepResult:
    looked_at: int
    marked: list[str]
    cleared: list[str]


def stuck_reason(description: object, case_terminal: bool) -> str | None:
    """Why a workflow is stuck, from its Temporal description; None when it is not.
    Pure over the description's fields, so it is unit-tested without a server."""
    status = getattr(description, "status", None)
    if status is not None and status != WorkflowExecutionStatus.RUNNING:
        if case_terminal:
            return None
        return f"WORKFLOW_{status.name}"
    raw = getattr(description, "raw_description", None)
    task = getattr(raw, "pending_workflow_task", None)
    if task is not None and getattr(task, "attempt", 0) >= WORKFLOW_TASK_ATTEMPTS:
        return "WORKFLOW_TASK_FAILING"
    for activity in getattr(raw, "pending_activities", ()):
        if getattr(activity, "attempt", 0) < ACTIVITY_ATTEMPTS:
            continue
        failure = getattr(activity, "last_failure", None)
        info = getattr(failure, "application_failure_info", None)
        error_type = getattr(info, "type", "") or "Error"
        if error_type == REGION_NOT_CONNECTED:
            continue  # R23: the wait for a region has its own escalation
        name = getattr(getattr(activity, "activity_type", None), "name", "activity")
        return f"ACTIVITY_FAILING:{name}:{error_type}"[:120]
    return None


class StuckCaseSweep:
    def __init__(
        self,
        repository: CaseRepository,
        client: Client,
        workflow_id: Callable[[str], str],
        publisher: KafkaDocumentPublisher | None = None,
        *,
        quiet: timedelta = timedelta(minutes=2),
    ) -> None:
        self._repository = repository
        self._client = client
        self._workflow_id = workflow_id
        self._publisher = publisher
        self._quiet = quiet

    def candidates(self, now: datetime) -> Sequence[CaseRow]:
        """The cases marked stuck (to re-check and clear), then the open cases that should
        have moved, oldest first. A receipt is no document to act on: a case waiting for
        the other agency after its receipt came is not a candidate."""
        quiet_since = now - self._quiet
        documents_after = (
            select(InboxRow.case_id)
            .where(col(InboxRow.case_id) == col(CaseRow.case_id))
            .where(col(InboxRow.type) != "Receipt")
            .where(col(InboxRow.received_at) > col(CaseRow.updated_at))
            .exists()
        )
        with session_scope(self._repository.engine) as session:
            marked = session.exec(
                select(CaseRow)
                .where(col(CaseRow.stuck_since).is_not(None))
                .order_by(col(CaseRow.stuck_since))
                .limit(SWEEP_LIMIT)
            ).all()
            resting = session.exec(
                select(CaseRow)
                .where(
                    col(CaseRow.stuck_since).is_(None),
                    col(CaseRow.terminal).is_(False),
                    col(CaseRow.updated_at) < quiet_since,
                    col(CaseRow.status).in_(INTERNAL_STATUSES) | documents_after,
                )
                .order_by(col(CaseRow.updated_at))
                .limit(SWEEP_LIMIT)
            ).all()
        return [*marked, *resting]

    async def sweep_once(self) -> SweepResult:
        now = utcnow()
        rows = await asyncio.to_thread(self.candidates, now)
        marked: list[str] = []
        cleared: list[str] = []
        for row in rows:
            try:
                description = await self._client.get_workflow_handle(
                    self._workflow_id(row.case_id)
                ).describe()
            except RPCError:
                reason: str | None = None if row.terminal else "WORKFLOW_NOT_FOUND"
            else:
                reason = stuck_reason(description, row.terminal)
            if reason is not None and row.stuck_reason != reason:
                await self._note(
                    row, "stuck_detected", reason, {"stuck_since": now, "escalated": True}
                )
                marked.append(row.case_id)
            elif reason is None and row.stuck_since is not None:
                await self._note(
                    row, "stuck_cleared", row.stuck_reason or "", {"stuck_since": None}
                )
                cleared.append(row.case_id)
        return SweepResult(looked_at=len(rows), marked=marked, cleared=cleared)

    async def _note(self, row: CaseRow, event: str, reason: str, values: dict[str, object]) -> None:
        # The key is what every worker's sweep sees alike: the how-manieth time the case
        # is stuck (cleared times so far), so two sweeps at once note it once, and a case
        # stuck again after it moved is noted again.
        rounds = await asyncio.to_thread(
            self._repository.count_events, row.case_id, "stuck_cleared"
        )
        values = {**values, "stuck_reason": reason if event == "stuck_detected" else None}
        if event == "stuck_detected":
            log.warning("alert: case %s stuck: %s", row.case_id, reason)
            key = f"stuck_detected:{row.case_id}:{rounds}:{reason}"
        else:
            log.info("case %s moves again (was stuck: %s)", row.case_id, reason)
            key = f"stuck_cleared:{row.case_id}:{rounds}"
        record = await asyncio.to_thread(
            self._repository.note_attention,
            row.case_id,
            event_key=key,
            event=event,
            detail={"reason_code": reason},
            values=values,
        )
        if record is not None and self._publisher is not None:
            await self._publisher.publish_audit(record)

    async def run_forever(self, interval: timedelta) -> None:
        while True:
            try:
                result = await self.sweep_once()
                if result.marked or result.cleared:
                    log.info(
                        "stuck-case sweep: %d looked at, %d marked, %d cleared",
                        result.looked_at,
                        len(result.marked),
                        len(result.cleared),
                    )
            except Exception:  # the sweep must outlive a database or Temporal blip
                log.exception("stuck-case sweep failed; next in %s", interval)
            await asyncio.sleep(interval.total_seconds())
