"""An API caller acts only for its own side of a case (issue 13, item 5): every route of
both agency APIs and of the operations page is listed here with the region it needs, and
the list is checked against the apps' routes, so a new route without a scope fails.

Two agencies with hashed keys (no demo key, no "*"): Xi'an (610100) is the incoming
party of the cases, Tianshui (620800) the outgoing one. Each state-changing route is tried
with the other party's key first (403 NOT_YOUR_PARTY, nothing signalled or written), then
with its own (past the party check); every read answers both parties.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from faststream.kafka import TestKafkaBroker
from httpx import Response
from rich.console import Console
from sqlalchemy import MetaData, select

from contracts.documents import PersonIdentity, TransferRequested
from domain.identity import resident_id_check_char
from services.cli.api import ApiError, Reason
from services.cli.render import print_error
from services.common.auth import ROLES, key_hash
from services.common.config import Side
from services.incoming_agency.applications import new_case_row
from tests.support.inprocess import InProcessAgency, inprocess_app, without_broker

pytestmark = pytest.mark.unit

INCOMING_REGION, OUTGOING_REGION, ELSEWHERE = "610100", "620800", "440300"
KEYS = {
    "incoming": "xian-agency-key-for-the-party-tests",
    "outgoing": "tianshui-agency-key-for-the-party-tests",
    "elsewhere": "shenzhen-agency-key-for-the-party-tests",
}
REGION_OF = {"incoming": INCOMING_REGION, "outgoing": OUTGOING_REGION, "elsewhere": ELSEWHERE}
API_KEYS = json.dumps(
    {
        key_hash(key): {"agency": f"{name}-agency", "regions": [REGION_OF[name]], "roles": ROLES}
        for name, key in KEYS.items()
    }
)
OTHER = {"incoming": "outgoing", "outgoing": "incoming"}
PEOPLE: dict[str, str] = {}  # the ID number of each seeded case's person


def person_id(region: str = OUTGOING_REGION) -> str:
    first17 = f"{region}{random.randint(1965, 1999)}0{random.randint(1, 9)}1{random.randint(0, 9)}"
    first17 += f"{random.randint(0, 999):03d}"
    return first17 + resident_id_check_char(first17)


def application(id_number: str) -> dict[str, Any]:
    return {
        "person": {"id_number": id_number, "name": "测试参保人"},
        "from_region": OUTGOING_REGION,
        "to_region": INCOMING_REGION,
        "from_scheme": "employee",
        "to_scheme": "employee",
        "reason": "new job",
        "incoming_enrolled_since": "2026-10-01",
    }


def enrolment(id_number: str) -> dict[str, Any]:
    return {
        "id_number": id_number,
        "name": "测试参保人",
        "region": OUTGOING_REGION,
        "scheme": "employee",
        "status": "suspended",
        "enrolled_since": "2016-03-01",
        "balance_fen": 100_000,
    }


@dataclass
class Party:
    """One agency's way in: its API key, and a signed-in operations page session."""

    client: TestClient
    key: str
    csrf: str = ""

    def api(self, method: str, path: str, body: Any = None) -> Response:
        return self.client.request(method, path, json=body, headers={"X-Api-Key": self.key})

    def form(self, path: str, fields: dict[str, str]) -> Response:
        return self.client.post(
            path, data={"csrf_token": self.csrf, **fields}, follow_redirects=False
        )


def sign_in(client: TestClient, key: str) -> str:
    """Sign in on the operations page; the session's CSRF token."""
    login = client.get("/ops/login")
    token = re.search(r"name='csrf_token' value='([^']+)'", login.text)
    assert token is not None
    answer = client.post(
        "/ops/login", data={"key": key, "csrf_token": token[1]}, follow_redirects=False
    )
    assert (answer.status_code, answer.headers["location"]) == (303, "/ops"), answer.text
    found = re.search(r"name='csrf_token' value='([^']+)'", client.get("/ops").text)
    assert found is not None
    return found[1]


@dataclass
class Deployment:
    agency: InProcessAgency
    parties: dict[str, Party]

    def seed(self, status: str, **application: Any) -> str:
        """A case from Tianshui to Xi'an as this side records it, its workflow running."""
        id_number = person_id()
        request = TransferRequested(
            person=PersonIdentity(id_number=id_number, name="测试参保人"),
            from_region=OUTGOING_REGION,
            to_region=INCOMING_REGION,
            from_scheme="employee",
            to_scheme="employee",
            reason="new job",
            applied_on=date(2026, 11, 2),
            channel="online",
            incoming_agency=f"medical insurance agency of region {INCOMING_REGION}",
        )
        row = new_case_row(request, None)
        row.case_id = f"TR20261102{uuid.uuid4().hex[:10].upper()}"
        row.status, row.open_key = status, None
        row.escalated = True
        row.application = {**row.application, **application}
        row.status_since = datetime.now(UTC)
        self.agency.service.repository.insert_case(row)
        self.agency.temporal.running.add(f"{self.agency.side}-{row.case_id}")
        PEOPLE[row.case_id] = id_number
        return row.case_id

    def snapshot(self) -> dict[str, list[Any]]:
        """Every row of every table of this side's database."""
        metadata = MetaData()
        engine = self.agency.service.engine
        metadata.reflect(engine)
        with engine.connect() as connection:
            return {
                name: [tuple(r) for r in connection.execute(select(table)).all()]
                for name, table in metadata.tables.items()
            }


def deployment(side: Side, root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    served = INCOMING_REGION if side == "incoming" else OUTGOING_REGION
    agency = without_broker(
        inprocess_app(
            side,
            root,
            monkeypatch,
            api_keys=API_KEYS,
            served_regions=[served],
        )
    )
    with TestClient(agency.app) as lifespan, ExitStack() as stack:
        assert lifespan.portal is not None
        # Audit records (an enrolment edit's) are published to FastStream's memory broker.
        memory = TestKafkaBroker(agency.app.state.broker)
        stack.enter_context(lifespan.portal.wrap_async_context_manager(memory))
        parties = {
            name: Party(lifespan if name == side else TestClient(agency.app), key)
            for name, key in KEYS.items()
        }
        if side == "incoming":
            for party in parties.values():
                party.csrf = sign_in(party.client, party.key)
        yield Deployment(agency, parties)
    agency.service.engine.dispose()


@pytest.fixture(scope="module")
def incoming(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield from deployment("incoming", tmp_path_factory.mktemp("in"), monkeypatch)


@pytest.fixture(scope="module")
def outgoing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield from deployment("outgoing", tmp_path_factory.mktemp("out"), monkeypatch)


# --- the scope of every route ------------------------------------------------------------
# A state-changing route: whose action it is, the status its case is seeded in (none: the
# route names no case), and the call (party, target) -> response, the target being the
# seeded case's id, or else the region of the party that may act.
Call = Callable[[Party, str], Response]


def clerk_action(action: str) -> Call:
    return lambda p, c: p.api("POST", f"/v1/cases/{c}/actions/{action}", {"reason": "checked"})


@dataclass(frozen=True)
class Acts:
    party: str  # incoming | outgoing | region | deployment
    status: str
    call: Call


INCOMING_ACTS: dict[tuple[str, str], Acts] = {
    ("POST", "/v1/applications"): Acts(
        "incoming", "", lambda p, _: p.api("POST", "/v1/applications", application(person_id()))
    ),
    ("POST", "/v1/cases/{case_id}/withdraw"): Acts(
        "incoming",
        "awaiting_transfer_out",
        lambda p, c: p.api("POST", f"/v1/cases/{c}/withdraw", {"reason": "moved back"}),
    ),
    ("POST", "/v1/cases/{case_id}/correction"): Acts(
        "incoming",
        "refused_correctable",
        lambda p, c: p.api("POST", f"/v1/cases/{c}/correction", application(PEOPLE[c])),
    ),
    ("POST", "/v1/cases/{case_id}/mismatch-resolution"): Acts(
        "incoming",
        "balance_mismatch",
        lambda p, c: p.api(
            "POST", f"/v1/cases/{c}/mismatch-resolution", {"decision": "credit_received"}
        ),
    ),
    **{
        ("POST", f"/v1/cases/{{case_id}}/actions/{action}"): Acts(
            "incoming", status, clerk_action(action)
        )
        for action, status in (
            ("retry-delivery", "waiting_region_connection"),
            ("retry-step", "exception"),
            ("offline-channel", "awaiting_transfer_out"),
            ("cancel", "awaiting_transfer_out"),
        )
    },
    # R10/R23: the insurance certificate the person brings, loaded by the incoming clerk.
    ("POST", "/v1/cases/{case_id}/offline-certificate"): Acts(
        "incoming",
        "offline_certificate_issued",
        lambda p, c: p.api("POST", f"/v1/cases/{c}/offline-certificate", {"certificate": {}}),
    ),
    ("POST", "/ops/cases/{case_id}/actions/{action}"): Acts(
        "incoming",
        "awaiting_transfer_out",
        lambda p, c: p.form(f"/ops/cases/{c}/actions/cancel", {"reason": "duplicate file"}),
    ),
    ("POST", "/ops/cases/{case_id}/actions/accept-correction"): Acts(
        "incoming",
        "refused_correctable",
        lambda p, c: p.form(f"/ops/cases/{c}/actions/accept-correction", {"id_number": PEOPLE[c]}),
    ),
}
SHARED_ACTS: dict[tuple[str, str], Acts] = {
    # The region named in the path: an operator of that region.
    ("PUT", "/v1/admin/regions/{region}/connectivity"): Acts(
        "region",
        "",
        lambda p, region: p.api(
            "PUT", f"/v1/admin/regions/{region}/connectivity", {"connected": True}
        ),
    ),
    # Every region the deployment serves.
    ("POST", "/v1/admin/dead-letters/redrive"): Acts(
        "deployment", "", lambda p, _: p.api("POST", "/v1/admin/dead-letters/redrive")
    ),
}
OUTGOING_ACTS: dict[tuple[str, str], Acts] = {
    ("PUT", "/v1/enrolments"): Acts(
        "outgoing", "", lambda p, _: p.api("PUT", "/v1/enrolments", enrolment(person_id()))
    ),
    ("POST", "/v1/cases/{case_id}/actions/retry-step"): Acts(
        "outgoing",
        "awaiting_confirmation",
        lambda p, c: p.api("POST", f"/v1/cases/{c}/actions/retry-step", {"reason": "checked"}),
    ),
    # R10/R23: the insurance certificate, printed for the person at the outgoing counter.
    ("POST", "/v1/cases/{case_id}/insurance-certificate/print"): Acts(
        "outgoing",
        "awaiting_confirmation",
        lambda p, c: p.api("POST", f"/v1/cases/{c}/insurance-certificate/print", {}),
    ),
    ("POST", "/v1/cases/{case_id}/late-contributions"): Acts(
        "outgoing",
        "completed",
        lambda p, c: p.api(
            "POST",
            f"/v1/cases/{c}/late-contributions",
            {"contribution_id": "C-1", "amount_fen": 1_000},
        ),
    ),
}
# Reads of a case or of a party's cases: both parties.
READS = {
    ("GET", "/v1/cases/{case_id}"): lambda c: f"/v1/cases/{c}",
    ("GET", "/v1/cases"): lambda c: "/v1/cases?limit=500",
}
INCOMING_READS = {
    ("GET", "/v1/cases/{case_id}/progress"): lambda c: f"/v1/cases/{c}/progress",
    ("GET", "/ops"): lambda c: "/ops",
    ("GET", "/ops/cases/{case_id}"): lambda c: f"/ops/cases/{c}",
}
# Not a party's: no key (health, metrics, documentation, the sign-in form itself), the
# session's own sign-out, and the Temporal UI's payload decoding (operator role, no write).
UNSCOPED = {
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("POST", "/codec/decode"),
}
OPS_UNSCOPED = {("GET", "/ops/login"), ("POST", "/ops/login"), ("POST", "/ops/logout")}
# R17: the person's and the employer's own view, no key: a case number and its access
# secret, or an ID number and name, read one's own case only (tests/unit/test_r17_progress.py).
PUBLIC_PROGRESS = {
    ("GET", "/public/progress"),
    ("POST", "/public/progress"),
    ("POST", "/public/progress/by-case"),
    ("POST", "/public/progress/by-person"),
}

SCOPES = {
    "incoming": {
        *INCOMING_ACTS,
        *SHARED_ACTS,
        *READS,
        *INCOMING_READS,
        *UNSCOPED,
        *OPS_UNSCOPED,
        *PUBLIC_PROGRESS,
    },
    "outgoing": {*OUTGOING_ACTS, *SHARED_ACTS, *READS, *UNSCOPED},
}


def routes(deployment: Deployment) -> set[tuple[str, str]]:
    return {
        (method, str(route.path))
        for route in iter_route_contexts(deployment.agency.app.routes)
        for method in route.methods or ()
        if method != "HEAD"
    }


@pytest.mark.parametrize("side", ["incoming", "outgoing"])
def test_every_route_of_both_apis_has_a_declared_party_scope(
    side: str, request: pytest.FixtureRequest
) -> None:
    found = routes(request.getfixturevalue(side))
    unscoped = sorted(found - SCOPES[side])
    assert not unscoped, (
        f"routes without a party scope: {unscoped}; give each a require_party call "
        "(services/common/auth.py) and list it here and in docs/authorisation.md"
    )
    assert not SCOPES[side] - found, f"listed but gone: {sorted(SCOPES[side] - found)}"


def party_of(acts: Acts, side: str) -> str:
    """The key that may act: the case's side, or for a region's or the deployment's
    route, the agency of the region this deployment serves."""
    return acts.party if acts.party in OTHER else side


def refused_without_effect(deployment: Deployment, acts: Acts, target: str, who: str) -> None:
    before, actions = deployment.snapshot(), deployment.agency.temporal.actions
    answer = acts.call(deployment.parties[who], target)
    assert answer.status_code == 403, answer.text
    if answer.headers["content-type"].startswith("application/json"):
        assert answer.json()["reasons"][0]["code"] == "NOT_YOUR_PARTY"
    else:  # the operations page answers with a page
        assert "does not hold that region" in answer.text
    assert deployment.agency.temporal.actions == actions
    assert deployment.snapshot() == before


def accepted_past_the_party_check(answer: Response) -> None:
    assert answer.status_code not in (401, 403), answer.text
    assert answer.status_code < 500, answer.text
    if answer.status_code == 303:  # the operations page: back to the case with a flash
        assert "/ops/cases/" in answer.headers["location"]


@pytest.mark.parametrize("route", sorted(INCOMING_ACTS.keys() | SHARED_ACTS.keys()))
def test_incoming_side_actions_are_refused_to_the_outgoing_party(
    incoming: Deployment, route: tuple[str, str]
) -> None:
    acts = {**INCOMING_ACTS, **SHARED_ACTS}[route]
    own = party_of(acts, "incoming")
    target = incoming.seed(acts.status) if acts.status else REGION_OF[own]
    refused_without_effect(incoming, acts, target, OTHER[own])
    accepted_past_the_party_check(acts.call(incoming.parties[own], target))


@pytest.mark.parametrize("route", sorted(OUTGOING_ACTS.keys() | SHARED_ACTS.keys()))
def test_outgoing_side_actions_are_refused_to_the_incoming_party(
    outgoing: Deployment, route: tuple[str, str]
) -> None:
    acts = {**OUTGOING_ACTS, **SHARED_ACTS}[route]
    own = party_of(acts, "outgoing")
    # A residual follows a completed case whose balance was remitted (R16).
    target = outgoing.seed(acts.status, balance_action="remit") if acts.status else REGION_OF[own]
    refused_without_effect(outgoing, acts, target, OTHER[own])
    accepted_past_the_party_check(acts.call(outgoing.parties[own], target))


@pytest.mark.parametrize("side", ["incoming", "outgoing"])
def test_reading_a_case_works_with_either_partys_key(
    side: str, request: pytest.FixtureRequest
) -> None:
    deployment: Deployment = request.getfixturevalue(side)
    case_id = deployment.seed("awaiting_transfer_out")
    reads = {**READS, **(INCOMING_READS if side == "incoming" else {})}
    for route, path in reads.items():
        for who in ("incoming", "outgoing"):
            party = deployment.parties[who]
            if route[1].startswith("/ops"):
                answer = party.client.get(path(case_id), follow_redirects=False)
                assert answer.status_code == 200, (route, who)
                assert case_id in answer.text, (route, who)
            else:
                answer = party.api("GET", path(case_id))
                assert answer.status_code == 200, (route, who, answer.text)
                assert case_id in answer.text, (route, who)


def test_reading_stays_refused_to_an_agency_of_neither_region(incoming: Deployment) -> None:
    case_id = incoming.seed("awaiting_transfer_out")
    stranger = incoming.parties["elsewhere"]
    answer = stranger.api("GET", f"/v1/cases/{case_id}")
    assert (answer.status_code, answer.json()["reasons"][0]["code"]) == (403, "NOT_YOUR_REGION")
    assert case_id not in stranger.api("GET", "/v1/cases").text
    acting = stranger.api("POST", f"/v1/cases/{case_id}/withdraw", {"reason": "not mine"})
    assert (acting.status_code, acting.json()["reasons"][0]["code"]) == (403, "NOT_YOUR_REGION")


def test_the_outgoing_partys_clerk_sees_no_action_forms_on_the_ops_page(
    incoming: Deployment,
) -> None:
    case_id = incoming.seed("awaiting_transfer_out")
    own = incoming.parties["incoming"].client.get(f"/ops/cases/{case_id}").text
    other = incoming.parties["outgoing"].client.get(f"/ops/cases/{case_id}").text
    assert "action-cancel" in own
    assert "not-your-party" not in own
    assert "action-cancel" not in other
    assert "not-your-party" in other


@pytest.mark.parametrize("side", ["incoming", "outgoing"])
def test_connectivity_of_a_region_is_refused_to_another_regions_operator(
    side: str, request: pytest.FixtureRequest
) -> None:
    deployment: Deployment = request.getfixturevalue(side)
    path = f"/v1/admin/regions/{ELSEWHERE}/connectivity"
    for who in ("incoming", "outgoing"):
        answer = deployment.parties[who].api("PUT", path, {"connected": False})
        assert answer.status_code == 403, answer.text
        assert answer.json()["reasons"][0]["code"] == "NOT_YOUR_PARTY"
    own = deployment.parties["elsewhere"].api("PUT", path, {"connected": False})
    assert own.status_code == 200, own.text
    assert not deployment.agency.service.connectivity.is_connected(ELSEWHERE, date(2026, 12, 1))


def test_the_cli_says_a_not_your_party_refusal_is_the_other_agencys_side() -> None:
    console = Console(record=True, width=200)
    reason = Reason(code="NOT_YOUR_PARTY", message_en="only the incoming agency (region 610100)")
    print_error(console, ApiError("incoming", 403, "not allowed", (reason,)))
    text = console.export_text()
    assert "NOT_YOUR_PARTY" in text
    assert "other agency's side of the case" in text
