"""Explanations a clerk trusts: every rule cites its source beside its id, and every
Chinese sentence a clerk or a person reads is wholly Chinese (rule ids, dates and
numbers aside)."""

from __future__ import annotations

import itertools
import re
from datetime import date

import pytest

from domain.articles import (
    MEASURES_ZH,
    PROVISIONS,
    TIME_LIMIT_COUNTING,
    citation_en,
    citation_zh,
)
from domain.balance import BalancePolicy, decide_balance
from domain.calendar import Deadline
from domain.continuity import deadline_decision
from domain.eligibility import _REFUSALS
from domain.guidance import REFUSAL_GUIDANCE, STATUS_GUIDANCE, STEPS

pytestmark = pytest.mark.unit

# What may stand in a Chinese sentence besides Chinese: rule ids, ISO dates, numbers,
# format placeholders and punctuation.
_ALLOWED = re.compile(r"R\d+(?:[-,]R\d+)*|\d{4}-\d{2}-\d{2}|\{[a-z_]+\}|[\d.,:%+\-\s]")


def _latin_words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z]+", _ALLOWED.sub("", text))


def test_r1_to_r28_each_rule_cites_its_provision_of_the_interim_measures() -> None:
    assert sorted(PROVISIONS, key=lambda r: int(r[1:])) == [f"R{n}" for n in range(1, 29)]
    for rule, provision in PROVISIONS.items():
        cited = citation_zh(rule)
        assert cited.startswith(rule)
        assert MEASURES_ZH in cited
        assert _latin_words(cited) == [], cited
        assert provision.citation_en().startswith(rule)
    # Rule lists cite their first rule; counting the limit cites Civil Code art. 201.
    assert citation_zh("R6-R9") == PROVISIONS["R6"].citation_zh()
    assert "第二百零一条" in TIME_LIMIT_COUNTING.citation_zh()


def test_r12_r14_time_limits_cite_how_their_days_are_counted() -> None:
    # Civil Code art. 201: the day of the event does not count (R12-R14, R13's example).
    for rule in ("R12", "R13", "R14"):
        assert citation_zh(rule).startswith(PROVISIONS[rule].citation_zh())
        assert "《中华人民共和国民法典》第二百零一条" in citation_zh(rule)
        assert "Civil Code" in citation_en(rule)
    for rule in ("R11", "R15", "R6-R9"):
        assert "民法典" not in citation_zh(rule)
        assert "Civil Code" not in citation_en(rule)


def test_r6_r9_refusal_sentences_and_guidance_are_wholly_chinese() -> None:
    for refusal in _REFUSALS.values():
        assert _latin_words(refusal.message_zh) == [], (refusal.code, refusal.message_zh)
    for guidance in REFUSAL_GUIDANCE.values():
        for text in (guidance.why_zh, guidance.todo_zh):
            assert _latin_words(text) == [], (guidance.code, text)
    for status in STATUS_GUIDANCE.values():
        assert _latin_words(status.label_zh + status.awaiting_zh) == [], status
    for step in STEPS.values():
        if step is not None:
            assert _latin_words(step.label_zh) == [], step


def test_r18_r22_balance_explanations_are_wholly_chinese() -> None:
    regions = ("620800", "610100", "440300", "441900")
    for (a, b), (s1, s2), retiree, connected, bank in itertools.product(
        itertools.permutations(regions, 2),
        itertools.product(("employee", "resident"), repeat=2),
        (False, True),
        (False, True),
        (False, True),
    ):
        decision = decide_balance(
            from_region=a,
            to_region=b,
            from_scheme=s1,  # type: ignore[arg-type]
            to_scheme=s2,  # type: ignore[arg-type]
            balance_fen=123_45,
            resettled_retiree=retiree,
            incoming_connected=connected,
            has_bank_account=bank,
            policy=BalancePolicy(),
        )
        assert _latin_words(decision.explanation_zh) == [], decision.explanation_zh


@pytest.mark.parametrize("rule", ["R12", "R13", "R14", "R23", "R6-R9"])
@pytest.mark.parametrize("fallback", [(), (2027,)])
def test_r12_r14_deadline_decisions_are_wholly_chinese_and_use_the_region_s_limit(
    rule: str, fallback: tuple[int, ...]
) -> None:
    decision = deadline_decision(
        rule=rule,
        start=date(2026, 12, 24),
        limit_days=7,
        deadline=Deadline(date(2027, 1, 6), fallback),
        policy_version="620800-2026.1",
    )
    assert _latin_words(decision.explanation_zh) == [], decision.explanation_zh
    assert "7个工作日" in decision.explanation_zh
    assert "7 working days" in decision.explanation_en
