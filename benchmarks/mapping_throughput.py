"""Mapping throughput: the compiled YAML mapping versus hand-written Python, same run.

For Shopify `orders/create` (mappings/shopify/orders_create.yaml) and Typeform
`form_response` (mappings/typeform/form_response.yaml), cycles over the connector's
fixtures and measures records/s of

- the compiled mapper: `MappingSet.load(Connector.mapping_dir()).get(event).map(event, ...)`
- the hand-written function of benchmarks/handwritten.py, which builds the same Bundle
  (checked here before timing, and by tests/test_benchmark_equivalence.py).

Runs are interleaved (mapper, hand-written, hand-written, mapper, ...) and each figure is
the median of N runs; the ratio is mapper / hand-written (the median of the per-run
ratios). The project's target is a ratio of at least 0.5. Payloads are parsed JSON
before timing: only the mapping is measured.

    .venv/bin/python benchmarks/mapping_throughput.py --runs 5 --seconds 1
    .venv/bin/python benchmarks/mapping_throughput.py --runs 1 --seconds 0.5 --profile
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for entry in (str(HERE), str(HERE.parent)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

import handwritten  # noqa: E402
import pydantic  # noqa: E402

from connectors.shopify.connector import ShopifyConnector  # noqa: E402
from connectors.typeform.connector import TypeformConnector  # noqa: E402
from hub import SourceEvent  # noqa: E402
from hub.canonical import Bundle  # noqa: E402
from hub.mapping import Mapper, MappingSet  # noqa: E402

TARGET_RATIO = 0.5


@dataclass
class Case:
    """One benchmarked event: its compiled mapper, hand-written function and fixtures."""

    event: str
    connector: str
    mapper: Mapper
    hand: Callable[[Any, str, str], Bundle]
    events: list[SourceEvent]
    mapper_rates: list[float] = field(default_factory=list)
    hand_rates: list[float] = field(default_factory=list)

    def run_mapper(self, event: SourceEvent) -> Bundle:
        return self.mapper.map(event, connector=self.connector)

    def run_hand(self, event: SourceEvent) -> Bundle:
        return self.hand(event.data, event.id, self.mapper.version)

    @property
    def ratios(self) -> list[float]:
        return [m / h for m, h in zip(self.mapper_rates, self.hand_rates, strict=True)]


def load_cases() -> list[Case]:
    specs: list[tuple[Any, str, str, Callable[[Any, str, str], Bundle]]] = [
        (ShopifyConnector, "orders/create", "orders_create", handwritten.shopify_order_to_bundle),
        (TypeformConnector, "form_response", "form_response", handwritten.typeform_response_to_bundle),
    ]
    cases = []
    at = datetime(2026, 1, 1, tzinfo=UTC)
    for connector, event, folder, hand in specs:
        mapper = MappingSet.load(connector.mapping_dir()).get(event)
        if mapper is None:
            raise SystemExit(f"no shipped mapping for {event}")
        paths = sorted((connector.fixtures_dir() / folder).glob("*.json"))
        if not paths:
            raise SystemExit(f"no fixtures for {event} in {connector.fixtures_dir() / folder}")
        events = [
            SourceEvent(event, f"bench-{p.stem}", at, json.loads(p.read_text(encoding="utf-8")))
            for p in paths
        ]
        cases.append(Case(event, connector.name, mapper, hand, events))
    return cases


def check_equivalence(case: Case) -> list[str]:
    """The fixtures where the hand-written Bundle differs from the mapped one."""
    problems = []
    for event in case.events:
        mapped, written = case.run_mapper(event), case.run_hand(event)
        if mapped != written or mapped.model_dump_json() != written.model_dump_json():
            problems.append(f"{case.event} {event.id}: hand-written Bundle differs from the mapping's")
    return problems


def measure(fn: Callable[[SourceEvent], Bundle], events: list[SourceEvent], seconds: float) -> float:
    """Records/s of `fn` cycling over `events` for about `seconds` (whole cycles)."""
    gc.collect()
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for event in events:
            fn(event)
        count += len(events)
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def run(cases: list[Case], *, seconds: float, runs: int, warmup: float) -> None:
    for case in cases:
        measure(case.run_mapper, case.events, warmup)
        measure(case.run_hand, case.events, warmup)
    for index in range(runs):
        for case in cases:
            order = [("mapper", case.run_mapper), ("hand", case.run_hand)]
            if index % 2:
                order.reverse()
            for name, fn in order:
                rate = measure(fn, case.events, seconds)
                (case.mapper_rates if name == "mapper" else case.hand_rates).append(rate)


def report(cases: list[Case], *, seconds: float, runs: int) -> float:
    print(
        f"Mapping throughput: median of {runs} interleaved run(s) of {seconds:g} s each "
        f"(Python {platform.python_version()}, pydantic {pydantic.VERSION}, {platform.machine()})"
    )
    header = (
        f"{'event':<15} {'fixtures':>8} {'mapper rec/s':>13} {'hand-written rec/s':>19} "
        f"{'ratio':>7}  ratio range"
    )
    print(header)
    print("-" * len(header))
    medians = []
    for case in cases:
        ratio = statistics.median(case.ratios)
        medians.append(ratio)
        print(
            f"{case.event:<15} {len(case.events):>8} {statistics.median(case.mapper_rates):>13,.0f} "
            f"{statistics.median(case.hand_rates):>19,.0f} {ratio:>6.2f}x  "
            f"{min(case.ratios):.2f}-{max(case.ratios):.2f}"
        )
    overall = statistics.median(medians)
    verdict = "meets" if overall >= TARGET_RATIO else "misses"
    print(
        f"median ratio (mapper / hand-written): {overall:.2f}x, "
        f"{verdict} the target of >= {TARGET_RATIO:.1f}x"
    )
    return overall


def profile(cases: list[Case], *, seconds: float, top: int, sort: str) -> None:
    for case in cases:
        profiler = cProfile.Profile()
        profiler.enable()
        measure(case.run_mapper, case.events, seconds)
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.strip_dirs().sort_stats(sort).print_stats(top)
        print(f"\n=== cProfile of the {case.event} mapper ({seconds:g} s, top {top} by {sort}) ===")
        print(out.getvalue().strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=1.0, help="length of each timed run (default 1)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per implementation (default 5)")
    parser.add_argument("--warmup", type=float, default=0.3, help="untimed warm-up per implementation (s)")
    parser.add_argument("--profile", action="store_true", help="also profile the mapper under cProfile")
    parser.add_argument("--top", type=int, default=15, help="profile entries to print (default 15)")
    parser.add_argument(
        "--sort", default="cumulative", choices=["cumulative", "tottime", "ncalls"], help="profile order"
    )
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.runs < 1:
        parser.error("--seconds must be > 0 and --runs >= 1")

    cases = load_cases()
    problems = [p for case in cases for p in check_equivalence(case)]
    if problems:
        print("\n".join(problems), file=sys.stderr)
        print("the hand-written functions must build the same Bundles; not timing", file=sys.stderr)
        return 1
    run(cases, seconds=args.seconds, runs=args.runs, warmup=args.warmup)
    report(cases, seconds=args.seconds, runs=args.runs)
    if args.profile:
        profile(cases, seconds=args.seconds, top=args.top, sort=args.sort)
    return 0


if __name__ == "__main__":
    sys.exit(main())
