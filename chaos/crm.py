"""The faulty CRM: `FakeHubSpot` (indexed, so 10,000 records stay cheap) behind `FakeServer`,
wrapped by `FaultyCrm`, which adds hangs past the client timeout, 429 bursts and outages
and counts every fault it injected.

The fake's own knobs give the 5xx: `fail_rate` (500 before any work) and
`commit_then_fail_rate` (the write is done, then 504). Everything here listens on 127.0.0.1.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import httpx

from hub.destinations.hubspot.fake import FakeHubSpot
from hub.testing.fakeserver import FakeServer

__all__ = ["CrmFaults", "FaultyCrm", "IndexedFakeHubSpot", "start_crm"]

#: Properties looked up by value on every batch read/upsert: indexed instead of scanned.
_INDEXED = ("email", "crmhub_external_id")


class IndexedFakeHubSpot(FakeHubSpot):
    """`FakeHubSpot` with value indexes on `email` and `crmhub_external_id`.

    The base class finds records by a linear scan, which at 10,000 contacts costs ~1 s of
    CPU per batch of 100 under its lock. Lookups answer exactly as the scan would (first
    record by creation order; email case-insensitive, other properties exact; search
    case-insensitive); any other query goes to the base class. Only the last 200 requests
    are kept (`requests`), not all of them.
    """

    def __init__(self, **kwargs: Any) -> None:
        self._index: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        super().__init__(**kwargs)
        self.requests = deque(maxlen=200)  # type: ignore[assignment]

    def _apply(self, kind: str, record: Any, props: Any) -> None:
        before = {name: record.properties.get(name) for name in _INDEXED}
        super()._apply(kind, record, props)
        for name in _INDEXED:
            old, new = before[name], record.properties.get(name)
            if old == new:
                continue
            if old is not None:
                ids = self._index[(kind, name)][old.lower()]
                if record.id in ids:
                    ids.remove(record.id)
            if new is not None:
                self._index[(kind, name)][new.lower()].append(record.id)

    def link_index(self) -> dict[tuple[str, str, str], set[str]]:
        """{(from kind, from id, to kind): linked ids}: every association at once (the base
        class's `associated()` scans all links per call: minutes at 10,000 events)."""
        index: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        with self._lock:
            for from_kind, from_id, to_kind, to_id in self._links:
                index[(from_kind, from_id, to_kind)].add(to_id)
        return index

    def _holders(self, kind: str, name: str, value: str) -> list[Any]:
        """Records of `kind` whose `name` equals `value` (case-insensitively), oldest first."""
        ids = self._index[(kind, name)].get(value.lower(), ())
        records = [self._records[kind][i] for i in ids if i in self._records[kind]]
        return sorted(records, key=lambda r: int(r.id))

    def _find(self, kind: str, key: str, id_property: str | None) -> Any:
        if id_property not in _INDEXED:
            return super()._find(kind, key, id_property)
        self._require_unique(kind, id_property)
        for record in self._holders(kind, id_property, key):
            held = record.properties.get(id_property)
            if held is not None and (held.lower() == key.lower() if id_property == "email" else held == key):
                return record
        return None

    def _search(self, kind: str, body: Any) -> dict[str, Any]:
        groups = body.get("filterGroups") if isinstance(body, dict) else None
        filters = (groups[0].get("filters") or []) if groups and len(groups) == 1 else []
        if len(filters) != 1 or int(body.get("limit") or 10) > 200:
            return super()._search(kind, body)
        condition = filters[0]
        name, operator = str(condition.get("propertyName")), condition.get("operator")
        if name not in _INDEXED or name not in self.properties[kind] or operator not in ("IN", "EQ"):
            return super()._search(kind, body)
        values = condition.get("values") if operator == "IN" else [condition.get("value", "")]
        if not isinstance(values, list):
            return super()._search(kind, body)
        now = self.clock()
        found = {r.id: r for v in values for r in self._holders(kind, name, str(v))}
        rows = [r for r in sorted(found.values(), key=lambda r: int(r.id)) if r.visible_at <= now]
        limit = int(body.get("limit") or 10)
        after = int(body.get("after") or 0)
        wanted = [str(p) for p in body.get("properties") or ()]
        answer: dict[str, Any] = {
            "total": len(rows),
            "results": [self._out(kind, r, wanted) for r in rows[after : after + limit]],
        }
        if after + limit < len(rows):
            answer["paging"] = {"next": {"after": str(after + limit)}}
        return answer


@dataclass
class CrmFaults:
    """What `FaultyCrm` injected, and when (monotonic seconds)."""

    statuses: Counter[int] = field(default_factory=Counter)
    rate_limited_at: list[float] = field(default_factory=list)
    #: The fake's own 429s by policy: TEN_SECONDLY_ROLLING (100 / 10 s), SECONDLY (search, 5 / s).
    own_429: Counter[str] = field(default_factory=Counter)
    hangs: list[tuple[float, bytes]] = field(default_factory=list)
    hangs_in_progress: int = 0
    burst_429: int = 0
    outage_503: int = 0
    calls: int = 0


class FaultyCrm:
    """An httpx handler around the fake: hangs, 429 bursts, full outages.

    Args:
        fake: the fake CRM.
        hang_rate: share of calls whose answer is held `hang_seconds` (past the client's
            timeout): the fake handles the call at once (it counts against the rate limit,
            a write is committed), the client sees a timeout.
        hang_seconds: how long a hung call sleeps.
        seed: seeds which calls hang.
    """

    def __init__(self, fake: IndexedFakeHubSpot, *, hang_rate: float, hang_seconds: float, seed: int) -> None:
        self.fake = fake
        self.hang_rate = hang_rate
        self.hang_seconds = hang_seconds
        self.faults = CrmFaults()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._burst_left = 0
        self._hang_next = 0
        self._burst_retry_after = 2
        self._stopping = threading.Event()
        self._arrival = threading.local()

    # -- chaos controls -------------------------------------------------------------------------

    def set_down(self, down: bool) -> None:
        """Every call answered 503 while down (the fake records and counts nothing else)."""
        self.fake.down = down

    def burst(self, calls: int, retry_after: int = 2) -> None:
        """Answer the next `calls` calls 429 (`TEN_SECONDLY_ROLLING`, `Retry-After`): another
        app on the same account used up the budget."""
        with self._lock:
            self._burst_left = calls
            self._burst_retry_after = retry_after

    def hang(self, calls: int) -> None:
        """Hold the answer of the next `calls` calls past the client's timeout."""
        with self._lock:
            self._hang_next = calls

    def calm(self) -> None:
        """Stop injecting faults (for the final drain and verification)."""
        self.hang_rate = 0.0
        self.fake.fail_rate = 0.0
        self.fake.commit_then_fail_rate = 0.0
        self.fake.down = False
        with self._lock:
            self._burst_left = self._hang_next = 0

    def release_hangs(self) -> None:
        """Wake every hung call now (at shutdown)."""
        self._stopping.set()

    # -- the handler ----------------------------------------------------------------------------

    def arrival_clock(self) -> float:
        """When the request being handled arrived (the fake's clock for its rate window):
        a real API stamps a request at its edge, not after queueing behind others."""
        return getattr(self._arrival, "at", None) or time.monotonic()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self._arrival.at = time.monotonic()
        with self._lock:
            self.faults.calls += 1
            bursting = self._burst_left > 0 and not self.fake.down
            roll = self._random.random() < self.hang_rate
            hang = not bursting and not self.fake.down and (roll or self._hang_next > 0)
            if hang and not roll:
                self._hang_next -= 1
            if bursting:
                self._burst_left -= 1
                self.faults.burst_429 += 1
                self.faults.rate_limited_at.append(time.monotonic())
            if hang:
                self.faults.hangs.append((time.monotonic(), request.content.lower()))
                self.faults.hangs_in_progress += 1
        if bursting:
            return self._too_many(self._burst_retry_after)
        response = self.fake(request)
        if hang:  # the CRM did the work; its answer comes after the client has given up
            try:
                self._stopping.wait(self.hang_seconds)
            finally:
                with self._lock:
                    self.faults.hangs_in_progress -= 1
        with self._lock:
            self.faults.statuses[response.status_code] += 1
            if response.status_code == 429:
                self.faults.rate_limited_at.append(time.monotonic())
                self.faults.own_429[_policy(response)] += 1
            if self.fake.down and response.status_code == 503:
                self.faults.outage_503 += 1
        return response

    @staticmethod
    def _too_many(retry_after: int) -> httpx.Response:
        body = {
            "status": "error",
            "message": "You have reached your ten_secondly_rolling limit.",
            "errorType": "RATE_LIMIT",
            "category": "RATE_LIMITS",
            "policyName": "TEN_SECONDLY_ROLLING",
        }
        headers = {
            "Retry-After": str(retry_after),
            "X-HubSpot-RateLimit-Max": "100",
            "X-HubSpot-RateLimit-Remaining": "0",
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
        }
        return httpx.Response(429, json=body, headers=headers)


def _policy(response: httpx.Response) -> str:
    try:
        return str(response.json().get("policyName") or "?")
    except ValueError:
        return "?"


def start_crm(
    *, fail_rate: float, commit_then_fail_rate: float, hang_rate: float, hang_seconds: float, seed: int
) -> tuple[FaultyCrm, FakeServer]:
    """The fake CRM (100 requests / 10 s) with its faults, served on 127.0.0.1."""
    fake = IndexedFakeHubSpot(
        requests_per_10s=100, fail_rate=fail_rate, commit_then_fail_rate=commit_then_fail_rate, seed=seed
    )
    crm = FaultyCrm(fake, hang_rate=hang_rate, hang_seconds=hang_seconds, seed=seed + 1)
    fake.clock = crm.arrival_clock
    server = FakeServer(crm)
    # A hung call answers a client that has gone: the broken pipe is expected, not news.
    server._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
    return crm, server.start()
