"""The benchmark's step arithmetic (bench/load.py): Poisson arrivals, the median of a step's
runs with their spread, and the refusal to measure a tree with uncommitted changes."""

from __future__ import annotations

import itertools
import random
import statistics
from pathlib import Path

import pytest

import bench.__main__ as bench_main
from bench.load import StepResult, median_of, poisson_offsets

pytestmark = pytest.mark.unit


def test_poisson_arrivals_keep_the_rate_with_exponential_gaps() -> None:
    offsets = poisson_offsets(20.0, 600.0, random.Random(1))
    assert offsets == sorted(offsets)
    assert offsets[0] >= 0
    assert offsets[-1] < 600.0
    assert len(offsets) / 600.0 == pytest.approx(20.0, rel=0.05)
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    # Exponential gaps: the standard deviation is about the mean (a fixed grid has none).
    assert statistics.stdev(gaps) == pytest.approx(statistics.mean(gaps), rel=0.1)


def test_poisson_arrivals_repeat_for_a_seed_and_differ_between_seeds() -> None:
    first = poisson_offsets(5.0, 60.0, random.Random(0))
    assert first == poisson_offsets(5.0, 60.0, random.Random(0))
    assert first != poisson_offsets(5.0, 60.0, random.Random(1))
    assert poisson_offsets(0.001, 1.0, random.Random(0)) == [0.0]  # a step has one case


def _run(throughput: float, p99: float, sustained: bool, cpu: float) -> StepResult:
    return StepResult(
        rate=10.0,
        seconds=120.0,
        submitted=1200,
        ok=1200,
        errors=0,
        completed=1200,
        backlog_slope=0.1,
        sustained=sustained,
        throughput=throughput,
        latency={"p50": p99 / 2, "p95": p99 * 0.9, "p99": p99, "max": p99 * 2},
        cpu_s_per_case={"incoming-worker": cpu, "audit": None},
        busy_percent={"incoming-worker": 50},
        case_ids=[f"c{throughput}"],
    )


def test_a_step_of_three_runs_reports_their_median_and_spread() -> None:
    step = median_of(
        [_run(9.0, 0.8, True, 0.2), _run(10.0, 0.5, True, 0.1), _run(4.0, 3.0, False, 0.4)]
    )
    assert step.sustained  # two of three held
    assert step.throughput == 9.0
    assert step.latency["p99"] == 0.8
    assert step.cpu_s_per_case == {"incoming-worker": 0.2, "audit": None}
    assert step.submitted == 3600
    assert len(step.case_ids) == 3
    figures = step.to_json()
    assert figures["spread"] == {
        "throughput_cases_per_s": [4.0, 10.0],
        "p99_s": [0.5, 3.0],
        "cpu_s_per_case_total": [0.1, 0.4],
    }
    assert [r["throughput_cases_per_s"] for r in figures["repeats"]] == [9.0, 10.0, 4.0]


def test_a_step_held_once_in_three_runs_is_not_sustained() -> None:
    runs = [_run(9.0, 0.8, True, 0.2), _run(4.0, 3.0, False, 0.4), _run(4.5, 2.0, False, 0.4)]
    assert not median_of(runs).sustained
    single = _run(9.0, 0.8, True, 0.2)
    assert median_of([single]) is single
    assert "repeats" not in single.to_json()


def test_the_benchmark_refuses_a_tree_with_uncommitted_changes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bench_main, "source_commit", lambda _dir: "abc1234+changes")
    monkeypatch.setattr(bench_main, "single_run_lock", lambda: pytest.fail("measured anyway"))
    assert bench_main.main(["--quick"]) == 2
    assert "abc1234+changes" in capsys.readouterr().err


def test_the_database_ceiling_runs_whole_cases(tmp_path: Path) -> None:
    """bench/dbloop.py drives the records as the workflows do (the R16 transfer-out with the
    balance its check saw): a few whole cases run, none refused."""
    from datetime import UTC, datetime

    from bench.dbloop import run_loop
    from domain.regions import load_region_registry

    figures = run_loop(
        f"sqlite:///{tmp_path / 'incoming.db'}",
        f"sqlite:///{tmp_path / 'outgoing.db'}",
        load_region_registry(),
        seconds=30.0,
        max_cases=5,
        today=datetime.now(UTC).date(),
    )
    assert figures["cases"] == 5


def _history(**counts: int) -> dict[str, int]:
    base = {
        "activities": 5,
        "local_activities": 10,
        "timers": 3,
        "signals": 2,
        "patches": 3,
        "workflow_tasks": 15,
        "events": 120,
    }
    return base | counts


def test_the_same_shape_check_compares_workflow_tasks_and_history_events() -> None:
    shape = {"incoming": _history(), "outgoing": _history()}
    same = {"incoming": _history(events=125), "outgoing": _history(timers=1)}
    assert bench_main.shape_matches({"real": same, "shape": shape}) is True
    more_tasks = {"incoming": _history(workflow_tasks=19), "outgoing": _history()}
    assert bench_main.shape_matches({"real": more_tasks, "shape": shape}) is False
    more_events = {"incoming": _history(), "outgoing": _history(events=140)}
    assert bench_main.shape_matches({"real": more_events, "shape": shape}) is False
    assert bench_main.shape_matches({"real": None, "shape": shape}) is None


def test_the_ladder_gives_unit_costs_by_difference_of_its_rungs() -> None:
    from bench.ladder import unit_costs

    rungs = {
        "start": {"cpu_s_per_workflow": {"ladder-worker": 0.002, "temporal": 0.001}},
        "signal": {"cpu_s_per_workflow": {"ladder-worker": 0.003, "temporal": 0.0015}},
        "local": {"cpu_s_per_workflow": {"ladder-worker": 0.0042, "temporal": 0.0016}},
    }
    assert unit_costs(rungs, 0.4) == {
        "start_and_complete_s": 0.003,
        "signal_and_workflow_task_s": 0.0015,
        "local_activity_s": 0.0013,
        "case_shape_s": 0.4,
    }
    assert unit_costs({}, None)["signal_and_workflow_task_s"] is None
