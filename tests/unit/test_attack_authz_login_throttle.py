"""Attacks on the operations page's sign-in limit (services/ops/dashboard.py, sessions.py).

1. A successful sign-in clears the client's whole failure count (``throttle.succeeded``).
   An attacker holding any valid clerk key (their own agency's, regions of A only) signs
   in once every four guesses and guesses other agencies' keys without ever meeting the
   429: the "5 failures within 5 minutes" limit does not hold.
2. The limit is checked before the form is read and the failure recorded after it: sign-ins
   sent at the same moment all pass the check, so a burst of guesses is never limited.
3. The limit guards the sign-in form only: every /v1 route checks a key with no limit.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from services.common.auth import ROLES, key_hash
from services.common.throttle import LOGIN_FAILURES
from tests.support.inprocess import InProcessAgency, inprocess_app, without_broker

pytestmark = pytest.mark.unit

ATTACKER_KEY = "tianshui-clerk-key-for-the-attack-tests"  # agency A: 620800 only
VICTIM_KEY = "xian-clerk-key-for-the-attack-tests-000"  # agency B: 610100
TOKEN = re.compile(r"name='csrf_token' value='([^']+)'")
KEYS = {
    key_hash(ATTACKER_KEY): {"agency": "tianshui-clerk", "regions": ["620800"], "roles": ROLES},
    key_hash(VICTIM_KEY): {"agency": "xian-clerk", "regions": ["610100"], "roles": ROLES},
}


@pytest.fixture
def agency(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InProcessAgency]:
    built = without_broker(
        inprocess_app(
            "incoming",
            tmp_path,
            monkeypatch,
            api_keys=json.dumps(KEYS),
            served_regions=["610100"],
        )
    )
    yield built
    built.service.engine.dispose()


def sign_in(client: TestClient, key: str) -> httpx.Response:
    token = TOKEN.search(client.get("/ops/login").text)
    assert token is not None
    return client.post(
        "/ops/login", data={"key": key, "csrf_token": token[1]}, follow_redirects=False
    )


def test_a_valid_sign_in_does_not_wipe_the_failed_guesses_before_it(
    agency: InProcessAgency,
) -> None:
    guesses = 0
    with TestClient(agency.app) as client:
        for _round in range(3):
            for _ in range(LOGIN_FAILURES - 1):
                answer = sign_in(client, f"guess-of-xian-key-{guesses:08d}")
                guesses += 1
                assert answer.status_code in (303, 429)
                if answer.status_code == 429:
                    return  # the limit held
            own = sign_in(client, ATTACKER_KEY)  # agency A's own key, once in a while
            if own.status_code == 429:
                return
            client.cookies.clear()
    pytest.fail(
        f"{guesses} wrong keys guessed from one address within a minute and never a 429: "
        "each sign-in with the attacker's own key reset the failure count"
    )


async def test_a_burst_of_simultaneous_guesses_is_limited_too(agency: InProcessAgency) -> None:
    transport = httpx.ASGITransport(app=agency.app, client=("198.51.100.7", 4444))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        form = await client.get("/ops/login")
        token = TOKEN.search(form.text)
        assert token is not None

        async def guess(n: int) -> int:
            answer = await client.post(
                "/ops/login",
                data={"key": f"burst-guess-{n:010d}", "csrf_token": token[1]},
                follow_redirects=False,
            )
            return answer.status_code

        statuses = await asyncio.gather(*(guess(n) for n in range(40)))
    processed = sum(1 for s in statuses if s == 303)
    assert processed <= LOGIN_FAILURES, (
        f"{processed} of 40 simultaneous wrong keys were checked (limit {LOGIN_FAILURES}); "
        f"statuses {sorted(set(statuses))}"
    )


def test_an_address_locked_out_of_the_sign_in_cannot_go_on_guessing_through_the_api(
    agency: InProcessAgency,
) -> None:
    """3. The limit guards the sign-in form only: the same address, locked out there, tests
    as many keys as it likes on any /v1 route, which tells a known key (200) from an
    unknown one (401) and never answers 429."""
    with TestClient(agency.app) as client:
        for n in range(LOGIN_FAILURES):
            sign_in(client, f"guess-of-xian-key-{n:08d}")
        assert sign_in(client, VICTIM_KEY).status_code == 429  # locked out of the form
        answers = [
            client.get("/v1/cases", headers={"X-Api-Key": f"api-guess-{n:010d}"}).status_code
            for n in range(30)
        ]
        answers.append(client.get("/v1/cases", headers={"X-Api-Key": VICTIM_KEY}).status_code)
    assert 429 in answers, (
        f"30 more wrong keys from the locked-out address answered {sorted(set(answers[:-1]))}, "
        f"and the right one {answers[-1]}: the API is an unlimited key oracle"
    )
