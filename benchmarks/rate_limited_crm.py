"""Rate-limited CRM: contacts/s into the HubSpot fake at 100 requests / 10 s vs the limit.

The fake (`FakeHubSpot(requests_per_10s=100)`) is served over loopback by `FakeServer`. A
backlog of signed Shopify orders (each a new buyer; flow `do: [upsert_contact]`) is posted
to the ingress with no worker running; then worker processes with many delivery threads
start and the contacts stored in the fake are sampled every 0.25 s.

The physical limit is requests allowed per second x the batch size (100): 10/s x 100 =
1,000 contacts/s. The adapter spends a batch read (by email) and a batch upsert per batch
of new contacts, so with that accounting the limit is 500 contacts/s. The rate is measured
from the first contact stored, over 60 s (quick: until drained), and also as the median of
10 s windows; the fake's own count of allowed requests per second is the baseline measured
in the same run.

    .venv/bin/python benchmarks/rate_limited_crm.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from harness import Stack, blast, config_text, median, shopify_orders, target

from hub.destinations.hubspot.fake import DEFAULT_TOKEN, FakeHubSpot
from hub.testing.fakeserver import FakeServer


class IndexedFakeHubSpot(FakeHubSpot):
    """`FakeHubSpot` with a hash index for `idProperty` lookups (email, unique properties).

    The base class finds a record by property with a scan of every record, under its global
    lock: at 10,000 contacts a batch read + batch upsert of 100 takes ~0.4 s, which would cap
    the benchmark below the rate limit and measure the fake instead of the hub. Answers are
    the same: the index keeps the first record holding a value, as the scan returns it.
    """

    def __init__(self, **kwargs: Any) -> None:
        self._index: dict[tuple[str, str, str], Any] = {}
        super().__init__(**kwargs)

    @staticmethod
    def _norm(name: str, value: str) -> str:
        return value.lower() if name == "email" else value

    def _apply(self, kind: str, record: Any, props: Any) -> None:
        before = {name: record.properties.get(name) for name in props}
        super()._apply(kind, record, props)
        for name in props:
            old, new = before[name], record.properties.get(name)
            if old == new:
                continue
            if old is not None and self._index.get((kind, name, self._norm(name, old))) is record:
                del self._index[(kind, name, self._norm(name, old))]
            if new is not None:
                self._index.setdefault((kind, name, self._norm(name, new)), record)

    def _find(self, kind: str, key: str, id_property: str | None) -> Any:
        if not id_property or id_property == "hs_object_id":
            return super()._find(kind, key, id_property)
        self._require_unique(kind, id_property)
        found = self._index.get((kind, id_property, self._norm(id_property, key)))
        if found is None or self._records[kind].get(found.id) is found:
            return found  # every record is indexed as it is written (_insert and updates call _apply)
        return super()._find(kind, key, id_property)  # the holder was deleted: scan for another


REQUESTS_PER_10S = 100
BATCH = 100
TARGET_SHARE = 0.95
TARGET_429 = 1.0  # percent


def _hubspot(url: str) -> str:
    return (
        f"    type: hubspot\n    access_token: {DEFAULT_TOKEN}\n    base_url: {url}\n"
        f"    requests_per_10s: {REQUESTS_PER_10S}"
    )


def run(
    quick: bool,
    *,
    contacts: int | None = None,
    window: float | None = None,
    worker_processes: int = 2,
    delivery_threads: int = 128,
    pool_limit: int | None = None,
    client: str = "raw",
) -> dict[str, Any]:
    """`pool_limit`: if set, `?max_connections=N` on the workers' REDIS_URL (by default the
    workers size their own pool: threads + delivery threads + 64)."""
    contacts = contacts or (2_000 if quick else 20_000)
    window = window or 60.0
    drain_only = quick
    fake = IndexedFakeHubSpot(requests_per_10s=REQUESTS_PER_10S)
    server = FakeServer(fake).start()
    samples: list[tuple[float, int, int, int]] = []  # (t, contacts, answered calls, 429s)
    depths: list[tuple[float, int, int]] = []  # (t, events queue, delivery queue)

    def sample() -> tuple[float, int, int, int]:
        stored = len(fake._records["contacts"])  # len() of a dict: no lock, no copy (sampled often)
        return time.monotonic(), stored, sum(fake.calls.values()), fake.rate_limited

    try:
        query = f"max_connections={pool_limit}" if pool_limit else ""
        with Stack(lambda d: config_text(_hubspot(server.url)), "ratelimit", redis_query=query) as stack:
            base = stack.serve("ingress", workers=2)
            posted = blast(
                f"{base}/hooks/shop",
                shopify_orders(contacts, "rl"),
                concurrency=50,
                time_cap=300,
                client=client,
            )
            if posted.ok != contacts:
                raise RuntimeError(f"only {posted.ok} of {contacts} webhooks acknowledged: {posted.statuses}")
            stack.stop("ingress")
            queued = stack.queue_depth()
            started = time.monotonic()
            for i in range(worker_processes):
                stack.worker(f"worker-{i}", delivery_threads=delivery_threads)
            first: float | None = None
            hard_stop = started + window + 120  # startup and slow first batches, bounded
            for _ in range(int((window + 130) / 0.25)):
                now, stored, calls, limited = sample()
                samples.append((now, stored, calls, limited))
                depths.append((now, stack.queue_depth("events"), stack.queue_depth("deliver.crm")))
                if first is None and stored > 0:
                    first = now
                if stored >= contacts or now >= hard_stop:
                    break
                if first is not None and not drain_only and now - first >= window:
                    break
                if any(p.poll() is not None for p in stack.procs.values()):
                    raise RuntimeError("a worker exited:\n" + stack.log_tail("worker-0"))
                time.sleep(0.25)
            counts = stack.status_counts()
            pool_errors = stack.log_count("MaxConnectionsError")
    finally:
        server.stop()

    if first is None:
        raise RuntimeError("no contact reached the fake")
    start_i = next(i for i, s in enumerate(samples) if s[0] >= first)
    t0, c0, calls0, _ = samples[start_i]
    t1, c1, calls1, _ = samples[-1]
    elapsed = t1 - t0
    rate = (c1 - c0) / elapsed if elapsed > 0 else float("nan")
    # median over 10 s windows (full windows only), and the fake's allowed requests/s in each
    windows, allowed = [], []
    edge = start_i
    for i in range(start_i + 1, len(samples)):
        if samples[i][0] - samples[edge][0] >= 10.0:
            span = samples[i][0] - samples[edge][0]
            windows.append((samples[i][1] - samples[edge][1]) / span)
            allowed.append((samples[i][2] - samples[edge][2]) / span)
            edge = i
    answered = sum(fake.calls.values())
    inputs = [
        len(r.body["inputs"])
        for r in fake.requests
        if r.endpoint.endswith("/batch/upsert") and isinstance(r.body, dict) and "inputs" in r.body
    ]
    end_depth = depths[-1] if depths else (0.0, 0, 0)
    mid_depth = depths[len(depths) // 2] if depths else (0.0, 0, 0)
    total_requests = answered + fake.rate_limited
    stored = len(fake.contacts)
    per_second = REQUESTS_PER_10S / 10
    naive_limit = per_second * BATCH
    two_call_limit = per_second * BATCH / 2
    share_429 = fake.rate_limited / total_requests * 100 if total_requests else float("nan")
    metrics = {
        "contacts": contacts,
        "stored": stored,
        "queued_events": queued,
        "rate": rate,
        "window_rates": windows,
        "window_rate_median": median(windows) if windows else rate,
        "allowed_requests_per_s": median(allowed) if allowed else (calls1 - calls0) / elapsed,
        "measured_s": elapsed,
        "to_first_contact_s": t0 - started,
        "limit_naive": naive_limit,
        "limit_read_plus_upsert": two_call_limit,
        "share_of_naive": rate / naive_limit,
        "share_of_read_plus_upsert": rate / two_call_limit,
        "answered_calls": answered,
        "rate_limited": fake.rate_limited,
        "share_429_pct": share_429,
        "calls_per_contact": answered / stored if stored else float("nan"),
        "requests_per_contact": total_requests / stored if stored else float("nan"),
        "calls_by_endpoint": dict(fake.calls.most_common()),
        "status_counts": counts,
        "pool_errors": pool_errors,
        "upsert_batch_mean": sum(inputs) / len(inputs) if inputs else float("nan"),
        "upsert_batch_max": max(inputs, default=0),
        "queue_depths_mid": {"events": mid_depth[1], "deliver": mid_depth[2]},
        "queue_depths_end": {"events": end_depth[1], "deliver": end_depth[2]},
    }
    rows = [
        {"measure": "contacts/s (from first contact stored)", "value": rate},
        {"measure": "contacts/s, median of 10 s windows", "value": metrics["window_rate_median"]},
        {"measure": "physical limit: 10 req/s x 100 per batch", "value": naive_limit},
        {"measure": "limit with batch read + batch upsert per batch", "value": two_call_limit},
        {"measure": "share of the physical limit", "value": f"{rate / naive_limit:.0%}"},
        {"measure": "share of the read + upsert limit", "value": f"{rate / two_call_limit:.0%}"},
        {
            "measure": "requests answered by the fake per s (baseline, same run)",
            "value": metrics["allowed_requests_per_s"],
        },
        {
            "measure": "share of the request budget used (answered / allowed per s)",
            "value": f"{metrics['allowed_requests_per_s'] / per_second:.0%}",
        },
        {
            "measure": "requests answered 429",
            "value": f"{fake.rate_limited} of {total_requests} ({share_429:.2f}%)",
        },
        {
            "measure": "API calls per contact (answered / all requests)",
            "value": f"{metrics['calls_per_contact']:.4f} / {metrics['requests_per_contact']:.4f}",
        },
        {
            "measure": "contacts per batch upsert: mean / max",
            "value": f"{metrics['upsert_batch_mean']:.1f} / {metrics['upsert_batch_max']}",
        },
        {
            "measure": "queued events / queued deliveries, mid-window and at the end",
            "value": f"{mid_depth[1]:,} / {mid_depth[2]:,} ; {end_depth[1]:,} / {end_depth[2]:,}",
        },
        {"measure": "contacts stored / backlog", "value": f"{stored:,} / {contacts:,}"},
        {
            "measure": "measured over (s); worker start to first contact (s)",
            "value": f"{elapsed:.1f}; {t0 - started:.1f}",
        },
    ]
    checks = [
        target("contacts/s vs physical limit (10 req/s x 100)", rate, ">=", TARGET_SHARE * naive_limit, "/s"),
        target(
            "contacts/s vs read + upsert limit (5 batches/s x 100)",
            rate,
            ">=",
            TARGET_SHARE * two_call_limit,
            "/s",
        ),
        target("share of requests answered 429", share_429, "<", TARGET_429, "%"),
    ]
    return {
        "name": "rate_limited_crm",
        "title": "Rate-limited CRM: HubSpot fake at 100 requests / 10 s",
        "metrics": metrics,
        "rows": rows,
        "targets": checks,
        "notes": [
            f"Backlog of {contacts:,} new contacts queued first (no worker running), then "
            f"{worker_processes} `crmhub worker` processes with --delivery-threads {delivery_threads}; "
            + (
                "measured until drained."
                if drain_only
                else f"measured for {window:g} s from the first contact."
            ),
            "The fake is `FakeHubSpot` with a hash index for idProperty lookups (IndexedFakeHubSpot "
            "here): the stock fake scans every record per lookup, ~0.4 s per batch read + upsert at "
            "10,000 contacts under its global lock, which would cap the run below the rate limit.",
            "Calls by endpoint: " + ", ".join(f"{k}: {v}" for k, v in fake.calls.most_common()),
            (
                f"The workers' REDIS_URL carries `?max_connections={pool_limit}`."
                if pool_limit
                else "The workers size their own Redis pool (threads + delivery threads + 64)."
            )
            + f" MaxConnectionsError lines in the logs: {pool_errors}.",
            "Event status counts at the end: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v),
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.quick), indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
