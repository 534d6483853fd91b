"""The summary a run prints: its numbers by section, then every check with PASS/FAIL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Check", "format_summary"]


@dataclass(frozen=True)
class Check:
    """One verdict line. `timing`: a latency target (the run's exit status counts it; a
    caller that only wants correctness, like the short test, may not)."""

    name: str
    ok: bool
    detail: str
    timing: bool = False


def _rows(title: str, rows: list[tuple[str, Any]]) -> list[str]:
    width = max(len(k) for k, _ in rows)
    return [title, *(f"  {k:<{width}}  {v}" for k, v in rows)]


def format_summary(
    sections: list[tuple[str, list[tuple[str, Any]]]], kills: list[dict[str, Any]], checks: list[Check]
) -> str:
    lines = ["", "=" * 78, "CHAOS RUN SUMMARY", "=" * 78]
    for title, rows in sections:
        lines += _rows(title, rows)
    if kills:
        lines.append("worker kills (seconds from the SIGKILL; method: chaos/probes.py)")
        lines.append(
            f"  {'#':>2} {'worker':<10} {'at s':>7} {'in flight':>9} {'queued':>7} "
            f"{'requeued':>9} {'redelivered':>11} {'run':>6} {'delivered':>10}  also happened"
        )
        for n, kill in enumerate(kills, 1):
            cells = [
                "-" if kill[k] is None else f"{kill[k]:.1f}"
                for k in ("requeued_after", "redelivered_after", "run_after", "delivered_after")
            ]
            lines.append(
                f"  {n:>2} {kill['worker']:<10} {kill['at']:>7.1f} {kill['inflight']:>9} {kill['queued']:>7} "
                f"{cells[0]:>9} {cells[1]:>11} {cells[2]:>6} {cells[3]:>10}  "
                f"{', '.join(kill['disturbed_by']) or '-'}"
            )
    lines.append("checks")
    for check in checks:
        mark = "PASS" if check.ok else "FAIL"
        lines.append(f"  [{mark}]{' (timing)' if check.timing else ''} {check.name}: {check.detail}")
    failed = sum(1 for c in checks if not c.ok)
    lines += [
        "=" * 78,
        f"RESULT: {'PASS' if not failed else f'FAIL ({failed} of {len(checks)} checks)'}",
        "=" * 78,
    ]
    return "\n".join(lines)
