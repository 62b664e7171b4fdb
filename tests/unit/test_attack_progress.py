"""Attacks on the person's own progress view (R17) from outside: no API key, only the
public routes. Each test is a finding (it failed before its fix) or a check that held.

Uses the real incoming app in-process, as tests/unit/test_r17_progress.py does.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.support.inprocess import InProcessAgency, inprocess_app, without_broker
from tests.unit.test_r17_progress import (
    BY_CASE,
    BY_PERSON,
    KEY,
    NAME,
    PAGE,
    application,
    person_id,
    submitted,
)

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def agency(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessAgency]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        agency = without_broker(
            inprocess_app("incoming", tmp_path_factory.mktemp("attack-r17"), monkeypatch)
        )
        with TestClient(agency.app):
            yield agency
        agency.service.engine.dispose()


def from_address(agency: InProcessAgency, host: str | None = None) -> TestClient:
    host = host or f"10.99.{random.randint(0, 255)}.{uuid.uuid4().int % 250 + 1}"
    return TestClient(agency.app, client=(host, 50000))


# --- findings ---------------------------------------------------------------------------------
def test_attack_r17_ipv6_address_rotation_does_not_reset_the_throttle(
    agency: InProcessAgency,
) -> None:
    """One IPv6 customer holds a /64 (2**64 addresses): counted per address, every
    address brings five fresh guesses."""
    case_id, secret = submitted(agency, person_id())
    prefix = f"2001:db8:{random.randint(1, 0xFFFF):x}:{random.randint(1, 0xFFFF):x}"
    statuses = [
        from_address(agency, f"{prefix}::{n:x}")
        .post(BY_CASE, json={"case_id": case_id, "secret": f"WRONG-{n}"})
        .status_code
        for n in range(1, 7)
    ]
    assert statuses == [404] * 5 + [429]
    # IPv4 mapped into IPv6 is the same IPv4 client.
    v4 = f"10.98.{random.randint(0, 255)}.{random.randint(1, 250)}"
    for _ in range(5):
        from_address(agency, v4).post(BY_CASE, json={"case_id": case_id, "secret": "X"})
    mapped = from_address(agency, f"::ffff:{v4}")
    assert mapped.post(BY_CASE, json={"case_id": case_id, "secret": secret}).status_code == 429


def test_attack_r17_a_case_without_a_name_does_not_open_with_a_nul_name(
    agency: InProcessAgency,
) -> None:
    """A blank recorded name stood for "\\x00", so the ID number and a typed NUL (JSON
    "\\u0000", form %00) opened the case without knowing any name."""
    id_number = person_id()
    answer = from_address(agency).post(
        "/v1/applications", json=application(id_number, name=" "), headers=KEY
    )
    assert answer.status_code == 201, answer.text  # the contract lets a blank name in
    for typed in ("\x00", " \x00 ", "\u3000"):
        found = from_address(agency).post(BY_PERSON, json={"id_number": id_number, "name": typed})
        assert found.status_code == 404, (typed, found.text)
    page = from_address(agency).post(
        PAGE,
        content=f"by=person&id_number={id_number}&name=%00".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert page.status_code == 404


def test_attack_r17_a_cross_site_page_cannot_spend_the_visitors_attempts(
    agency: InProcessAgency,
) -> None:
    """CSRF: any web page can make a visitor's browser POST the form (or a text/plain
    "simple" request to the JSON routes) five times and lock the visitor's address (an
    employer's office, a service hall behind one NAT) out of R17 for five minutes."""
    case_id, secret = submitted(agency, person_id())
    victim = from_address(agency)
    cross_site = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    for n in range(3):
        forged = victim.post(
            PAGE, data={"by": "case", "case_id": case_id, "secret": f"X{n}"}, headers=cross_site
        )
        assert forged.status_code == 403, forged.text
    for n in range(3):
        plain = victim.post(
            BY_CASE,
            content=f'{{"case_id": "{case_id}", "secret": "X{n}"}}'.encode(),
            headers={"Content-Type": "text/plain", **cross_site},
        )
        assert plain.status_code == 403, plain.text
    # An older browser without Sec-Fetch-Site: its Origin is not this host.
    old_browser = victim.post(
        BY_PERSON, json={"id_number": "x", "name": "y"}, headers={"Origin": "null"}
    )
    assert old_browser.status_code == 403
    # None of them was counted: five real attempts remain.
    statuses = [
        victim.post(BY_CASE, json={"case_id": case_id, "secret": f"W{n}"}).status_code
        for n in range(4)
    ]
    assert statuses == [404] * 4
    same_site = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    mine = victim.post(
        PAGE, data={"by": "case", "case_id": case_id, "secret": secret}, headers=same_site
    )
    assert mine.status_code == 200, mine.text


def test_attack_r17_the_answer_carrying_the_secret_is_not_cacheable(
    agency: InProcessAgency,
) -> None:
    """The only time the secret is in clear is the acceptance answer: it must not be
    kept by a cache between the integrator and the API."""
    answer = from_address(agency).post(
        "/v1/applications", json=application(person_id()), headers=KEY
    )
    assert answer.status_code == 201
    assert answer.json()["access_secret"]
    assert "no-store" in answer.headers.get("cache-control", "")


# --- what held ------------------------------------------------------------------------------
def test_attack_r17_held_forwarded_headers_and_alternating_routes_share_one_count(
    agency: InProcessAgency,
) -> None:
    case_id, _ = submitted(agency, person_id())
    guesser = from_address(agency)
    statuses = []
    for n in range(6):
        spoof = {"X-Forwarded-For": f"198.51.100.{n}", "X-Real-IP": f"198.51.100.{n}"}
        if n % 3 == 0:
            r = guesser.post(
                BY_CASE, json={"case_id": case_id.lower(), "secret": "A"}, headers=spoof
            )
        elif n % 3 == 1:
            r = guesser.post(
                BY_PERSON, json={"id_number": person_id(), "name": NAME}, headers=spoof
            )
        else:
            r = guesser.post(PAGE, data={"by": "case", "case_id": case_id}, headers=spoof)
        statuses.append(r.status_code)
    assert statuses == [404] * 5 + [429]


def test_attack_r17_held_no_secret_or_personal_data_in_logs_or_integrator_views(
    agency: InProcessAgency, caplog: pytest.LogCaptureFixture
) -> None:
    id_number = person_id()
    with caplog.at_level(logging.DEBUG):
        case_id, secret = submitted(agency, id_number)
        from_address(agency).post(BY_CASE, json={"case_id": case_id, "secret": secret})
        from_address(agency).post(BY_CASE, json={"case_id": case_id, "secret": secret + "Z"})
        from_address(agency).post(BY_PERSON, json={"id_number": id_number, "name": NAME})
        from_address(agency).post(BY_PERSON, json={"id_number": id_number, "name": "李四"})
    logged = caplog.text + " ".join(str(r.args) for r in caplog.records)
    for value in (secret, secret.replace("-", ""), id_number, NAME):
        assert value not in logged
    api = from_address(agency)
    for path in (f"/v1/cases/{case_id}", "/v1/cases", f"/v1/cases/{case_id}/progress"):
        shown = api.get(path, headers=KEY)
        assert shown.status_code == 200, (path, shown.text)
        assert secret not in shown.text
        assert secret.replace("-", "") not in shown.text


def test_attack_r17_held_oversize_chunked_and_hostile_bodies(agency: InProcessAgency) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"case_id": "'
        for _ in range(100):
            yield b"A" * 100
        yield b'", "secret": "x"}'

    assert from_address(agency).post(BY_CASE, content=chunks()).status_code == 413
    lying = from_address(agency).post(BY_CASE, content=b"{}", headers={"Content-Length": "-1"})
    assert lying.status_code in (400, 413)
    id_number = person_id()
    for body in (
        f'{{"id_number": "{id_number}", "name": "\\ud800"}}',  # a lone surrogate
        f'{{"id_number": {{"x": "{id_number}"}}, "name": "{NAME}"}}',
        f'{{"id_number": "{id_number}", "name": "{NAME * 50}"}}',
    ):
        answer = from_address(agency).post(BY_PERSON, content=body.encode())
        assert answer.status_code == 422, answer.text
        assert id_number not in answer.text
        assert NAME not in answer.text
