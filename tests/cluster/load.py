"""A stream of cases against the replicated services, and the figures of each fault.

The client talks to whichever API replica answers, as a client behind a load balancer
would: a call that fails (connection refused or cut, 5xx) is counted, the replica is
set aside for a few seconds, and the call goes to the next one. The figures come from
the cases' own timelines (every step's time as the workers recorded it), so they do not
depend on the test's polling.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from domain.identity import resident_id_check_char

EJECT_SECONDS = 5.0
# (from region, to region): across provinces (remitted, R18) and within Guangdong (R20).
ROUTES = [
    ("620800", "610100"),
    ("441900", "310000"),
    ("350100", "440300"),
    ("110000", "610100"),
    ("620100", "440100"),
    ("441900", "440300"),
]


@dataclass
class Calls:
    total: int = 0
    failed: int = 0


class Replicas:
    """HTTP to any replica of one API, failing over; failures are counted in ``calls``."""

    def __init__(self, urls: list[str], api_key: str) -> None:
        self.urls = urls
        self.calls = Calls()
        self._clients = {
            url: httpx.AsyncClient(base_url=url, timeout=30, headers={"X-Api-Key": api_key})
            for url in urls
        }
        self._ejected_until = dict.fromkeys(urls, 0.0)
        self._next = 0

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    def _order(self) -> list[str]:
        start, self._next = self._next, (self._next + 1) % len(self.urls)
        ordered = self.urls[start:] + self.urls[:start]
        now = time.monotonic()
        return sorted(ordered, key=lambda url: self._ejected_until[url] > now)  # stable

    async def request(
        self, method: str, path: str, *, json: Any = None, timeout: float = 180
    ) -> httpx.Response:
        deadline = time.monotonic() + timeout
        while True:
            for url in self._order():
                self.calls.total += 1
                try:
                    response = await self._clients[url].request(method, path, json=json)
                except httpx.TransportError:
                    response = None
                if response is not None and response.status_code < 500:
                    return response
                self.calls.failed += 1
                self._ejected_until[url] = time.monotonic() + EJECT_SECONDS
            if time.monotonic() > deadline:
                raise AssertionError(f"no replica of {self.urls} answered {method} {path}")
            await asyncio.sleep(0.5)


@dataclass
class Person:
    id_number: str
    name: str
    region: str
    to_region: str
    balance_fen: int


def people(count: int) -> list[Person]:
    """Demo-like people: suspended employees with a normal account and a balance."""
    made = []
    for i in range(count):
        region, to_region = ROUTES[i % len(ROUTES)]
        birth = (
            f"{random.randint(1965, 2000)}{random.randint(1, 12):02d}{random.randint(1, 28):02d}"
        )
        first17 = f"{region}{birth}{random.randint(0, 999):03d}"
        made.append(
            Person(
                id_number=first17 + resident_id_check_char(first17),
                name=random.choice("赵钱孙李周吴郑王") + random.choice("明华伟芳娜敏静丽"),
                region=region,
                to_region=to_region,
                balance_fen=random.randint(1_000_00, 60_000_00),
            )
        )
    return made


@dataclass
class Submitted:
    case_id: str
    phase: str
    at: float  # wall clock (time.time()) when the application was first sent


@dataclass
class Phase:
    name: str
    part: str | None  # what was killed
    started_at: float
    killed_at: float | None = None
    settled_at: float | None = None
    recovery_s: float | None = None  # cluster.sh up bringing the killed part back
    calls: Calls = field(default_factory=Calls)


class CaseLoad:
    def __init__(self, incoming: Replicas, outgoing: Replicas) -> None:
        self.incoming = incoming
        self.outgoing = outgoing
        self.submitted: dict[str, Submitted] = {}

    async def enrol(self, person: Person) -> None:
        response = await self.outgoing.request(
            "PUT",
            "/v1/enrolments",
            json={
                "id_number": person.id_number,
                "name": person.name,
                "region": person.region,
                "scheme": "employee",
                "status": "suspended",
                "enrolled_since": "2016-03-01",
                "suspended_on": "2026-10-31",
                "arrears_fen": 0,
                "account_status": "normal",
                "balance_fen": person.balance_fen,
                "contribution_months": 120,
            },
        )
        assert response.status_code == 200, response.text

    async def submit(self, person: Person, phase: str) -> Submitted:
        at = time.time()
        # A retry after a cut connection finds the case the first attempt opened (200).
        response = await self.incoming.request(
            "POST",
            "/v1/applications",
            json={
                "person": {"id_number": person.id_number, "name": person.name},
                "from_region": person.region,
                "to_region": person.to_region,
                "from_scheme": "employee",
                "to_scheme": "employee",
                "reason": "new job",
                "channel": "online",
                "incoming_enrolled_since": "2026-11-01",
            },
        )
        assert response.status_code in (200, 201), response.text
        case_id = str(response.json()["case_id"])
        self.submitted.setdefault(case_id, Submitted(case_id, phase, at))
        return self.submitted[case_id]

    async def statuses(self) -> dict[str, tuple[str | None, str | None]]:
        """case_id -> (incoming status, outgoing status) for the cases submitted."""
        found: dict[str, list[str | None]] = {c: [None, None] for c in self.submitted}
        for i, replicas in enumerate((self.incoming, self.outgoing)):
            response = await replicas.request("GET", "/v1/cases?limit=500")
            assert response.status_code == 200, response.text
            for case in response.json():
                if case["case_id"] in found:
                    found[case["case_id"]][i] = case["status"]
        return {c: (s[0], s[1]) for c, s in found.items()}

    async def wait_completed(self, case_ids: Iterable[str], timeout: float) -> None:
        cases = set(case_ids)
        deadline = time.monotonic() + timeout
        while True:
            states = await self.statuses()
            open_cases = {c: states[c] for c in cases if states[c] != ("completed", "completed")}
            if not open_cases:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"cases not completed after {timeout}s: {open_cases}")
            await asyncio.sleep(1)

    async def timelines(self) -> dict[str, list[dict[str, Any]]]:
        """case_id -> the events of both sides' timelines."""
        events: dict[str, list[dict[str, Any]]] = {}
        for case_id in self.submitted:
            events[case_id] = []
            for replicas in (self.incoming, self.outgoing):
                response = await replicas.request("GET", f"/v1/cases/{case_id}")
                assert response.status_code == 200, response.text
                events[case_id] += response.json()["timeline"] or []
        return events


def _seconds(at: str) -> float:
    return datetime.fromisoformat(at).timestamp()


def figures(
    phases: list[Phase],
    submitted: dict[str, Submitted],
    timelines: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    """Per phase (from the kill on, until its cases completed):

    * unavailability: the longest time in which no case made a step while cases were open;
    * a case's stall: the longest wait between two of its steps (both sides' timelines,
      from its submission); delayed cases stalled longer than any case of the fault-free
      baseline phase;
    * HTTP calls that failed (and were retried on the other replica);
    * case latency: from submission to the later of the two sides' ``case_completed``.
    """
    times = {
        case_id: sorted([submitted[case_id].at, *(_seconds(e["at"]) for e in events)])
        for case_id, events in timelines.items()
    }
    steps = sorted(t for case_times in times.values() for t in case_times)
    done = {
        case_id: max(_seconds(e["at"]) for e in events if e["event"] == "case_completed")
        for case_id, events in timelines.items()
    }
    latency = {c: done[c] - s.at for c, s in submitted.items()}
    stall = {c: max(b - a for a, b in itertools.pairwise(t)) for c, t in times.items()}
    baseline = [c for c, s in submitted.items() if s.phase == phases[0].name]
    stall_limit = max(stall[c] for c in baseline)
    report: list[dict[str, Any]] = []
    for phase in phases:
        start = phase.killed_at or phase.started_at
        end = phase.settled_at or start
        cases = [c for c, s in submitted.items() if s.phase == phase.name]
        marks = [start, *(t for t in steps if start < t <= end)]
        gaps = [
            b - a
            for a, b in itertools.pairwise(marks)
            # only while some case was open the whole time
            if any(submitted[c].at <= a and done[c] >= b for c in submitted)
        ]
        in_flight = [c for c, s in submitted.items() if s.at <= start < done[c]]
        report.append(
            {
                "phase": phase.name,
                "killed": phase.part,
                "cases": len(cases),
                "cases_in_flight_at_kill": len(in_flight) if phase.part else None,
                "unavailability_s": round(max(gaps, default=0.0), 1),
                "http_calls": phase.calls.total,
                "failed_http_calls": phase.calls.failed,
                "cases_delayed": sum(1 for c in cases if stall[c] > stall_limit),
                "longest_case_stall_s": round(max(stall[c] for c in cases), 1),
                "median_case_latency_s": round(statistics.median(latency[c] for c in cases), 1),
                "max_case_latency_s": round(max(latency[c] for c in cases), 1),
                "recovery_s": None if phase.recovery_s is None else round(phase.recovery_s, 1),
            }
        )
    return {"delayed_means_stalled_over_s": round(stall_limit, 1), "phases": report}
