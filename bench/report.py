"""The benchmark's one table (console and README) from the results JSON."""

from __future__ import annotations

from typing import Any


def _f(value: Any, digits: int = 1, suffix: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{suffix}"
    if isinstance(value, int):
        return f"{value:,}{suffix}"
    return str(value)


Row = tuple[str, str, str]


def rows(result: dict[str, Any]) -> list[Row]:
    """(measure, figure, note) rows, the headline first."""
    ceilings = result.get("ceilings", {})
    e2e = result.get("end_to_end", {})
    out: list[Row] = []
    add = out.append
    add(("end-to-end sustained", _f(result.get("cases_per_s"), 1, " cases/s"), "target >= 12"))
    half = e2e.get("half_load") or {}
    add(
        (
            "p50 / p95 / p99 at half load",
            " / ".join(_f((half.get("latency_s") or {}).get(k), 2, " s") for k in ("p50", "p95"))
            + " / "
            + _f(result.get("p99_s_at_half_load"), 2, " s"),
            f"at {_f(half.get('rate'), 1)} cases/s; target p99 < 1 s",
        )
    )
    out.extend(_saturated_rows(result, ceilings))
    out.extend(_engine_rows(result, ceilings))
    out.extend(_open_case_rows(result))
    add(
        (
            "memory growth between open sizes",
            _f(result.get("memory_growth_10k_to_100k"), 3),
            "services+workers RSS; target within 0.10",
        )
    )
    violations = result.get("violations") or {}
    add(
        (
            "violations (I1 lost cases + I2 money)",
            _f(violations.get("total")),
            f"lost {_f(violations.get('lost_cases'))}, money "
            f"{_f(violations.get('money_not_conserved'))}",
        )
    )
    machine = result.get("machine") or {}
    add(
        (
            "machine",
            f"{machine.get('cores')} cores",
            f"loadavg at start {machine.get('loadavg_start')}, "
            f"max during {machine.get('loadavg_max')}",
        )
    )
    return out


def _saturated_rows(result: dict[str, Any], ceilings: dict[str, Any]) -> list[Row]:
    """The whole stack's closed loop beside the same-shape ceiling's."""
    shape = ceilings.get("workflow_shape") or {}
    return [
        (
            "end-to-end saturated",
            _f(result.get("saturated_cases_per_s"), 1, " cases/s"),
            "closed loop, as many in flight as the same-shape ceiling; ratio to it "
            f"{_f(result.get('ratio_saturated_to_workflow_ceiling'), 2)}",
        ),
        (
            "same-shape workflow ceiling",
            _f(shape.get("cases_per_s"), 1, " cases/s"),
            f"ratio end-to-end/ceiling {_f(result.get('ratio_to_workflow_ceiling'), 2)}",
        ),
    ]


def _engine_rows(result: dict[str, Any], ceilings: dict[str, Any]) -> list[Row]:
    """CPU per case, and the Kafka and database ceilings."""
    out: list[Row] = []
    add = out.append
    cpu = result.get("cpu") or {}
    add(
        (
            "CPU per case (all processes)",
            _f(cpu.get("total_s_per_case"), 4, " s"),
            f"target <= 0.13 s; CPU-derived limit {_f(cpu.get('cpu_limit_cases_per_s'), 1)} "
            f"cases/s; ratio {_f(result.get('ratio_to_cpu_limit'), 2)}",
        )
    )
    for name, seconds in (cpu.get("s_per_case") or {}).items():
        add((f"  CPU per case: {name}", _f(seconds, 4, " s"), ""))
    raw = ceilings.get("kafka_raw") or {}
    faststream = ceilings.get("kafka_faststream") or {}
    add(("Kafka 1 KB, raw aiokafka", _f(raw.get("records_per_s"), 0, " records/s"), ""))
    add(
        (
            "Kafka 1 KB, FastStream",
            _f(faststream.get("records_per_s"), 0, " records/s"),
            f"ratio FastStream/raw {_f(result.get('ratio_faststream_to_aiokafka'), 2)}",
        )
    )
    out += _ladder_rows(ceilings)
    sqlite = ceilings.get("db_sqlite") or {}
    postgres = ceilings.get("db_postgres") or {}
    add(("case transactions, SQLite", _f(sqlite.get("cases_per_s"), 1, " cases/s"), ""))
    add(
        (
            "case transactions, PostgreSQL",
            _f(postgres.get("cases_per_s"), 1, " cases/s") if postgres else "n/a",
            f"ratio SQLite/PostgreSQL {_f(result.get('ratio_sqlite_to_postgres'), 2)}"
            if postgres
            else str(ceilings.get("db_postgres_reason") or ""),
        )
    )
    return out


def _ladder_rows(ceilings: dict[str, Any]) -> list[Row]:
    """The ceiling ladder (bench/ladder.py): each rung's rate and the unit costs."""
    ladder = ceilings.get("ladder") or {}
    if not ladder:
        return []
    rungs = ladder.get("rungs") or {}
    costs = ladder.get("unit_costs_cpu_s") or {}
    out: list[Row] = [
        (f"ladder: {name}", _f(rung.get("workflows_per_s"), 1, " workflows/s"), "")
        for name, rung in rungs.items()
    ]
    labels = {
        "start_and_complete_s": "start and complete",
        "signal_and_workflow_task_s": "a signal and its workflow task",
        "local_activity_s": "a local activity",
        "case_shape_s": "the same-shape case",
    }
    out += [
        (f"  CPU: {label}", _f(costs.get(key), 4, " s"), "worker + server")
        for key, label in labels.items()
    ]
    return out


def _open_case_rows(result: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    add = out.append
    open_cases = result.get("open_cases") or {}
    donor = open_cases.get("from_run") or {}
    from_run = f"; run of {donor['generated_at'][:16]}" if donor.get("generated_at") else ""
    for entry in open_cases.get("by_size", []):
        rss = entry.get("rss_mib", {})
        services = sum(v for k, v in rss.items() if k.endswith(("-api", "-worker")))
        latency = entry.get("new_case_latency_s") or {}
        add(
            (
                f"{entry['open']:,} open cases",
                f"services+workers {services:,} MiB",
                f"new case p50 {_f(latency.get('p50'), 2)} s, p99 {_f(latency.get('p99'), 2)} s; "
                f"Temporal {_f(rss.get('temporal'))} MiB; filled at "
                f"{_f(entry.get('fill_cases_per_s'), 0)}/s{from_run}",
            )
        )
    return out


def steps_rows(result: dict[str, Any]) -> list[tuple[str, ...]]:
    steps = (result.get("end_to_end") or {}).get("steps", [])
    table: list[tuple[str, ...]] = [
        ("rate/s", "done/s", "p50 s", "p95 s", "p99 s", "backlog/s", "sustained", "runs: done/s")
    ]
    for step in steps:
        latency = step.get("latency_s") or {}
        table.append(
            (
                _f(step["rate"], 1),
                _f(step.get("throughput_cases_per_s"), 1),
                _f(latency.get("p50"), 2),
                _f(latency.get("p95"), 2),
                _f(latency.get("p99"), 2),
                _f(step.get("backlog_slope_per_s"), 1),
                "yes" if step.get("sustained") else "no",
                _runs(step),
            )
        )
    return table


def _runs(step: dict[str, Any]) -> str:
    """A median step's runs (lowest to highest throughput); one run: the step itself."""
    low, high = (step.get("spread") or {}).get("throughput_cases_per_s") or [None, None]
    if low is None:
        return "1 run"
    return f"{len(step.get('repeats') or [])} runs, {_f(low, 1)}-{_f(high, 1)}"


def text_table(table: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in table)


def markdown(result: dict[str, Any]) -> str:
    lines = ["| measure | figure | note |", "| --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows(result)]
    steps = steps_rows(result)
    lines += ["", "| " + " | ".join(steps[0]) + " |", "|" + " --- |" * len(steps[0])]
    lines += ["| " + " | ".join(r) + " |" for r in steps[1:]]
    return "\n".join(lines)


def main() -> None:
    """``python -m bench.report [results.json]``: the README's table (Markdown)."""
    import json
    import sys
    from pathlib import Path

    path = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results/latest.json")
    print(markdown(json.loads(path.read_text())))


if __name__ == "__main__":
    main()
