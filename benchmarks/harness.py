"""Shared plumbing for the system benchmarks: a private hub stack, load generators, helpers.

Everything listens on 127.0.0.1 (or a unix socket) only. A `Stack` owns its temp dir, its
embedded Valkey server and every process it starts; `Stack.close()` stops them all (also
on Ctrl-C and exceptions, through `with`, and at interpreter exit as a safety net). Every
loop here is bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _entry in (str(HERE), str(ROOT)):
    if _entry not in sys.path:
        sys.path.insert(0, _entry)

import httpx  # noqa: E402
import redis  # noqa: E402

from hub.runtime.embedded import EmbeddedServer  # noqa: E402

SHOP_SECRET = "bench-shop-secret"  # noqa: S105 - a benchmark-only signing secret
PROCESSED_STATUSES = ("delivered", "ignored", "failed", "dead")

_LIVE: set[Stack] = set()


def _close_live() -> None:
    for stack in list(_LIVE):
        with contextlib.suppress(Exception):
            stack.close()


atexit.register(_close_live)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return float(ordered[rank])


def median(values: Iterable[float]) -> float:
    kept = [v for v in values if v == v]  # drop NaN
    return float(statistics.median(kept)) if kept else float("nan")


# -- configuration --------------------------------------------------------------------------


def config_text(
    destination: str,
    *,
    actions: Sequence[str] = ("upsert_contact",),
    max_queue_depth: int = 1_000_000,
) -> str:
    """A crmhub.yaml with one Shopify connector (`shop`) and one flow to `crm`."""
    return f"""\
hub:
  default_region: US
  max_queue_depth: {max_queue_depth}
  allow_insecure_urls: true
connectors:
  shop:
    type: shopify
    secret: {SHOP_SECRET}
destinations:
  crm:
{destination}
flows:
  - name: shopify orders
    when: shop.orders/create
    do: [{", ".join(actions)}]
    to: crm
"""


def local_destination(path: Path) -> str:
    return f"    type: local\n    path: {path}"


# -- the stack ------------------------------------------------------------------------------


class Stack:
    """A private hub: temp dir, embedded Valkey, config file and `crmhub` child processes.

    Example::

        with Stack(lambda d: config_text(local_destination(d / "crm.db"))) as stack:
            base = stack.serve(workers=1)
            stack.worker("w1")
    """

    def __init__(self, make_config: Any, name: str = "bench", *, redis_query: str = "") -> None:
        """`redis_query`: appended to the REDIS_URL the hub's processes get, e.g.
        `max_connections=1000` (redis-py reads pool options from the URL)."""
        self.dir = Path(tempfile.mkdtemp(prefix=f"crmhub-{name}-", dir="/tmp"))
        self.config = self.dir / "crmhub.yaml"
        self.config.write_text(make_config(self.dir))
        self.server = EmbeddedServer(self.dir / "valkey")
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[Any] = []
        _LIVE.add(self)
        try:
            self.url = self.server.start()
        except BaseException:
            self.close()
            raise
        self.env = {
            **os.environ,
            "REDIS_URL": f"{self.url}?{redis_query}" if redis_query else self.url,
            "CRMHUB_CONFIG": str(self.config),
            "PYTHONUNBUFFERED": "1",
        }
        self.redis = redis.Redis.from_url(self.url)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # processes ---------------------------------------------------------------------------

    def spawn(self, name: str, args: Sequence[str], *, module: str = "hub.cli") -> subprocess.Popen[bytes]:
        if name in self.procs:
            raise ValueError(f"process {name!r} already running")
        log = open(self.dir / f"{name}.log", "ab")  # closed in close()
        self._logs.append(log)
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "-m", module, *args],
            env=self.env,
            cwd=str(ROOT),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # own process group: stopped as a whole
        )
        self.procs[name] = proc
        return proc

    def log_count(self, text: str) -> int:
        """How many lines of all the child logs contain `text`."""
        total = 0
        for path in self.dir.glob("*.log"):
            with contextlib.suppress(OSError):
                total += sum(text in line for line in path.read_text(errors="replace").splitlines())
        return total

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def serve(self, name: str = "ingress", *, workers: int = 1, port: int | None = None) -> str:
        """Start `crmhub serve --workers N`; returns its base URL once /readyz answers 200."""
        port = port or free_port()
        self.spawn(
            name,
            [
                "serve",
                "--config",
                str(self.config),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
        )
        base = f"http://127.0.0.1:{port}"
        self.wait_http(name, f"{base}/readyz", ready_count=workers)
        return base

    def noop(self, name: str = "noop", *, workers: int = 1, port: int | None = None) -> str:
        """Start the no-op ASGI app (benchmarks/noop_app.py) under uvicorn like `crmhub serve`."""
        port = port or free_port()
        self.spawn(
            name,
            [
                "noop_app:app",
                "--app-dir",
                str(HERE),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            module="uvicorn",
        )
        base = f"http://127.0.0.1:{port}"
        self.wait_http(name, f"{base}/", ready_count=workers)
        return base

    def wait_http(self, name: str, url: str, *, ready_count: int = 1, timeout: float = 45.0) -> None:
        """Wait until `url` answers 200; with several workers, until they have all started
        (their processes exist and have been answering for a moment)."""
        deadline = time.monotonic() + timeout
        proc = self.procs[name]
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError(f"{name} did not answer {url} in {timeout:.0f} s:\n{self.log_tail(name)}")
        while ready_count > 1 and time.monotonic() < deadline:
            if len(descendants(proc.pid)) >= ready_count:
                break
            time.sleep(0.1)
        if ready_count > 1:
            time.sleep(1.0 + 0.3 * ready_count)  # the workers import the app after they fork

    def worker(
        self,
        name: str = "worker",
        *,
        threads: int = 8,
        delivery_threads: int = 32,
        processes: int = 1,
        only: str | None = None,
    ) -> subprocess.Popen[bytes]:
        """`crmhub worker`; `only`: `events` or `deliveries` (default both)."""
        return self.spawn(
            name,
            [
                "worker",
                "--config",
                str(self.config),
                "--threads",
                str(threads),
                "--delivery-threads",
                str(delivery_threads),
                "--processes",
                str(processes),
                *(["--only", only] if only else []),
            ],
        )

    def stop(self, name: str, timeout: float = 10.0) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the group: uvicorn / dramatiq children too
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

    def close(self) -> None:
        for name in list(self.procs):
            with contextlib.suppress(Exception):
                self.stop(name, timeout=5.0)
        with contextlib.suppress(Exception):
            self.redis.close()
        with contextlib.suppress(Exception):
            self.server.stop()
        for log in self._logs:
            with contextlib.suppress(Exception):
                log.close()
        self._logs.clear()
        _LIVE.discard(self)
        if not os.environ.get("CRMHUB_BENCH_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    # redis helpers ------------------------------------------------------------------------

    def counter(self, name: str) -> int:
        return int(self.redis.hget("crmhub:metrics:counters", name) or 0)

    def status_counts(self) -> dict[str, int]:
        pipe = self.redis.pipeline(transaction=False)
        statuses = ("received", "ignored", "mapped", "delivered", "failed", "dead")
        for status in statuses:
            pipe.zcard(f"crmhub:events:status:{status}")
        return dict(zip(statuses, (int(n) for n in pipe.execute()), strict=True))

    def used_memory(self) -> int:
        return int(self.redis.info("memory")["used_memory"])

    def queue_depth(self, queue: str = "events") -> int:
        return int(self.redis.llen(f"dramatiq:{queue}"))

    def delivered_at(self, event_ids: Sequence[str]) -> dict[str, float]:
        """Event id -> ms when it became `delivered` (the status index score), if it has."""
        found: dict[str, float] = {}
        key = "crmhub:events:status:delivered"
        for start in range(0, len(event_ids), 1000):
            chunk = list(event_ids[start : start + 1000])
            for event_id, score in zip(chunk, self.redis.zmscore(key, chunk), strict=True):
                if score is not None:
                    found[event_id] = float(score)
        return found


# -- processes ------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """Child processes of `pid`, recursively (from /proc/<pid>/task/*/children)."""
    found: list[int] = []
    todo = [pid]
    for _ in range(10_000):
        if not todo:
            break
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                kids = [int(k) for k in (task / "children").read_text().split()]
                found.extend(kids)
                todo.extend(kids)
    return found


def proc_status_kb(pid: int, field_name: str) -> int:
    """A `kB` field of /proc/<pid>/status (VmHWM, VmRSS), 0 if the process is gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return 0


def tree_peak_rss_mb(pid: int) -> dict[int, float]:
    """pid -> peak RSS (VmHWM, MB) of a process and each of its descendants."""
    return {p: proc_status_kb(p, "VmHWM") / 1024 for p in [pid, *descendants(pid)]}


# -- webhook payloads -----------------------------------------------------------------------


@dataclass(frozen=True)
class Shot:
    """One signed webhook request, ready to post."""

    body: bytes
    headers: dict[str, str]


def order(n: int, tag: str) -> dict[str, Any]:
    """A Shopify order with its own buyer, so each one is a distinct contact."""
    return {
        "id": 7_000_000_000 + n,
        "name": f"#{tag}-{n}",
        "email": f"buyer.{tag}.{n}@example.com",
        "currency": "EUR",
        "total_price": "42.50",
        "financial_status": "paid",
        "created_at": "2026-01-02T10:00:00+01:00",
        "customer": {"first_name": "Ada", "last_name": f"Buyer{n}", "email": f"buyer.{tag}.{n}@example.com"},
        "billing_address": {"name": f"Ada Buyer{n}", "country_code": "DE", "city": "Berlin"},
        "line_items": [{"sku": "TEA-1", "title": "Tea", "quantity": 1, "price": "42.50"}],
    }


def shopify_orders(count: int, tag: str) -> list[Shot]:
    """`count` signed Shopify `orders/create` webhooks, each a distinct delivery and buyer."""
    from connectors.shopify import ShopifyConnector

    at = datetime.now(UTC)
    shots = []
    for n in range(count):
        request = ShopifyConnector.sample_request("orders/create", order(n, tag), SHOP_SECRET, at=at)
        shots.append(Shot(request.body, dict(request.headers)))
    return shots


# -- load generators ------------------------------------------------------------------------


@dataclass
class LoadResult:
    """What a load run saw, client side."""

    sent: int = 0
    ok: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    capped: bool = False
    #: event id -> wall-clock ms just before its request was sent (paced runs)
    sent_at: dict[str, float] = field(default_factory=dict)
    duplicates: int = 0
    #: status -> the first body answered with it (for non-200 answers)
    error_bodies: dict[int, str] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def p(self, q: float) -> float:
        return pct(self.latencies_ms, q)


#: A raw connection idle longer than this is reopened before use.
IDLE_REOPEN_S = 2.0


class RawConnection:
    """A minimal HTTP/1.1 keep-alive client connection on asyncio streams (TCP_NODELAY).

    Far cheaper per request than httpx, whose connection pool also slows down sharply with
    many concurrent connections (measured here: 735 req/s at 1 connection, 167 req/s at 50,
    against the no-op app); the load generator must not be the bottleneck on a 2-core box.
    Expects `Content-Length` responses (the ingress and the no-op app send them).
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_used = 0.0

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def request(self, data: bytes) -> tuple[int, bytes]:
        if self.writer is not None and time.monotonic() - self.last_used > IDLE_REOPEN_S:
            await self.close()  # the server may have closed it (uvicorn's keep-alive timeout is 5 s)
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"connection" and value.strip().lower() == b"close":
                self.writer = None  # reopen next time
        body = await self.reader.readexactly(length) if length else b""
        self.last_used = time.monotonic()
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
            self.writer = None


def raw_request(url: str, shot: Shot) -> bytes:
    """The bytes of one POST of `shot` to `url` (built before timing)."""
    parsed = httpx.URL(url)
    path = parsed.raw_path.decode() or "/"
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {parsed.host}:{parsed.port}",
        f"Content-Length: {len(shot.body)}",
    ]
    lines += [f"{k}: {v}" for k, v in shot.headers.items() if k.lower() not in ("host", "content-length")]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + shot.body


class _Sender:
    """One connection (raw or httpx) that posts shots and records the outcome."""

    def __init__(self, url: str, kind: str, result: LoadResult, keep_ids: bool) -> None:
        self.url, self.kind, self.result, self.keep_ids = url, kind, result, keep_ids
        parsed = httpx.URL(url)
        self.raw = RawConnection(parsed.host, parsed.port or 80) if kind == "raw" else None
        self.http = (
            httpx.AsyncClient(
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                timeout=httpx.Timeout(30.0),
            )
            if kind == "httpx"
            else None
        )

    async def post(self, shot: Shot, data: bytes | None) -> None:
        result = self.result
        sent_ms = time.time() * 1000
        start = time.perf_counter()
        result.sent += 1
        try:
            if self.raw is not None:
                status, body = await asyncio.wait_for(self.raw.request(data or b""), 30)
            else:
                assert self.http is not None
                response = await self.http.post(self.url, content=shot.body, headers=shot.headers)
                status, body = response.status_code, response.content
        except (
            OSError,
            asyncio.IncompleteReadError,
            httpx.HTTPError,
            ValueError,
        ) as exc:
            result.errors[type(exc).__name__] += 1
            if self.raw is not None:
                await self.raw.close()
            return
        latency = (time.perf_counter() - start) * 1000
        result.statuses[status] += 1
        if status != 200:
            result.error_bodies.setdefault(status, body[:300].decode(errors="replace"))
            return
        result.ok += 1
        result.latencies_ms.append(latency)
        if self.keep_ids:
            for event in json.loads(body).get("events", []):
                if event.get("duplicate"):
                    result.duplicates += 1
                result.sent_at[event["id"]] = sent_ms

    async def close(self) -> None:
        if self.raw is not None:
            await self.raw.close()
        if self.http is not None:
            await self.http.aclose()


async def _blast(
    url: str, shots: Sequence[Shot], concurrency: int, time_cap: float, keep_ids: bool, client: str
) -> LoadResult:
    result = LoadResult()
    datas = [raw_request(url, s) for s in shots] if client == "raw" else [None] * len(shots)
    index = iter(range(len(shots)))
    senders = [_Sender(url, client, result, keep_ids) for _ in range(concurrency)]
    start = time.perf_counter()
    deadline = start + time_cap

    async def run(sender: _Sender) -> None:
        for i in index:  # shared iterator: each shot is sent once; bounded by len(shots)
            if time.perf_counter() >= deadline:
                result.capped = True
                return
            await sender.post(shots[i], datas[i])

    try:
        await asyncio.gather(*(run(s) for s in senders))
        result.elapsed = time.perf_counter() - start
    finally:
        for sender in senders:
            await sender.close()
    return result


def blast(
    url: str,
    shots: Sequence[Shot],
    *,
    concurrency: int = 50,
    time_cap: float = 60.0,
    keep_ids: bool = False,
    client: str = "raw",
) -> LoadResult:
    """Post every shot as fast as `concurrency` senders (one keep-alive connection each) can.

    `client`: "raw" (the lean asyncio client above) or "httpx" (one AsyncClient per sender).
    """
    return asyncio.run(_blast(url, shots, concurrency, time_cap, keep_ids, client))


async def _paced(
    url: str, shots: Sequence[Shot], rate: float, time_cap: float, max_in_flight: int, client: str
) -> LoadResult:
    result = LoadResult()
    datas = [raw_request(url, s) for s in shots] if client == "raw" else [None] * len(shots)
    idle: list[_Sender] = []
    everyone: list[_Sender] = []
    gate = asyncio.Semaphore(max_in_flight)
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int) -> None:
        sender = idle.pop() if idle else None
        if sender is None:
            sender = _Sender(url, client, result, keep_ids=True)
            everyone.append(sender)
        try:
            await sender.post(shots[i], datas[i])
        finally:
            idle.append(sender)
            gate.release()

    start = time.perf_counter()
    deadline = start + time_cap
    try:
        for i in range(len(shots)):
            due = start + i / rate
            now = time.perf_counter()
            if now >= deadline:
                result.capped = True
                break
            if due > now:
                await asyncio.sleep(due - now)
            await gate.acquire()  # never more than max_in_flight outstanding
            task = asyncio.create_task(one(i))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        result.elapsed = time.perf_counter() - start  # the sending period
        if tasks:
            await asyncio.wait(set(tasks), timeout=60)
    finally:
        for sender in everyone:
            await sender.close()
    return result


def paced(
    url: str,
    shots: Sequence[Shot],
    *,
    rate: float,
    time_cap: float,
    max_in_flight: int = 200,
    client: str = "raw",
) -> LoadResult:
    """Send the shots at a steady `rate` per second (open loop, bounded in-flight)."""
    return asyncio.run(_paced(url, shots, rate, time_cap, max_in_flight, client))


def wait_until(predicate: Any, *, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


# -- targets --------------------------------------------------------------------------------


def target(what: str, value: float, op: str, threshold: float, unit: str = "") -> dict[str, Any]:
    """A target line: met or missed, and by how much (relative to the threshold)."""
    if value != value:  # NaN: not measured
        return {
            "what": what,
            "value": value,
            "op": op,
            "threshold": threshold,
            "unit": unit,
            "met": False,
            "margin": "not measured",
        }
    met = value >= threshold if op == ">=" else value < threshold
    if threshold:
        delta = (value - threshold) / threshold * 100
        if op == "<":
            delta = -delta
        margin = f"{'met' if met else 'missed'} by {abs(delta):.{0 if abs(delta) >= 1 else 1}f}%"
    else:
        margin = "met" if met else "missed"
    return {
        "what": what,
        "value": value,
        "op": op,
        "threshold": threshold,
        "unit": unit,
        "met": met,
        "margin": margin,
    }
