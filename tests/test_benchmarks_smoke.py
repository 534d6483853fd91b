"""The benchmarks run end to end and return numbers (not that they meet their targets).

Each system benchmark runs with tiny sizes (a few hundred events, one round); together
they take well under a minute. `run_all.py` is run once for its report.
"""

from __future__ import annotations

import importlib
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def bench(name: str) -> Any:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)


def number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_shape(result: dict[str, Any], name: str) -> None:
    assert result["name"] == name
    assert result["rows"], result
    assert result["targets"], result
    for t in result["targets"]:
        assert number(t["value"]) and isinstance(t["met"], bool), t


def test_mapping_and_the_report(tmp_path: Path) -> None:
    result = bench("mapping").run(True, seconds=0.05, runs=1)
    check_shape(result, "mapping")
    assert number(result["metrics"]["overall_ratio"]) and result["metrics"]["overall_ratio"] > 0

    report = tmp_path / "report.md"
    done = subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--quick", "--only", "mapping", "--output", str(report)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    text = report.read_text()
    assert "## Targets" in text and "mapper / hand-written" in text
    assert text in done.stdout


def test_run_all_rejects_an_unknown_benchmark() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--only", "nope"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2 and "unknown benchmark" in done.stderr


@pytest.mark.integration
def test_ingress() -> None:
    result = bench("ingress").run(
        True, requests=150, rounds=1, workers=(1,), time_cap=15, probe_requests=200, paced_seconds=0.2
    )
    check_shape(result, "ingress")
    m = result["metrics"]["workers_1"]
    assert m["acks_per_s"] > 0 and m["noop_per_s"] > 0 and m["errors"] == 0
    assert number(m["p99_ms"]) and number(m["ratio"])
    assert m["steady_rate"] > 0 and number(m["steady_p99_ms"])


@pytest.mark.integration
def test_speed_to_lead() -> None:
    result = bench("speed_to_lead").run(True, rates=(100,), seconds=1.0, rounds=1, worker_processes=1)
    check_shape(result, "speed_to_lead")
    m = result["metrics"]["rate_100"]
    assert m["delivered"] == m["events"] > 0
    assert number(m["p50_ms"]) and number(m["p99_ms"])


@pytest.mark.integration
def test_rate_limited_crm() -> None:
    result = bench("rate_limited_crm").run(True, contacts=200, worker_processes=1, delivery_threads=16)
    check_shape(result, "rate_limited_crm")
    for policy, m in result["metrics"].items():
        assert m["stored"] == 200, policy
        assert number(m["rate"]) and m["rate"] > 0 and number(m["calls_per_contact"])
    # The fill-only merge reads before it upserts; the owner policy only upserts.
    assert "POST /crm/v3/objects/contacts/batch/read" in result["metrics"]["merge"]["calls_by_endpoint"]
    assert set(result["metrics"]["owner"]["calls_by_endpoint"]) == {
        "POST /crm/v3/objects/contacts/batch/upsert"
    }


@pytest.mark.integration
def test_backlog() -> None:
    result = bench("backlog").run(True, events=200, worker_processes=1)
    check_shape(result, "backlog")
    m = result["metrics"]
    assert m["drained"] and m["processed"] == 200
    assert m["redis_bytes_per_queued_event"] > 0 and m["worker_peak_rss_mb"] > 0
