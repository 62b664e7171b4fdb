"""R17: what the person reads (domain/guidance.py). Every refusal code has guidance, so a
new code without it fails here; the advice differs where the cause differs (never "pay
the arrears" for an active enrolment or a frozen account); every status and timeline
event the incoming case workflow records has its plain words; Chinese texts are wholly
Chinese."""

from __future__ import annotations

import re
import string
from itertools import combinations
from pathlib import Path
from typing import get_args

import pytest

import domain.eligibility as eligibility
from contracts.documents import WithdrawalAnswered
from domain.guidance import (
    REFUSAL_GUIDANCE,
    STATUS_GUIDANCE,
    STEPS,
    UNKNOWN_REFUSAL,
    UNKNOWN_STATUS,
    agency_en,
    agency_zh,
    refusal_guidance,
    status_guidance,
    step_text,
)
from domain.vocabulary import CaseEventName, IncomingStatus, RefusalCode

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
INCOMING_WORKFLOW_SOURCES = [
    ROOT / "workflows" / "incoming" / "workflows.py",
    ROOT / "workflows" / "case_flow.py",
]
PLACEHOLDERS = {"outgoing", "incoming", "region"}
ARREARS_WORDS = ("欠费", "补缴", "arrears")


def refusal_codes() -> set[str]:
    """Every code the catalogue has, every code constant of domain/eligibility.py (one
    added without its catalogue entry counts too), and the outgoing agency's refusal of a
    withdrawal (contracts/documents.py WithdrawalAnswered)."""
    constants = {
        value
        for name, value in vars(eligibility).items()
        if name.isupper() and isinstance(value, str) and re.fullmatch(r"[A-Z_]+", value)
    }
    answers = get_args(WithdrawalAnswered.model_fields["reason_code"].annotation)
    refused_stops = {code for code in answers if not code.startswith("ACCEPTED")}
    return set(eligibility.REFUSALS) | constants | refused_stops


def recorded(pattern: str) -> set[str]:
    found: set[str] = set()
    for source in INCOMING_WORKFLOW_SOURCES:
        found |= set(re.findall(pattern, source.read_text(encoding="utf-8")))
    return found


def texts_zh() -> list[str]:
    out = [t for g in REFUSAL_GUIDANCE.values() for t in (g.why_zh, g.todo_zh)]
    out += [t for s in STATUS_GUIDANCE.values() for t in (s.label_zh, s.awaiting_zh)]
    out += [s.label_zh for s in STEPS.values() if s is not None]
    return out


def filled(text: str) -> str:
    return text.format(outgoing=agency_zh("平凉市"), incoming=agency_zh("西安市"), region="平凉市")


def test_r17_every_refusal_code_has_guidance() -> None:
    missing = sorted(refusal_codes() - set(REFUSAL_GUIDANCE))
    assert not missing, f"refusal codes without guidance in domain/guidance.py: {missing}"
    for code in refusal_codes():
        guidance = refusal_guidance(code)
        assert guidance.code == code
        assert guidance is not UNKNOWN_REFUSAL
        assert guidance.why_zh
        assert guidance.todo_zh
        assert guidance.why_en
        assert guidance.todo_en


def test_r17_guidance_differs_where_the_cause_differs() -> None:
    entries = list(REFUSAL_GUIDANCE.values())
    for a, b in combinations(entries, 2):
        if a.cause != b.cause:
            assert a.todo_zh != b.todo_zh, (a.code, b.code)
            assert a.todo_en != b.todo_en, (a.code, b.code)
    # One cause per code here: no two codes share their advice by accident.
    assert len({g.cause for g in entries}) == len(entries)


def test_r17_arrears_advice_only_for_arrears() -> None:
    arrears = refusal_guidance(RefusalCode.CONTRIBUTION_ARREARS)
    assert "补缴" in arrears.todo_zh
    assert "arrears" in arrears.todo_en
    active = refusal_guidance(RefusalCode.ENROLMENT_ACTIVE)
    assert "停保" in active.todo_zh
    assert "suspend" in active.todo_en
    assert "{outgoing}" in active.todo_zh
    assert "原单位" in active.todo_zh
    frozen = refusal_guidance(RefusalCode.ACCOUNT_FROZEN)
    assert "冻结" in frozen.todo_zh
    assert "frozen" in frozen.todo_en
    assert "{outgoing}" in frozen.todo_zh  # the outgoing agency holds the account
    for guidance in REFUSAL_GUIDANCE.values():
        if guidance.code != RefusalCode.CONTRIBUTION_ARREARS:
            advice = f"{guidance.todo_zh} {guidance.todo_en}".lower()
            assert not any(w in advice for w in ARREARS_WORDS), guidance.code


def test_r17_an_unknown_code_or_status_still_reads_as_something() -> None:
    assert refusal_guidance("A_CODE_FROM_A_NEWER_RELEASE") is UNKNOWN_REFUSAL
    assert "{incoming}" in UNKNOWN_REFUSAL.todo_zh
    assert status_guidance("a_new_status") is UNKNOWN_STATUS
    assert step_text("an_event_of_a_newer_release") is None


def test_r17_every_status_the_incoming_workflow_records_has_plain_words() -> None:
    # The statuses are the closed set of domain/vocabulary.py (test_vocabulary.py checks
    # the workflows record no other).
    statuses = {status.value for status in IncomingStatus} - {IncomingStatus.STARTING.value}
    missing = sorted(statuses - set(STATUS_GUIDANCE))
    assert not missing, f"statuses without plain words in domain/guidance.py: {missing}"


def test_r17_every_event_the_incoming_workflow_records_is_shown_or_hidden_on_purpose() -> None:
    events = {CaseEventName[name].value for name in recorded(r"CaseEventName\.([A-Z_]+)")}
    events |= recorded(r'record\(\s*"([a-z_]+)"')
    events |= recorded(r'\(\s*"([a-z_]+)",\s*"[a-z_]+",\s*(?:None|"R\d+")\s*\)')  # STOPPED
    events |= {f"{kind.lower()}_received" for kind in ("Reminder", "Escalation")}
    assert {"application_accepted", "transfer_refused", "case_completed"} <= events
    missing = sorted(events - set(STEPS))
    assert not missing, f"timeline events without a step in domain/guidance.py: {missing}"


def test_r17_chinese_texts_are_wholly_chinese_and_fill_in_region_names() -> None:
    for text in texts_zh():
        fields = {f for _, f, _, _ in string.Formatter().parse(text) if f}
        assert fields <= PLACEHOLDERS, (text, fields)
        chinese = filled(text)
        assert not re.search(r"[A-Za-z]", chinese), chinese
        assert not re.search(r"\d{6}", chinese), chinese  # a region by name, not its code
    assert filled(refusal_guidance(RefusalCode.CONTRIBUTION_ARREARS).todo_zh) == (
        "请向平凉市医保经办机构补缴欠费，缴清后补正申请。"
    )
    assert agency_en("Pingliang") == "the medical insurance agency of Pingliang"


def test_r17_a_status_waiting_on_an_agency_says_by_when() -> None:
    for status in ("awaiting_transfer_out", "transfer_in", "awaiting_balance"):
        guidance = status_guidance(status)
        assert guidance.deadline is not None
        assert guidance.party in ("outgoing", "incoming")
    for status in ("completed", "refused", "withdrawn", "cancelled"):
        assert status_guidance(status).party == "nobody"
