"""Ingress: acknowledged webhooks/s and ack latency at 50 concurrent senders over loopback.

Signed Shopify `orders/create` webhooks, each a distinct delivery (never a duplicate), are
posted by 50 concurrent asyncio senders (one keep-alive connection each) to
`crmhub serve --workers N` for N in (1, 2, 3), with REDIS_URL pointing at an embedded
Valkey and no workers running: each 200 means the signature was checked and the event
stored and queued. The same load against a no-op ASGI app under uvicorn with the same
number of workers is the ceiling of this machine and client; each round measures every
target once (order rotated) and every figure is the median over rounds.

    .venv/bin/python benchmarks/ingress.py [--quick] [--profile]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from harness import (
    LoadResult,
    Stack,
    blast,
    config_text,
    local_destination,
    median,
    paced,
    shopify_orders,
    target,
)

TARGET_ACKS = 1_500.0
TARGET_P99_MS = 50.0


def _measure(
    stack: Stack,
    base: str,
    hub: bool,
    count: int,
    tag: str,
    *,
    concurrency: int,
    time_cap: float,
    client: str,
) -> LoadResult:
    shots = shopify_orders(count, tag)
    url = f"{base}/hooks/shop" if hub else f"{base}/"
    if hub:
        stack.redis.flushdb()  # each run starts from an empty queue (no workers run here)
    result = blast(url, shots, concurrency=concurrency, time_cap=time_cap, client=client)
    if hub:
        stored = stack.counter("received")
        duplicates = stack.counter("duplicates")
        if stored != result.ok or duplicates:
            raise RuntimeError(
                f"{tag}: {result.ok} acknowledged but {stored} stored, {duplicates} duplicates"
            )
    return result


def run(
    quick: bool,
    *,
    requests: int | None = None,
    rounds: int | None = None,
    workers: tuple[int, ...] = (1, 2, 3),
    concurrency: int = 50,
    time_cap: float | None = None,
    client: str = "raw",
    profile: bool = False,
    profile_seconds: float | None = None,
    probe_concurrency: int = 150,  # over the 100 connections of redis-py 8's default pool
    probe_requests: int | None = None,
    paced_rate: float = TARGET_ACKS,
    paced_seconds: float | None = None,
) -> dict[str, Any]:
    requests = requests or (1_000 if quick else 10_000)
    rounds = rounds or (2 if quick else 3)
    time_cap = time_cap or (15.0 if quick else 30.0)
    warmup = min(300, requests)
    targets: list[tuple[str, int, bool]] = []  # (name, workers, is the hub)
    for n in workers:
        targets += [(f"noop-{n}", n, False), (f"serve-{n}", n, True)]
    runs: dict[str, list[LoadResult]] = {name: [] for name, _, _ in targets}
    ratios: dict[int, list[float]] = {n: [] for n in workers}
    statuses: Counter[int] = Counter()
    profile_result: dict[str, Any] | None = None
    with Stack(lambda d: config_text(local_destination(d / "crm.db")), "ingress") as stack:
        bases: dict[str, str] = {}
        for name, n, hub in targets:
            bases[name] = stack.serve(name, workers=n) if hub else stack.noop(name, workers=n)
            _measure(
                stack,
                bases[name],
                hub,
                warmup,
                f"warm-{name}",
                concurrency=concurrency,
                time_cap=time_cap,
                client=client,
            )
        for r in range(rounds):
            order = targets[r % len(targets) :] + targets[: r % len(targets)]
            this_round: dict[str, LoadResult] = {}
            for name, _n, hub in order:
                result = _measure(
                    stack,
                    bases[name],
                    hub,
                    requests,
                    f"r{r}-{name}",
                    concurrency=concurrency,
                    time_cap=time_cap,
                    client=client,
                )
                runs[name].append(result)
                this_round[name] = result
                statuses.update(result.statuses)
            for n in workers:
                ceiling = this_round[f"noop-{n}"].rate
                ratios[n].append(this_round[f"serve-{n}"].rate / ceiling if ceiling else float("nan"))
        # The target as stated: p99 while acknowledging a steady 1,500/s (open loop), not at
        # the saturation the closed-loop rounds above drive the server to.
        steady: dict[int, LoadResult] = {}
        for n in workers:
            stack.redis.flushdb()
            count = int(paced_rate * (paced_seconds or (2.0 if quick else 10.0)))
            steady[n] = paced(
                f"{bases[f'serve-{n}']}/hooks/shop",
                shopify_orders(count, f"paced-{n}"),
                rate=paced_rate,
                time_cap=time_cap + count / paced_rate,
                max_in_flight=concurrency,
                client=client,
            )
            statuses.update(steady[n].statuses)
        probe = None
        if probe_concurrency:
            name = f"serve-{workers[0]}"
            stack.redis.flushdb()
            probe = blast(
                f"{bases[name]}/hooks/shop",
                shopify_orders(probe_requests or (1_000 if quick else 3_000), "probe"),
                concurrency=probe_concurrency,
                time_cap=time_cap,
                client=client,
            )
        if profile:
            profile_result = profile_ingress(
                stack,
                f"serve-{workers[0]}",
                bases[f"serve-{workers[0]}"],
                seconds=profile_seconds or (5.0 if quick else 12.0),
                concurrency=concurrency,
                client=client,
            )
        stack.redis.flushdb()

    rows, checks, metrics = [], [], {}
    for n in workers:
        hub_runs, noop_runs = runs[f"serve-{n}"], runs[f"noop-{n}"]
        m = {
            "acks_per_s": median(x.rate for x in hub_runs),
            "p50_ms": median(x.p(50) for x in hub_runs),
            "p99_ms": median(x.p(99) for x in hub_runs),
            "noop_per_s": median(x.rate for x in noop_runs),
            "noop_p50_ms": median(x.p(50) for x in noop_runs),
            "noop_p99_ms": median(x.p(99) for x in noop_runs),
            "ratio": median(ratios[n]),
            "capped_runs": sum(x.capped for x in hub_runs),
            "errors": sum(sum(x.errors.values()) + x.sent - x.ok for x in hub_runs),
            "steady_rate": steady[n].rate,
            "steady_p50_ms": steady[n].p(50),
            "steady_p99_ms": steady[n].p(99),
        }
        metrics[f"workers_{n}"] = m
        rows.append(
            {
                "serve --workers": n,
                "acks/s": m["acks_per_s"],
                "p50 ms": m["p50_ms"],
                "p99 ms": m["p99_ms"],
                "no-op req/s": m["noop_per_s"],
                "no-op p99 ms": m["noop_p99_ms"],
                "ratio to no-op": m["ratio"],
                "runs": len(hub_runs),
                "non-200 / errors": m["errors"],
                f"at a steady {paced_rate:,.0f}/s: acks/s": m["steady_rate"],
                "steady p50 / p99 ms": f"{m['steady_p50_ms']:.1f} / {m['steady_p99_ms']:.1f}",
            }
        )
        checks.append(target(f"acks/s, --workers {n}", m["acks_per_s"], ">=", TARGET_ACKS, "/s"))
        checks.append(target(f"ack p99, --workers {n}", m["p99_ms"], "<", TARGET_P99_MS, " ms"))
        checks.append(
            target(
                f"ack p99 at a steady {paced_rate:,.0f}/s, --workers {n}",
                m["steady_p99_ms"],
                "<",
                TARGET_P99_MS,
                " ms",
            )
        )
    notes = [
        f"{requests:,} unique signed Shopify orders/create webhooks per run "
        f"({len(shopify_orders(1, 'size')[0].body)} B body), {concurrency} concurrent senders "
        f"({client} asyncio client, one keep-alive connection each), time cap {time_cap:g} s per run; "
        f"median of {rounds} rounds; every 200 checked against Redis (stored = acknowledged, no duplicates).",
        f"Steady columns: the same server sent {paced_rate:,.0f} webhooks/s for "
        f"{paced_seconds or (2.0 if quick else 10.0):g} s by an open-loop sender (at most {concurrency} in "
        "flight), i.e. the latency at the target's rate; the other columns are closed-loop rounds "
        "that drive the server to saturation, where p99 is mostly queueing behind the 50 senders.",
        "No workers run during the measurement: the figures are the ack path (verify the HMAC, parse, "
        "store and enqueue with the pipelined Lua script in Valkey on a unix socket).",
        "The no-op app is a bare ASGI callable under the same uvicorn (same loop and HTTP implementation) "
        "and the same number of workers: the ceiling of this machine with this client "
        "(client, server and Valkey share 2 cores).",
    ]
    result: dict[str, Any] = {
        "name": "ingress",
        "title": "Ingress: acknowledged webhooks at 50 concurrent senders",
        "metrics": metrics,
        "rows": rows,
        "targets": checks,
        "notes": notes,
        "statuses": dict(statuses),
    }
    if probe is not None:
        refused = probe.sent - probe.ok
        metrics["probe"] = {
            "concurrency": probe_concurrency,
            "sent": probe.sent,
            "acked": probe.ok,
            "statuses": dict(probe.statuses),
            "errors": dict(probe.errors),
            "refused_pct": refused / probe.sent * 100 if probe.sent else float("nan"),
            "bodies": probe.error_bodies,
        }
        detail = "; ".join(f"{k}: {v[:90]}" for k, v in probe.error_bodies.items())
        notes.append(
            f"Overload probe: {probe.sent:,} webhooks at {probe_concurrency} concurrent senders to "
            f"`serve --workers {workers[0]}`: {probe.ok:,} acknowledged, {refused:,} "
            f"({metrics['probe']['refused_pct']:.1f}%) refused"
            + (f" ({detail})" if detail else "")
            + ". More concurrent requests than the ingress's Redis connection pool holds are refused "
            "with 503 (it was 100, redis-py 8's default, before the ingress sized its pool)."
        )
    if profile_result is not None:
        result["profile"] = profile_result
    return result


# -- profiling ------------------------------------------------------------------------------

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _short(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['func']} ({path})"


def summarise_collapsed(text: str, top: int = 15) -> dict[str, Any]:
    """Self and inclusive sample shares per function from py-spy's collapsed (raw) output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    areas: Counter[str] = Counter()
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        areas[_area(frames[-1])] += count
        for frame in set(frames):
            inclusive[frame] += count

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        if not total:
            return []
        # the trunk every sample shares (runpy, typer, uvicorn.run, the event loop) says nothing
        kept = [(name, n) for name, n in counter.most_common() if n < 0.9 * total]
        return [(name, n / total * 100) for name, n in kept[:top]]

    ours = Counter({k: v for k, v in inclusive.items() if _area(k) in ("hub", "connectors", "redis-py")})
    return {
        "samples": total,
        "self": share(own),
        "inclusive": share(inclusive),
        "inclusive_hub_redis": share(ours),
        "self_by_area": [(name, n / total * 100) for name, n in areas.most_common()] if total else [],
    }


_AREAS = (
    ("hub/", "hub"),
    ("connectors/", "connectors"),
    ("redis/", "redis-py"),
    ("fastapi/", "fastapi + starlette + pydantic"),
    ("starlette/", "fastapi + starlette + pydantic"),
    ("pydantic", "fastapi + starlette + pydantic"),
    ("uvicorn/", "uvicorn + h11"),
    ("h11/", "uvicorn + h11"),
    ("asyncio/", "asyncio (event loop, transports, socket syscalls)"),
    ("selectors", "asyncio (event loop, transports, socket syscalls)"),
    ("json/", "json"),
    ("hmac", "hmac / hashlib"),
    ("hashlib", "hmac / hashlib"),
)


def _area(frame: str) -> str:
    """Which library a shortened frame `func (path)` belongs to."""
    path = frame.rpartition("(")[2]
    for marker, area in _AREAS:
        if path.startswith(marker) or f"/{marker}" in path:
            return area
    return "other"


def profile_ingress(
    stack: Stack, name: str, base: str, *, seconds: float, concurrency: int, client: str
) -> dict[str, Any]:
    """py-spy record of the `serve` process while it takes the benchmark load."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return {"error": "py-spy is not installed (pip install py-spy)"}
    pid = stack.procs[name].pid
    out = stack.dir / "ingress-profile.txt"
    spy_proc = subprocess.Popen(  # noqa: S603
        [
            spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(0.5)
        count = int(seconds * 1500)
        result = blast(
            f"{base}/hooks/shop",
            shopify_orders(count, "profile"),
            concurrency=concurrency,
            time_cap=seconds + 5,
            client=client,
        )
        _, err = spy_proc.communicate(timeout=seconds + 30)
    finally:
        if spy_proc.poll() is None:
            spy_proc.kill()
            spy_proc.wait()
    if not out.exists():
        return {"error": f"py-spy wrote nothing: {err.decode(errors='replace').strip()[-300:]}"}
    summary = summarise_collapsed(out.read_text(errors="replace"))
    summary.update(
        target=name,
        pid=pid,
        seconds=seconds,
        rate_hz=200,
        acks_per_s=result.rate,
        p99_ms=result.p(99),
        busy_share=summary["samples"] / (200 * seconds) * 100,
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", action="store_true", help="also py-spy the ingress under load")
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.quick, profile=args.profile, client=args.client), indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
