"""The operations page in a real headless Chromium: a clerk signs in, finds an overdue
case, cancels it, and sees the result; accepts a corrected document for a soft refusal;
the person's progress view (R17)."""

from __future__ import annotations

import asyncio
import shutil
import time
from datetime import timedelta

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from contracts.documents import WithdrawalRequested
from harness.agencies import PEER_REGION, AgencyStack
from tests.support.agencies import PeerAgency, today
from workflows.outgoing.workflows import stop_answer

pytestmark = pytest.mark.integration


def chromium() -> webdriver.Chrome:
    chrome, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chrome or not driver:
        raise RuntimeError("chromium and chromedriver are missing: deploy/local/install.sh browser")
    options = Options()
    options.binary_location = chrome
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,2000",
    ):
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=DriverService(executable_path=driver))
    browser.implicitly_wait(15)  # each click loads a new page; wait for its elements
    return browser


async def overdue_case(agencies: AgencyStack, peer: PeerAgency) -> str:
    """A case accepted 40 days ago whose outgoing agency (the test) never answered."""
    person = agencies.person(PEER_REGION)
    applied_on = today() - timedelta(days=40)
    case_id = await agencies.submit_ok(
        agencies.application(
            person,
            "610100",
            applied_on=applied_on.isoformat(),
            incoming_enrolled_since=(applied_on - timedelta(days=30)).isoformat(),
        )
    )
    await peer.expect(case_id, "TransferRequested")
    await agencies.wait_case("incoming", case_id, lambda c: c["escalated"])
    return case_id


async def test_clerk_finds_an_overdue_case_and_cancels_it_in_the_browser(
    agencies: AgencyStack,
    peer: PeerAgency,
) -> None:
    case_id = await overdue_case(agencies, peer)
    screenshot = agencies.root / "ops-case.png"
    # One completed case, so the service figures have something to show.
    done = agencies.person("620800")
    await agencies.enrol(done)
    await agencies.wait_status(
        "incoming", await agencies.submit_ok(agencies.application(done, "610100")), "completed"
    )

    def clerk_session() -> str:
        browser = chromium()
        try:
            browser.get(f"{agencies.incoming_url}/ops")  # not signed in: to the login form
            browser.find_element(By.ID, "key").send_keys("demo-clerk")
            browser.find_element(By.ID, "sign-in").click()
            figures = browser.find_element(By.ID, "figures").text
            # Signed in with a server-side session: the browser never holds the key.
            assert all(c["value"] != "demo-clerk" for c in browser.get_cookies())
            assert "transfer-out (R12)" in figures
            assert "whole case (R14)" in figures
            overdue = browser.find_element(By.ID, "overdue")
            overdue.find_element(By.LINK_TEXT, case_id).click()
            assert (
                "TRANSFER_OUT_OVERDUE" in browser.page_source or "escalated" in browser.page_source
            )
            browser.find_element(By.ID, "reason-cancel").send_keys("duplicate paper file")
            browser.find_element(By.ID, "action-cancel").click()
            browser.find_element(By.ID, "timeline")  # the case page is back
            assert "cancel requested" in browser.find_element(By.ID, "flash").text
            deadline = time.monotonic() + 30
            while browser.find_element(By.ID, "status").text != "cancelled":
                assert time.monotonic() < deadline, "the case page never showed the cancellation"
                time.sleep(0.5)
                browser.refresh()
            browser.save_screenshot(str(screenshot))
            return browser.find_element(By.ID, "timeline").text
        finally:
            browser.quit()

    session = asyncio.create_task(asyncio.to_thread(clerk_session))
    # The cancellation is a request the outgoing agency (the peer) answers (R16).
    request = await peer.expect(case_id, "WithdrawalRequested")
    assert request.payload["kind"] == "cancellation"
    answer = stop_answer(request.document_as(WithdrawalRequested), transferred_out=False)
    await peer.send(peer.envelope(answer, case_id, "withdrawal-answer", "610100"))
    timeline = await session
    assert "case_cancelled_by_clerk" in timeline
    case = await agencies.case("incoming", case_id)
    cancelled = case["timeline"][-1]
    assert (cancelled["detail"]["clerk"], cancelled["detail"]["reason"]) == (
        "clerk-7",
        "duplicate paper file",
    )
    assert screenshot.exists()


async def test_r17_progress_view_says_who_holds_the_case_and_what_to_do(
    agencies: AgencyStack,
    peer: PeerAgency,
) -> None:
    person = agencies.person(PEER_REGION)
    case_id = await agencies.submit_ok(agencies.application(person, "610100"))
    await peer.expect(case_id, "TransferRequested")
    await agencies.wait_status("incoming", case_id, "awaiting_transfer_out")
    response = await agencies.post("incoming", f"/v1/cases/{case_id}/progress", method="GET")
    assert response.status_code == 200
    progress = response.json()
    assert progress["holder_zh"].startswith("转出地经办机构")
    assert PEER_REGION in progress["holder_en"]
    assert progress["awaiting_by"]
    assert progress["predicted_completion"]
    assert any("R19" in item for item in progress["you_can_en"])
    assert person.name not in response.text
    assert person.id_number not in response.text


async def test_r7_clerk_accepts_a_corrected_document_for_a_soft_refusal_in_the_browser(
    agencies: AgencyStack,
) -> None:
    """A soft refusal (R7, arrears) waits on the page for a correction; the clerk checks
    the corrected document (the ID number must be the person's), accepts it, and the case
    moves on to completion with the clerk recorded on the correction."""
    person = agencies.person("620800")
    await agencies.enrol(person, arrears_fen=12_000)
    case_id = await agencies.submit_ok(agencies.application(person, "610100"))
    await agencies.wait_status("incoming", case_id, "refused_correctable")
    await agencies.enrol(person, arrears_fen=0)  # the person has paid the arrears
    someone_else = agencies.person("620800")

    def clerk_session() -> tuple[str, str]:
        browser = chromium()
        try:
            browser.get(f"{agencies.incoming_url}/ops")
            browser.find_element(By.ID, "key").send_keys("demo-clerk")
            browser.find_element(By.ID, "sign-in").click()
            browser.find_element(By.ID, "corrections").find_element(By.LINK_TEXT, case_id).click()
            assert browser.find_element(By.ID, "status").text == "refused_correctable"
            assert person.id_number not in browser.page_source
            assert person.name not in browser.page_source
            # A document for another person is not a correction of this case.
            browser.find_element(By.ID, "correction-id_number").send_keys(someone_else.id_number)
            browser.find_element(By.ID, "action-accept-correction").click()
            assert "keeps the person" in browser.find_element(By.ID, "flash").text
            assert browser.find_element(By.ID, "status").text == "refused_correctable"
            browser.find_element(By.ID, "correction-id_number").send_keys(person.id_number)
            browser.find_element(By.ID, "reason-accept-correction").send_keys("arrears paid")
            browser.find_element(By.ID, "action-accept-correction").click()
            # The page before the click has a flash too: wait for the new one.
            WebDriverWait(browser, 30, ignored_exceptions=[StaleElementReferenceException]).until(
                lambda b: "keeps the person" not in b.find_element(By.ID, "flash").text
            )
            flash = browser.find_element(By.ID, "flash").text
            deadline = time.monotonic() + 60
            while browser.find_element(By.ID, "status").text == "refused_correctable":
                assert time.monotonic() < deadline, "the case never moved on after the correction"
                time.sleep(0.5)
                browser.refresh()
            return flash, browser.find_element(By.ID, "timeline").text
        finally:
            browser.quit()

    flash, timeline = await asyncio.to_thread(clerk_session)
    assert "accept-correction requested" in flash
    assert "correction_submitted" in timeline
    case = await agencies.wait_status("incoming", case_id, "completed")
    corrected = next(e for e in case["timeline"] if e["event"] == "correction_submitted")
    assert corrected["rule"] == "R7"
    assert (corrected["detail"]["submitted_by"], corrected["detail"]["reason"]) == (
        "clerk-7",
        "arrears paid",
    )
    await agencies.wait_status("outgoing", case_id, "completed")
