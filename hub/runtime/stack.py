"""Starting and stopping the pieces of a hub: the Redis URL to use and child processes."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from hub.runtime.embedded import EmbeddedServer
from hub.settings import CONFIG_ENV, HubConfig, redis_url

__all__ = ["Children", "resolve_redis"]

log = logging.getLogger(__name__)


def resolve_redis(config: HubConfig, *, embedded: bool) -> tuple[str, EmbeddedServer | None]:
    """`REDIS_URL` if set; otherwise (when allowed) a private embedded server in the data dir."""
    url = redis_url()
    if url is not None:
        return url, None
    if not embedded:
        from hub.errors import ConfigError

        raise ConfigError(
            "REDIS_URL is not set: export it, or use `crmhub run`, which starts an embedded server"
        )
    server = EmbeddedServer(config.data_dir)
    return server.start(), server


class Children:
    """Child processes started with the hub's CLI, stopped together (SIGTERM, then SIGKILL)."""

    def __init__(self, config_file: Path, url: str) -> None:
        self.env = {**os.environ, "REDIS_URL": url, CONFIG_ENV: str(config_file)}
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, args: Sequence[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-m", "hub.cli", *args], env=self.env)  # noqa: S603
        self.procs.append(proc)
        return proc

    def any_exited(self) -> subprocess.Popen[bytes] | None:
        return next((p for p in self.procs if p.poll() is not None), None)

    def stop(self, timeout: float = 35.0) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("process %d did not stop in time; killing it", proc.pid)
                proc.kill()
                proc.wait()
