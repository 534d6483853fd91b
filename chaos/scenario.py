"""The fault actions of a run (kill a worker, restart the server, take the CRM down, 429
bursts) and what each left to measure."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import redis

from chaos.crm import FaultyCrm
from chaos.probes import Kill, RedeliveryProbe, RestartProbe, inflight_events
from chaos.stack import ChaosStack
from hub.runtime import keys

__all__ = ["Restart", "Scenario"]


@dataclass
class Restart:
    """The server restart: stopped at `down_at`, answering again at `up_at` (monotonic)."""

    down_at: float = 0.0
    up_at: float = 0.0
    parked_before: set[bytes] = field(default_factory=set)
    probe: RestartProbe | None = None


class Scenario:
    """Applies the faults to a running stack and keeps their records."""

    def __init__(self, stack: ChaosStack, crm: FaultyCrm, *, seed: int) -> None:
        self.stack = stack
        self.crm = crm
        self.random = random.Random(seed)
        self.kills: list[Kill] = []
        self.probes: list[RedeliveryProbe] = []
        self.restart = Restart()
        self.outages: list[tuple[float, float]] = []
        self.bursts: list[tuple[float, int]] = []
        self.log: list[str] = []
        self.t0 = time.monotonic()

    def note(self, text: str) -> None:
        line = f"[{time.monotonic() - self.t0:7.1f}s] {text}"
        self.log.append(line)
        print(line, flush=True)

    def kill_worker(self) -> Kill:
        """SIGKILL a random worker, read what it held, start a replacement."""
        name = self.random.choice(sorted(self.stack.workers))
        worker = self.stack.kill_worker(name)
        killed_at, killed_ms = time.monotonic(), int(time.time() * 1000)
        client = self.stack.client(socket_timeout=5)
        inflight, ack_keys = inflight_events(client, worker.broker_id)
        depth = sum(
            int(client.llen(f"dramatiq:{q}")) for q in (keys.EVENTS_QUEUE, keys.delivery_queue("crm"))
        )
        client.close()
        kill = Kill(name, killed_at, killed_ms, inflight, depth)
        self.kills.append(kill)
        probe = RedeliveryProbe(
            self.stack.url, kill, ack_keys, lambda: [w.broker_id for w in list(self.stack.workers.values())]
        )
        probe.start()
        self.probes.append(probe)
        replacement = self.stack.start_worker()
        self.note(
            f"SIGKILL {name} ({len(inflight)} events in flight, {depth} queued); "
            f"started {replacement.name} in {time.monotonic() - killed_at:.1f} s"
        )
        return kill

    def restart_server(self, down_for: float) -> None:
        """Stop the server (SIGTERM: AOF flushed), wait, start it on the same data."""
        client = self.stack.client(socket_timeout=5)
        self.restart.parked_before = set(client.zrange(keys.retry_schedule(), 0, -1))
        client.close()
        self.restart.down_at = time.monotonic()
        self.stack.stop_server()
        self.note(f"server stopped ({len(self.restart.parked_before)} retries parked)")
        time.sleep(down_for)
        self.stack.start_server()
        self.restart.up_at = time.monotonic()
        brokers = {name: w.broker_id for name, w in self.stack.workers.items()}
        self.restart.probe = RestartProbe(
            self.stack.url, brokers, self.restart.up_at, int(time.time() * 1000)
        )
        self.restart.probe.start()
        self.note(f"server up again after {self.restart.up_at - self.restart.down_at:.1f} s")

    def crm_down(self, seconds: float) -> None:
        self.crm.set_down(True)
        self.outages.append((time.monotonic(), seconds))
        self.note(f"CRM down for {seconds:.0f} s")

    def crm_up(self) -> None:
        self.crm.set_down(False)
        self.note("CRM up")

    def burst(self, calls: int) -> None:
        self.crm.burst(calls)
        self.bursts.append((time.monotonic(), calls))
        self.note(f"CRM answers the next {calls} calls 429 (Retry-After 2)")

    def hang(self, calls: int) -> None:
        self.crm.hang(calls)
        self.note(f"CRM holds the answer of the next {calls} call(s) past the client timeout")

    def parked_left(self, client: redis.Redis) -> int:
        """Retries parked before the restart that are still parked now."""
        members = list(self.restart.parked_before)
        if not members:
            return 0
        scores = client.zmscore(keys.retry_schedule(), members)
        return sum(1 for s in scores if s is not None)

    def stop(self) -> None:
        for probe in self.probes:
            probe.stop()
        if self.restart.probe is not None:
            self.restart.probe.stop()
