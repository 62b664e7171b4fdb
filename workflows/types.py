"""Typed payloads both sides' workflows use (one pydantic model each), so fields can be
added without breaking callers: the timeline event, the case context, the case view, a
clerk's action. Each side's own payloads are in workflows/incoming|outgoing/types.py;
platform documents themselves are in contracts/."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.documents import FreeText

Side = Literal["incoming", "outgoing"]
AuditValue = str | int | bool | None


class Payload(BaseModel):
    """The base of every workflow payload: frozen, so a workflow never changes one it
    was handed."""

    model_config = ConfigDict(frozen=True)


class Awaiting(Payload):
    """What a case waits for, from whom, by when (R17)."""

    what: str
    from_party: str
    by: date | None = None


class CaseEvent(Payload):
    """One state change of a case, written to the case's timeline and the audit topic.

    ``event_key`` is unique per case (workflow id + step), so a retried activity writes
    the event once.
    """

    case_id: str
    side: Side
    event_key: str
    event: str
    status: str
    occurred_at: datetime
    rule: str | None = None
    detail: dict[str, AuditValue] = Field(default_factory=dict)
    awaiting: Awaiting | None = None
    deadlines: dict[str, date] = Field(default_factory=dict)
    escalated: bool | None = None
    warnings: list[str] = Field(default_factory=list)
    terminal: bool = False
    # Structured facts merged into the case (policy version, continuity assessment).
    facts: dict[str, Any] = Field(default_factory=dict)


class CaseContext(Payload):
    """Calendar and limits a case uses, loaded once by an activity so replay is stable."""

    calendar: dict[str, Any]
    limits: dict[str, int]
    intra_province_balance: dict[str, str]
    employee_to_resident_balance: str
    policy_version: str
    # The ResolvedPolicy (domain.policy) of this side's region, as data.
    policy: dict[str, Any] = Field(default_factory=dict)
    delivery_retry_initial_seconds: float = 5.0
    delivery_retry_max_seconds: float = 600.0
    # This side's and the counterpart's region names (code -> Chinese name), so the
    # sentences a case writes name agencies as a person reads them.
    region_names: dict[str, str] = Field(default_factory=dict)


class LoadContextInput(Payload):
    region: str
    start: date
    side: Side = "incoming"
    counterpart: str | None = None  # the other agency's region: its limits apply too


class ClerkAction(Payload):
    """Who asked for a clerk action (authenticated by the API) and why."""

    clerk: str
    reason: FreeText = ""


class CaseView(Payload):
    """The workflow's own answer to "where does this case stand" (a Temporal query)."""

    case_id: str
    side: Side
    status: str
    awaiting: Awaiting | None
    deadlines: dict[str, date]
    escalated: bool
