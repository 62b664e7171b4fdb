"""The operations page's sign-in: the API key is checked once and a server-side session
begins (the browser holds a random id in an HttpOnly, SameSite=Strict cookie, Secure over
https); every POST carries the session's CSRF token; sessions end after 8 hours idle, 12
hours in all, or at sign-out; the sixth failed sign-in within five minutes answers 429."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from services.common.auth import ROLES, Principal, key_hash
from services.common.throttle import LOGIN_WINDOW_SECONDS, LoginThrottle
from services.ops.sessions import (
    ABSOLUTE_SECONDS,
    IDLE_SECONDS,
    SESSION_COOKIE,
    OpsSessions,
)
from tests.support.inprocess import InProcessAgency, inprocess_app, without_broker

pytestmark = pytest.mark.unit

CLERK_KEY = "xian-clerk-key-for-the-session-tests"
PERSON_ID = "11010519491231002X"
TOKEN = re.compile(r"name='csrf_token' value='([^']+)'")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Page:
    agency: InProcessAgency
    client: TestClient
    clock: FakeClock

    def sign_in(self, key: str = CLERK_KEY) -> Response:
        form = self.client.get("/ops/login")
        token = TOKEN.search(form.text)
        assert token is not None
        return self.client.post(
            "/ops/login", data={"key": key, "csrf_token": token[1]}, follow_redirects=False
        )

    def csrf(self) -> str:
        token = TOKEN.search(self.client.get("/ops").text)
        assert token is not None
        return token[1]

    def seed(self) -> str:
        case_id = f"TR20261102{uuid.uuid4().hex[:10].upper()}"
        self.agency.seed_case(
            case_id,
            "awaiting_transfer_out",
            from_region="620800",
            to_region="610100",
            person_id=PERSON_ID,
        )
        return case_id

    def cancel(self, case_id: str, **fields: str) -> Response:
        return self.client.post(
            f"/ops/cases/{case_id}/actions/cancel",
            data={"reason": "duplicate file", **fields},
            follow_redirects=False,
        )


@pytest.fixture
def ops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Page]:
    keys = {key_hash(CLERK_KEY): {"agency": "clerk-7", "regions": ["610100"], "roles": ROLES}}
    agency = without_broker(
        inprocess_app(
            "incoming", tmp_path, monkeypatch, api_keys=json.dumps(keys), served_regions=["610100"]
        )
    )
    clock = FakeClock()
    agency.app.state.ops_sessions.clock = clock
    agency.app.state.ops_throttle.clock = clock
    with TestClient(agency.app) as client:
        yield Page(agency, client, clock)
    agency.service.engine.dispose()


def test_ops_sign_in_keeps_a_session_id_in_the_cookie_never_the_key(ops: Page) -> None:
    ops.client.cookies.set("mt_key", CLERK_KEY, domain="testserver.local")  # earlier versions
    answer = ops.sign_in()
    assert (answer.status_code, answer.headers["location"]) == (303, "/ops")
    cookies = answer.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith(f"{SESSION_COOKIE}="))
    assert CLERK_KEY not in " ".join(cookies)
    value = session.split(";")[0].split("=", 1)[1]
    assert len(value) >= 43  # 256 random bits
    attributes = session.lower()
    assert "httponly" in attributes
    assert "samesite=strict" in attributes
    assert "path=/ops" in attributes
    assert "secure" not in attributes  # plain http here
    assert any(c.startswith('mt_key=""') for c in cookies)  # the old raw-key cookie cleared
    assert "mt_key" not in ops.client.cookies
    assert "Signed in as clerk-7" in ops.client.get("/ops").text


def test_ops_session_cookie_is_secure_when_served_over_https(ops: Page) -> None:
    ops.client.base_url = ops.client.base_url.copy_with(scheme="https")
    answer = ops.sign_in()
    session = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    assert "secure" in session.lower()


def test_ops_post_without_a_csrf_token_or_with_a_wrong_one_is_refused(ops: Page) -> None:
    ops.sign_in()
    token = ops.csrf()
    case_id = ops.seed()
    for fields in ({}, {"csrf_token": ""}, {"csrf_token": token[:-1] + "x"}, {"csrf": token}):
        answer = ops.cancel(case_id, **fields)
        assert answer.status_code == 403, fields
        assert "CSRF" in answer.text
    refused_logout = ops.client.post("/ops/logout", follow_redirects=False)
    assert refused_logout.status_code == 403
    assert ops.agency.temporal.signals == []
    answer = ops.cancel(case_id, csrf_token=token)
    assert answer.status_code == 303
    assert "cancel+requested" in answer.headers["location"].replace("%20", "+")
    assert [s[1] for s in ops.agency.temporal.signals] == ["withdraw"]


def test_ops_every_post_form_of_the_page_carries_the_csrf_token(ops: Page) -> None:
    ops.sign_in()
    token = ops.csrf()
    case_id = ops.seed()
    for path in ("/ops", f"/ops/cases/{case_id}"):
        html = ops.client.get(path).text
        forms = re.findall(r"<form[^>]*method='post'.*?</form>", html, flags=re.S)
        assert forms, path
        for form in forms:
            assert f"name='csrf_token' value='{token}'" in form, form[:120]


def test_ops_sign_in_without_its_form_token_is_refused(ops: Page) -> None:
    ops.client.get("/ops/login")
    answer = ops.client.post("/ops/login", data={"key": CLERK_KEY}, follow_redirects=False)
    assert answer.status_code == 403
    assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")


def test_ops_login_rate_limit_answers_429_with_retry_after(ops: Page) -> None:
    for _ in range(5):
        wrong = ops.sign_in("not-the-key-0000")
        assert wrong.status_code == 303
        assert "error=unknown" in wrong.headers["location"]
    ops.clock.now += 60
    blocked = ops.sign_in()  # even the right key waits
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) == LOGIN_WINDOW_SECONDS - 60
    ops.clock.now += LOGIN_WINDOW_SECONDS - 60
    assert ops.sign_in().status_code == 303
    assert ops.client.get("/ops", follow_redirects=False).status_code == 200


def test_ops_expired_session_is_refused(ops: Page) -> None:
    ops.sign_in()
    token = ops.csrf()
    case_id = ops.seed()
    ops.clock.now += IDLE_SECONDS  # eight hours without a request
    for answer in (
        ops.client.get("/ops", follow_redirects=False),
        ops.cancel(case_id, csrf_token=token),
    ):
        assert (answer.status_code, answer.headers["location"]) == (303, "/ops/login")
    assert ops.agency.temporal.signals == []


def test_ops_session_ends_twelve_hours_after_sign_in_however_busy(ops: Page) -> None:
    ops.sign_in()
    for _ in range(11):
        ops.clock.now += 3600
        assert ops.client.get("/ops", follow_redirects=False).status_code == 200
    ops.clock.now += 3600
    answer = ops.client.get("/ops", follow_redirects=False)
    assert (answer.status_code, answer.headers["location"]) == (303, "/ops/login")


def test_ops_sign_out_ends_the_session_on_the_server(ops: Page) -> None:
    ops.sign_in()
    session_id = ops.client.cookies.get(SESSION_COOKIE)
    assert session_id
    replay = TestClient(ops.agency.app)  # another browser, with the same cookie

    def replayed() -> int:
        cookie = {"Cookie": f"{SESSION_COOKIE}={session_id}"}
        return replay.get("/ops", headers=cookie, follow_redirects=False).status_code

    assert replayed() == 200
    answer = ops.client.post("/ops/logout", data={"csrf_token": ops.csrf()}, follow_redirects=False)
    assert (answer.status_code, answer.headers["location"]) == (303, "/ops/login")
    assert len(ops.agency.app.state.ops_sessions) == 0
    assert replayed() == 303  # the old id is no session any more


def test_ops_sessions_expire_idle_and_absolute_and_are_found_by_id_only() -> None:
    clock = FakeClock()
    sessions = OpsSessions(clock=clock)
    principal = Principal("clerk-7", frozenset({"610100"}), frozenset({"clerk"}))
    session_id, session = sessions.start(principal)
    assert session_id not in repr(vars(sessions))  # kept by a hash of the id
    assert sessions.get(session_id) is session
    assert sessions.get(session_id + "x") is None
    assert sessions.get(None) is None
    clock.now += IDLE_SECONDS - 1
    assert sessions.get(session_id) is session  # just in time: the idle clock restarts
    clock.now += ABSOLUTE_SECONDS - IDLE_SECONDS + 1  # 12 hours after sign-in
    assert sessions.get(session_id) is None
    idle_id, _ = sessions.start(principal)
    clock.now += IDLE_SECONDS
    assert sessions.get(idle_id) is None
    assert len(sessions) == 0
    full = OpsSessions(max_sessions=2, clock=clock)
    first, _ = full.start(principal)
    clock.now += 1
    full.start(principal)
    full.start(principal)
    assert len(full) == 2
    assert full.get(first) is None  # the oldest made room


def test_ops_login_throttle_counts_failures_per_client_address() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(clock=clock)
    for _ in range(5):
        assert throttle.retry_after("10.0.0.1") is None
        throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == LOGIN_WINDOW_SECONDS
    assert throttle.retry_after("10.0.0.2") is None
    clock.now += LOGIN_WINDOW_SECONDS
    assert throttle.retry_after("10.0.0.1") is None


def test_two_page_loads_of_an_expired_session_both_go_to_sign_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pages that only read run in FastAPI's threadpool: two loads of one expired
    session at once both find it expired; the second must not fail deleting it (500). The
    slow clock widens the window between the look-up and the delete."""
    import asyncio
    import time

    import httpx

    agency = without_broker(inprocess_app("incoming", tmp_path, monkeypatch))
    sessions = agency.app.state.ops_sessions
    session_id, _ = sessions.start(agency.service.auth.principal("demo-clerk"))
    started = time.monotonic()

    def slow_late_clock() -> float:
        time.sleep(0.3)
        return started + sessions.idle_seconds + 1  # the session has expired

    sessions.clock = slow_late_clock

    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=agency.app, raise_app_exceptions=False)
        async with (
            agency.app.router.lifespan_context(agency.app),
            httpx.AsyncClient(
                transport=transport, base_url="http://t", cookies={SESSION_COOKIE: session_id}
            ) as client,
        ):
            answers = await asyncio.gather(client.get("/ops"), client.get("/ops"))
        return sorted(a.status_code for a in answers)

    try:
        assert asyncio.run(run()) == [303, 303]
    finally:
        agency.service.engine.dispose()
