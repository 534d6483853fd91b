"""Backlog: drain time of a queued backlog into the local CRM, worker memory, Redis memory.

Signed Shopify orders (each a new buyer) are posted to the ingress with no worker running
(100,000; quick: 10,000); Redis `used_memory` before and after gives the memory per queued
event. Then the ingress stops, 2 `crmhub worker` processes start, and the time until every
event is `delivered` (flow `do: [upsert_contact]`) is the drain time. Peak RSS is VmHWM from
/proc/<pid>/status of each worker process and its children, sampled while they run.
The drain rate is also given per tenth of the backlog (median of the ten).

    .venv/bin/python benchmarks/backlog.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from harness import (
    Stack,
    blast,
    config_text,
    local_destination,
    median,
    shopify_orders,
    target,
    tree_peak_rss_mb,
)

TARGET_RSS_MB = 150.0


def run(
    quick: bool,
    *,
    events: int | None = None,
    worker_processes: int = 2,
    actions: tuple[str, ...] = ("upsert_contact",),
    drain_cap: float | None = None,
    client: str = "raw",
) -> dict[str, Any]:
    events = events or (10_000 if quick else 100_000)
    drain_cap = drain_cap or (300.0 if quick else 1_800.0)
    chunk = 10_000
    peaks: dict[int, float] = {}
    marks: list[tuple[float, int]] = []  # (t, processed)
    with Stack(lambda d: config_text(local_destination(d / "crm.db"), actions=actions), "backlog") as stack:
        base = stack.serve("ingress", workers=2)
        blast(f"{base}/hooks/shop", shopify_orders(50, "warm"), concurrency=10, client=client)
        stack.redis.flushdb()
        before = stack.used_memory()
        acked = 0
        enqueue_started = time.monotonic()
        for start in range(0, events, chunk):  # chunks: never hold 100,000 requests in memory
            count = min(chunk, events - start)
            result = blast(
                f"{base}/hooks/shop",
                shopify_orders(count, f"b{start}"),
                concurrency=50,
                time_cap=600,
                client=client,
            )
            acked += result.ok
        enqueue_s = time.monotonic() - enqueue_started
        after = stack.used_memory()
        queued = stack.queue_depth()
        if acked != events or queued != events:
            raise RuntimeError(f"{acked} of {events} acknowledged, {queued} queued")
        stack.stop("ingress")
        started = time.monotonic()
        procs = [stack.worker(f"worker-{i}") for i in range(worker_processes)]
        deadline = started + drain_cap
        processed = 0
        next_mark = events / 10
        for _ in range(int(drain_cap / 0.25) + 1):
            for proc in procs:
                for pid, mb in tree_peak_rss_mb(proc.pid).items():
                    peaks[pid] = max(peaks.get(pid, 0.0), mb)
            counts = stack.status_counts()
            processed = counts["delivered"] + counts["ignored"] + counts["dead"]
            now = time.monotonic()
            while processed >= next_mark and len(marks) < 10:
                marks.append((now, processed))
                next_mark += events / 10
            if processed >= events or now >= deadline:
                break
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a worker exited:\n" + stack.log_tail("worker-0"))
            time.sleep(0.25)
        drain_s = time.monotonic() - started
        queue_empty = stack.queue_depth() == 0
        after_drain = stack.used_memory()
        counts = stack.status_counts()
        pool_errors = stack.log_count("MaxConnectionsError")
    tenths, last = [], (started, 0)
    for t, n in marks:
        if t > last[0]:
            tenths.append((n - last[1]) / (t - last[0]))
        last = (t, n)
    per_event = (after - before) / events
    peak = max(peaks.values(), default=float("nan"))
    metrics = {
        "events": events,
        "enqueue_s": enqueue_s,
        "enqueue_per_s": events / enqueue_s,
        "drain_s": drain_s,
        "drained": processed >= events,
        "processed": processed,
        "drain_per_s": processed / drain_s,
        "drain_per_s_tenths": tenths,
        "drain_per_s_median_tenth": median(tenths),
        "redis_bytes_per_queued_event": per_event,
        "redis_used_before_mb": before / 2**20,
        "redis_used_queued_mb": after / 2**20,
        "redis_bytes_per_event_after_drain": (after_drain - before) / events,
        "worker_peak_rss_mb": peak,
        "worker_peak_rss_by_pid_mb": peaks,
        "queue_empty": queue_empty,
        "status_counts": counts,
        "pool_errors": pool_errors,
    }
    rows = [
        {"measure": "events queued", "value": f"{events:,} (acknowledged at {events / enqueue_s:,.0f}/s)"},
        {
            "measure": "drain time (s), worker start to last delivered",
            "value": drain_s if processed >= events else f"{drain_s:.0f} (capped: {processed:,} done)",
        },
        {"measure": "drain rate (events/s), overall", "value": processed / drain_s},
        {"measure": "drain rate (events/s), median of tenths", "value": median(tenths)},
        {"measure": "Redis memory per queued event (bytes)", "value": per_event},
        {
            "measure": "Redis memory per event after the drain (event log kept, bytes)",
            "value": (after_drain - before) / events,
        },
        {"measure": "worker peak RSS (MB, max over processes)", "value": peak},
        {
            "measure": "worker peak RSS by pid (MB)",
            "value": ", ".join(f"{pid}: {mb:.0f}" for pid, mb in sorted(peaks.items())),
        },
    ]
    return {
        "name": "backlog",
        "title": "Backlog: draining queued events into the local CRM",
        "metrics": metrics,
        "rows": rows,
        "targets": [target("worker peak RSS", peak, "<", TARGET_RSS_MB, " MB")],
        "notes": [
            f"{worker_processes} `crmhub worker` processes (8 event + 32 delivery threads each), flow "
            f"`do: [{', '.join(actions)}]`, every order a new buyer; the backlog was posted through "
            "`crmhub serve --workers 2` with no worker running, and the ingress stopped before the drain.",
            "Redis memory per queued event = (used_memory after - before enqueuing) / events: the raw "
            "request in the event log, the dedupe key, three index entries and the queued message.",
            "Event status counts at the end: "
            + ", ".join(f"{k} {v}" for k, v in counts.items() if v)
            + f"; MaxConnectionsError lines in the logs: {pool_errors}.",
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--events", type=int)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.quick, events=args.events), indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
