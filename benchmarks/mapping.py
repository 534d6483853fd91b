"""Mapping: compiled YAML mapping vs hand-written Python (benchmarks/mapping_throughput.py).

Runs what `mapping_throughput.main()` runs (equivalence check, interleaved timed runs,
its printed table) through that module's own functions, and returns the numbers.
"""

from __future__ import annotations

import contextlib
import io
import statistics
from typing import Any

import mapping_throughput as mt
from harness import target


def run(quick: bool, *, seconds: float | None = None, runs: int | None = None) -> dict[str, Any]:
    seconds = seconds or (0.3 if quick else 1.0)
    runs = runs or (3 if quick else 5)
    warmup = 0.1 if quick else 0.3
    cases = mt.load_cases()
    problems = [p for case in cases for p in mt.check_equivalence(case)]
    if problems:
        raise RuntimeError("hand-written Bundles differ from the mapping's: " + "; ".join(problems[:3]))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        mt.run(cases, seconds=seconds, runs=runs, warmup=warmup)
        overall = mt.report(cases, seconds=seconds, runs=runs)
    rows, metrics = [], {}
    for case in cases:
        m = {
            "mapper_per_s": statistics.median(case.mapper_rates),
            "hand_per_s": statistics.median(case.hand_rates),
            "ratio": statistics.median(case.ratios),
            "ratio_min": min(case.ratios),
            "ratio_max": max(case.ratios),
            "fixtures": len(case.events),
        }
        metrics[case.event] = m
        rows.append(
            {
                "event": case.event,
                "mapper rec/s": m["mapper_per_s"],
                "hand-written rec/s": m["hand_per_s"],
                "ratio": m["ratio"],
                "ratio range": f"{m['ratio_min']:.2f}-{m['ratio_max']:.2f}",
                "fixtures": m["fixtures"],
            }
        )
    metrics["overall_ratio"] = overall
    checks = [
        target(
            f"mapper / hand-written, {case.event}", metrics[case.event]["ratio"], ">=", mt.TARGET_RATIO, "x"
        )
        for case in cases
    ]
    return {
        "name": "mapping",
        "title": "Mapping: compiled YAML mapping vs hand-written Python",
        "metrics": metrics,
        "rows": rows,
        "targets": checks,
        "notes": [
            f"Median of {runs} interleaved runs of {seconds:g} s each per implementation "
            "(benchmarks/mapping_throughput.py); the ratio is the median of per-run ratios, "
            "so the hand-written baseline is measured in the same run.",
        ],
        "output": printed.getvalue(),
    }
