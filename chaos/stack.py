"""The hub under test, as `crmhub` runs it: an embedded Redis-compatible server (unix socket,
AOF), `crmhub serve`, `crmhub scheduler` and several `crmhub worker` processes, each in its
own process group so a SIGKILL takes the whole worker, as a crash would.

Every child is started here and ended here (`close`), also on exceptions and Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from hub.runtime.embedded import EmbeddedServer

__all__ = ["HEARTBEATS", "ChaosStack", "Worker", "peak_rss_kib"]

ROOT = Path(__file__).resolve().parents[1]
#: dramatiq's sorted set of broker ids by last heartbeat (ms).
HEARTBEATS = "dramatiq:__heartbeats__"


def peak_rss_kib(pid: int) -> int | None:
    """VmHWM (peak resident set) of a live process, in KiB; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return None
    return None


@dataclass
class Worker:
    """One `crmhub worker` process and the dramatiq broker id it heartbeats as."""

    name: str
    proc: subprocess.Popen[bytes]
    broker_id: str = ""
    started_at: float = field(default_factory=time.monotonic)
    peak_rss_kib: int = 0

    def sample_rss(self) -> None:
        value = peak_rss_kib(self.proc.pid)
        if value is not None:
            self.peak_rss_kib = max(self.peak_rss_kib, value)


class ChaosStack:
    """Start, kill and restart the hub's processes.

    Args:
        run_dir: short path (the server's unix socket lives in it) for data, config and logs.
        config: the crmhub.yaml.
        worker_threads, delivery_threads: `crmhub worker --threads/--delivery-threads`.
        http_timeout: if set, workers start through `chaos/hub_cli.py`, which sets the hub's
            CRM HTTP timeout (30 s, `hub.runtime.context.HTTP_TIMEOUT`) to this many seconds.
    """

    def __init__(
        self,
        run_dir: Path,
        config: Path,
        *,
        worker_threads: int = 4,
        delivery_threads: int = 64,
        http_timeout: float | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.config = config
        self.worker_threads = worker_threads
        self.delivery_threads = delivery_threads
        self.http_timeout = http_timeout
        self.server = EmbeddedServer(run_dir / "valkey")
        self.port = 0
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.workers: dict[str, Worker] = {}
        self.dead_workers: list[Worker] = []
        self._worker_count = 0
        self.env: dict[str, str] = {}

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis.from_url(self.url, **kwargs)  # type: ignore[arg-type]

    # -- start ----------------------------------------------------------------------------------

    def start(self, workers: int) -> None:
        """Server, scheduler, ingress, then `workers` workers (each seen heartbeating)."""
        self.server.start()
        self.client().flushall()
        self.env = {**os.environ, "REDIS_URL": self.url, "CRMHUB_CONFIG": str(self.config)}
        if self.http_timeout is not None:
            self.env["CHAOS_HTTP_TIMEOUT"] = str(self.http_timeout)
        self.port = _free_port()
        self._spawn("scheduler", "scheduler", "--config", str(self.config))
        self._spawn("ingress", "serve", "--config", str(self.config), "--port", str(self.port))
        for _ in range(workers):
            self.start_worker()
        self._wait_ready()

    def _spawn(self, name: str, *args: str, shim: bool = False) -> subprocess.Popen[bytes]:
        entry = [str(ROOT / "chaos" / "hub_cli.py")] if shim else ["-m", "hub.cli"]
        log = open(self.run_dir / f"{name}.log", "ab")
        try:
            proc = subprocess.Popen(  # noqa: S603 (our own interpreter and CLI)
                [sys.executable, *entry, *args],
                env=self.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        self.procs[name] = proc
        return proc

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive(("ingress", "scheduler"))
            try:
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(
            f"the ingress did not become ready in {timeout:.0f} s: see {self.run_dir}/ingress.log"
        )

    def _check_alive(self, names: tuple[str, ...]) -> None:
        for name in names:
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}: see {self.run_dir}/{name}.log")

    def start_worker(self, timeout: float = 60.0) -> Worker:
        """Start a worker and wait until its broker id shows up in the heartbeats."""
        self._worker_count += 1
        name = f"worker-{self._worker_count}"
        client = self.client()
        known = {m.decode() for m in client.zrange(HEARTBEATS, 0, -1)}
        known |= {w.broker_id for w in [*self.workers.values(), *self.dead_workers]}
        proc = self._spawn(
            name,
            "worker",
            "--config",
            str(self.config),
            "--threads",
            str(self.worker_threads),
            "--delivery-threads",
            str(self.delivery_threads),
            shim=self.http_timeout is not None,
        )
        worker = Worker(name, proc)
        self.workers[name] = worker
        deadline = time.monotonic() + timeout
        while not worker.broker_id:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}: see {self.run_dir}/{name}.log")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{name} sent no heartbeat in {timeout:.0f} s: see {self.run_dir}/{name}.log"
                )
            with contextlib.suppress(redis.RedisError):
                fresh = {m.decode() for m in client.zrange(HEARTBEATS, 0, -1)} - known
                if len(fresh) == 1:
                    worker.broker_id = fresh.pop()
            time.sleep(0.05)
        client.close()
        return worker

    # -- chaos ----------------------------------------------------------------------------------

    def kill_worker(self, name: str) -> Worker:
        """SIGKILL the worker's process group (peak RSS read just before)."""
        worker = self.workers.pop(name)
        worker.sample_rss()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait()
        self.procs.pop(name, None)
        self.dead_workers.append(worker)
        return worker

    def stop_server(self) -> None:
        """SIGTERM the server: it flushes its AOF and exits (clients see connection errors)."""
        self.server.stop()

    def start_server(self) -> None:
        """Start the server again on the same data dir and socket; it reloads the AOF."""
        self.server.start(timeout=30)

    def sample_rss(self) -> None:
        for worker in self.workers.values():
            worker.sample_rss()

    def unexpected_exits(self) -> list[str]:
        """Processes (not killed by us) that have exited."""
        return [f"{n} (exit {p.returncode})" for n, p in self.procs.items() if p.poll() is not None]

    # -- stop -----------------------------------------------------------------------------------

    def close(self) -> None:
        """SIGTERM every child, SIGKILL what is left after a few seconds, stop the server
        (SIGKILL it if it does not stop)."""
        try:
            self._end_children()
        finally:
            try:
                self.server.stop(timeout=5)
            except Exception:
                self.server.kill()

    def _end_children(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 8
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
