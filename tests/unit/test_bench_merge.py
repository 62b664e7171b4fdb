"""bench.merge: a long run's open-case phase folded into a re-run of the short phases."""

from __future__ import annotations

from typing import Any

import pytest

from bench.merge import merge
from bench.report import rows

pytestmark = pytest.mark.unit


def run(generated_at: str, violations: int, open_sizes: list[int] | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "generated_at": generated_at,
        "args": "",
        "end_to_end": {"sustained_cases_per_s": 3.0, "half_load": None, "best_step": None},
        "ceilings": {"workflow_shape": {"cases_per_s": 6.0}},
        "violations": {"checked_cases": 10, "lost_cases": violations, "total": violations},
    }
    if open_sizes:
        result["open_cases"] = {
            "by_size": [
                {"open": n, "rss_mib": {"incoming-worker": 100 + n // 1000, "kafka": 400}}
                for n in open_sizes
            ]
        }
    return result


def test_the_open_phase_keeps_its_origin_and_the_violations_add_up() -> None:
    merged = merge(run("2026-11-25T10:00", 0), run("2026-11-25T09:00", 1, [10_000, 60_000]))
    assert merged["open_cases"]["from_run"]["generated_at"] == "2026-11-25T09:00"
    assert merged["generated_at"] == "2026-11-25T10:00"
    assert (merged["violations"]["total"], merged["violations"]["checked_cases"]) == (1, 20)
    assert merged["memory_growth_10k_to_100k"] == pytest.approx(0.455, abs=1e-3)
    assert merged["ratio_to_workflow_ceiling"] == 0.5
    assert any("run of 2026-11-25T09:00" in note for _, _, note in rows(merged))


def test_a_run_without_an_open_phase_cannot_give_one() -> None:
    with pytest.raises(ValueError, match="no open-case phase"):
        merge(run("a", 0), run("b", 0))
