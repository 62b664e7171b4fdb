"""docs/rule-index.md, the map from each rule id to its code and its tests, is current,
and every rule R1-R28 has both."""

from __future__ import annotations

import pytest

from tests.support.rule_index import (
    INDEX_PATH,
    RULES,
    code_mentions,
    main,
    mentioned_rules,
    proving_tests,
    rules_in_test_name,
)

pytestmark = pytest.mark.unit


def test_the_rule_index_is_up_to_date() -> None:
    assert main(["--check"]) == 0, f"run: make rule-index ({INDEX_PATH})"


def test_every_rule_has_code_that_names_it_and_a_test_that_carries_it() -> None:
    code, tests = code_mentions(), proving_tests()
    assert [r for r in RULES if not code[r]] == []
    assert [r for r in RULES if not tests[r]] == []


def test_rule_ids_are_read_as_written() -> None:
    assert mentioned_rules("R25-R27 and R10/R23, not R29 nor R120") == {
        "R25",
        "R26",
        "R27",
        "R10",
        "R23",
    }
    assert rules_in_test_name("test_r10_r23_offline_switch") == {"R10", "R23"}
    assert rules_in_test_name("test_attack_r21_finding") == {"R21"}
    assert rules_in_test_name("test_r100_is_no_rule") == set()
