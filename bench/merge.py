"""Fold the open-case phase of one benchmark run into another run's results.

Filling 100,000 open cases takes this machine about 1.5 hours; the ceilings and the
end-to-end steps take 10 minutes. When the short phases are re-run on the same commit
(after a change to how a step is judged, say), the long fill need not be repeated:

    python -m bench --skip open --out bench/results/latest.json
    python -m bench.merge bench/results/latest.json --open-from bench/results/fill.json

The open-case section keeps where it came from (``open_cases.from_run``), the violations
of both runs are added up (each run's own figures kept under ``violations.runs``), and the
headline figures and ratios are recomputed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench import report


def merge(base: dict[str, Any], donor: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``donor``'s open-case phase; both must come from the same commit."""
    from bench.__main__ import summarise  # the one place the headline figures are made

    if "open_cases" not in donor:
        raise ValueError("the donor run has no open-case phase")
    merged = dict(base)
    merged["open_cases"] = {
        **donor["open_cases"],
        "from_run": {
            key: donor.get(key)
            for key in ("generated_at", "args", "duration_s", "machine", "commit")
        },
    }
    runs = [base.get("violations") or {}, donor.get("violations") or {}]
    merged["violations"] = {
        "checked_cases": sum(r.get("checked_cases", 0) for r in runs),
        "method": runs[0].get("method") or runs[1].get("method"),
        "lost_cases": sum(r.get("lost_cases", 0) for r in runs),
        "lost_open_cases": sum(r.get("lost_open_cases", 0) for r in runs),
        "money_not_conserved": sum(r.get("money_not_conserved", 0) for r in runs),
        "total": sum(r.get("total", 0) for r in runs),
        "details": [d for r in runs for d in r.get("details", [])][:20],
        "runs": runs,
    }
    summarise(merged)
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.merge", description=__doc__)
    parser.add_argument("results", type=Path, help="the run to keep; rewritten in place")
    parser.add_argument("--open-from", type=Path, required=True, help="the run that filled")
    args = parser.parse_args()
    base = json.loads(args.results.read_text())
    donor = json.loads(args.open_from.read_text())
    if base.get("commit") and donor.get("commit") and base["commit"] != donor["commit"]:
        raise SystemExit(
            f"the runs measured different code ({base['commit']} and {donor['commit']})"
        )
    merged = merge(base, donor)
    args.results.write_text(json.dumps(merged, indent=2, ensure_ascii=False) + "\n")
    print(report.text_table([("measure", "figure", "note"), *report.rows(merged)]))


if __name__ == "__main__":
    main()
