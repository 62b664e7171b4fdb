"""Credentials per agency, roles, region scoping; clerk actions on escalated cases, each
recorded on the case with the clerk's identity."""

from __future__ import annotations

import httpx
import pytest

from harness.agencies import AgencyStack

pytestmark = pytest.mark.integration


async def call(
    url: str, method: str, path: str, key: str | None, body: dict | None = None
) -> httpx.Response:
    headers = {"X-Api-Key": key} if key else {}
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers) as http:
        return await http.request(method, path, json=body)


async def test_every_call_needs_a_known_key(agencies: AgencyStack) -> None:
    for url in (agencies.incoming_url, agencies.outgoing_url):
        missing = await call(url, "GET", "/v1/cases", None)
        assert missing.status_code == 401
        assert missing.json()["reasons"][0]["code"] == "CREDENTIALS_REQUIRED"
        wrong = await call(url, "GET", "/v1/cases", "not-a-real-key")
        assert wrong.status_code == 401
        assert wrong.json()["reasons"][0]["code"] == "CREDENTIALS_INVALID"
        assert (await call(url, "GET", "/health", None)).status_code == 200


async def test_an_agency_sees_and_acts_only_on_its_own_regions(agencies: AgencyStack) -> None:
    person = agencies.person("441900")
    await agencies.enrol(person)
    case_id = await agencies.submit_ok(agencies.application(person, "440300"))  # Shenzhen

    # Xi'an's portal cannot read a Shenzhen case, list it, or submit for Shenzhen.
    other = await call(agencies.incoming_url, "GET", f"/v1/cases/{case_id}", "xian-portal-key")
    assert other.status_code == 403
    assert other.json()["reasons"][0]["code"] == "NOT_YOUR_REGION"
    listed = await call(agencies.incoming_url, "GET", "/v1/cases?limit=500", "xian-portal-key")
    assert listed.status_code == 200
    assert all("610100" in (c["from_region"], c["to_region"]) for c in listed.json())
    submit = await call(
        agencies.incoming_url,
        "POST",
        "/v1/applications",
        "xian-portal-key",
        agencies.application(agencies.person("620800"), "440300"),
    )
    assert submit.status_code == 403

    # An integrator holds no clerk role.
    action = await call(
        agencies.incoming_url,
        "POST",
        f"/v1/cases/{case_id}/actions/cancel",
        "xian-portal-key",
        {"reason": "x"},
    )
    assert action.status_code == 403
    connectivity = await call(
        agencies.incoming_url,
        "PUT",
        "/v1/admin/regions/654300/connectivity",
        "demo-clerk",
        {"connected": True},
    )
    assert connectivity.status_code == 403
    assert connectivity.json()["reasons"][0]["code"] == "ROLE_REQUIRED"


async def test_r23_clerk_takes_a_stuck_case_offline(agencies: AgencyStack) -> None:
    person = agencies.person("654300")  # a region not connected to the platform
    await agencies.enrol(person)
    # Cut it off again in case another test connected it.
    await agencies.post(
        "incoming", "/v1/admin/regions/654300/connectivity", {"connected": False}, method="PUT"
    )
    try:
        case_id = await agencies.submit_ok(agencies.application(person, "610100"))
        await agencies.wait_status("incoming", case_id, "waiting_region_connection")
        retry = await call(
            agencies.incoming_url,
            "POST",
            f"/v1/cases/{case_id}/actions/retry-delivery",
            "demo-clerk",
            {"reason": "phoned the region"},
        )
        assert retry.status_code == 202
        await agencies.wait_case(
            "incoming",
            case_id,
            lambda c: "clerk_retry_delivery" in [e["event"] for e in c["timeline"]],
        )
        offline = await call(
            agencies.incoming_url,
            "POST",
            f"/v1/cases/{case_id}/actions/offline-channel",
            "demo-clerk",
            {"reason": "paper file sent"},
        )
        assert offline.status_code == 202, offline.text
        # R10/R23: not an end: the request and the switch wait for the region together
        # (only the outgoing agency issues the insurance certificate).
        case = await agencies.wait_case(
            "incoming",
            case_id,
            lambda c: "offline_channel_requested" in [e["event"] for e in c["timeline"]],
        )
    finally:
        # Leave it as the registry has it (not yet connected) for the tests that follow.
        await agencies.post(
            "incoming", "/v1/admin/regions/654300/connectivity", {"connected": False}, method="PUT"
        )
    assert not case["closed"]
    final = next(e for e in case["timeline"] if e["event"] == "offline_channel_requested")
    assert (final["detail"]["clerk"], final["detail"]["reason"]) == ("clerk-7", "paper file sent")
    again = await call(
        agencies.incoming_url,
        "POST",
        f"/v1/cases/{case_id}/actions/cancel",
        "demo-clerk",
        {"reason": "late"},
    )
    assert again.status_code == 409
