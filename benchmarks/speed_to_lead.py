"""Speed to lead: from webhook sent to contact stored in the local CRM, at a steady rate.

A paced open-loop sender posts signed Shopify orders (each a new buyer) at 100 and at 500
events/s for ~20 s each to `crmhub serve`, with 2 `crmhub worker` processes delivering to
the local CRM (flow `do: [upsert_contact]`). The latency of one event is the time its
status became `delivered` (the score of `crmhub:events:status:delivered`, set after the
SQLite transaction committed) minus the client-side wall-clock time just before its request
was sent. Rates alternate over the rounds; every figure is the median over rounds, and the
ack latency of the same requests is reported as the baseline.

    .venv/bin/python benchmarks/speed_to_lead.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from harness import (
    LoadResult,
    Stack,
    config_text,
    local_destination,
    median,
    paced,
    pct,
    shopify_orders,
    target,
    wait_until,
)

TARGET_P99_MS = 1_000.0
#: Requests outstanding at once, at most (a bounded open loop: when the hub falls behind, the
#: sender slows down instead of opening ever more connections).
MAX_IN_FLIGHT = 90


def _phase(
    stack: Stack, base: str, rate: int, seconds: float, tag: str, *, drain_cap: float, client: str
) -> dict[str, Any]:
    shots = shopify_orders(int(rate * seconds), tag)
    sent: LoadResult = paced(
        f"{base}/hooks/shop",
        shots,
        rate=rate,
        time_cap=seconds + 2,
        client=client,
        max_in_flight=MAX_IN_FLIGHT,
    )
    ids = list(sent.sent_at)
    wait_until(lambda: len(stack.delivered_at(ids)) >= len(ids), timeout=drain_cap, interval=0.5)
    done = stack.delivered_at(ids)
    latencies = [done[i] - sent.sent_at[i] for i in ids if i in done]
    first_sent = min(sent.sent_at.values(), default=0.0)
    last_done = max(done.values(), default=0.0)
    return {
        "rate": rate,
        "sent": sent.sent,
        "acked": sent.ok,
        "send_rate": sent.ok / sent.elapsed if sent.elapsed else 0.0,
        "delivered": len(done),
        "throughput": len(done) / ((last_done - first_sent) / 1000) if last_done > first_sent else 0.0,
        "p50_ms": pct(latencies, 50),
        "p99_ms": pct(latencies, 99),
        "max_ms": max(latencies, default=float("nan")),
        "ack_p50_ms": sent.p(50),
        "ack_p99_ms": sent.p(99),
        "errors": sum(sent.errors.values()) + sent.sent - sent.ok,
        "error_kinds": {**{str(k): v for k, v in sent.statuses.items() if k != 200}, **sent.errors},
        "error_bodies": sent.error_bodies,
    }


def run(
    quick: bool,
    *,
    rates: tuple[int, ...] = (100, 500),
    seconds: float | None = None,
    rounds: int | None = None,
    worker_processes: int = 2,
    ingress_workers: int = 1,
    client: str = "raw",
) -> dict[str, Any]:
    seconds = seconds or (5.0 if quick else 20.0)
    rounds = rounds or (1 if quick else 3)
    drain_cap = 60.0 if quick else 180.0
    phases: dict[int, list[dict[str, Any]]] = {r: [] for r in rates}
    with Stack(lambda d: config_text(local_destination(d / "crm.db")), "lead") as stack:
        base = stack.serve("ingress", workers=ingress_workers)
        for i in range(worker_processes):
            stack.worker(f"worker-{i}")
        warm = paced(f"{base}/hooks/shop", shopify_orders(100, "warm"), rate=50, time_cap=10, client=client)
        if not wait_until(lambda: len(stack.delivered_at(list(warm.sent_at))) >= warm.ok, timeout=60):
            raise RuntimeError(
                "the workers did not deliver the warm-up events:\n" + stack.log_tail("worker-0")
            )
        for r in range(rounds):
            order = rates if r % 2 == 0 else tuple(reversed(rates))
            for rate in order:
                phases[rate].append(
                    _phase(stack, base, rate, seconds, f"r{r}-{rate}", drain_cap=drain_cap, client=client)
                )
        counts = stack.status_counts()
    rows, metrics, checks = [], {}, []
    for rate in rates:
        runs = phases[rate]
        m = {
            key: median(p[key] for p in runs)
            for key in ("send_rate", "throughput", "p50_ms", "p99_ms", "max_ms", "ack_p50_ms", "ack_p99_ms")
        }
        m["events"] = sum(p["acked"] for p in runs)
        m["delivered"] = sum(p["delivered"] for p in runs)
        m["errors"] = sum(p["errors"] for p in runs)
        m["runs"] = len(runs)
        m["error_kinds"] = [p["error_kinds"] for p in runs if p["error_kinds"]]
        metrics[f"rate_{rate}"] = m
        rows.append(
            {
                "events/s offered": rate,
                "sent/s": m["send_rate"],
                "delivered/s": m["throughput"],
                "p50 ms": m["p50_ms"],
                "p99 ms": m["p99_ms"],
                "max ms": m["max_ms"],
                "ack p50 ms": m["ack_p50_ms"],
                "ack p99 ms": m["ack_p99_ms"],
                "delivered / acked": f"{m['delivered']}/{m['events']}",
                "runs": m["runs"],
            }
        )
        if rate == 100:
            checks.append(target("speed to lead p99 at 100 events/s", m["p99_ms"], "<", TARGET_P99_MS, " ms"))
    return {
        "name": "speed_to_lead",
        "title": "Speed to lead: webhook sent -> contact stored in the local CRM",
        "metrics": metrics,
        "rows": rows,
        "targets": checks,
        "status_counts": counts,
        "notes": [
            f"~{seconds:g} s per phase, rates alternating over {rounds} round(s), median over rounds; "
            f"`crmhub serve --workers {ingress_workers}`, {worker_processes} `crmhub worker` processes "
            "(8 event + 32 delivery threads each), flow `do: [upsert_contact]`, every order a new buyer.",
            "Latency = `delivered` time in the event log (set after the SQLite commit) minus the "
            "client's wall-clock time just before sending; ack columns are the same requests' HTTP ack.",
            f"The sender keeps at most {MAX_IN_FLIGHT} requests outstanding; when the hub cannot keep up, "
            "sent/s falls below the offered rate, the wait shows in the ack latency and the backlog in "
            "the delivery latency.",
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    started = time.monotonic()
    print(json.dumps(run(args.quick), indent=2, default=str))
    print(f"{time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
