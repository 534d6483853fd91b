"""`crmhub serve | worker | run`: the ingress, the workers, or everything on one machine."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import typer

from hub.cli.common import CONFIG_OPTION, config_or_fail, err, fail
from hub.errors import HubError

log = logging.getLogger(__name__)

HOST_OPTION = typer.Option("127.0.0.1", "--host", help="Interface to listen on.")
PORT_OPTION = typer.Option(8000, "--port", help="TCP port to listen on.")


def serve(
    config: Path = CONFIG_OPTION,
    host: str = HOST_OPTION,
    port: int = PORT_OPTION,
    workers: int = typer.Option(1, "--workers", min=1, help="Ingress processes (needs REDIS_URL)."),
) -> None:
    """Run the webhook ingress (uses REDIS_URL)."""
    import uvicorn

    from hub.ingress import create_app
    from hub.settings import CONFIG_ENV, redis_url

    loaded = config_or_fail(config)
    url = redis_url()
    if url is None:
        fail("REDIS_URL is not set: export it (or use `crmhub run`, which starts an embedded server)")
    if workers > 1:
        os.environ[CONFIG_ENV] = str(config)
        uvicorn.run(
            "hub.ingress.factory:build",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            access_log=False,
        )
        return
    uvicorn.run(create_app(loaded, url), host=host, port=port, log_level="warning", access_log=False)


class WorkerRole(StrEnum):
    """What `crmhub worker --only` consumes."""

    events = "events"
    deliveries = "deliveries"


def worker(
    config: Path = CONFIG_OPTION,
    processes: int = typer.Option(1, "--processes", "-p", min=1, help="Worker processes."),
    threads: int = typer.Option(8, "--threads", "-t", min=1, help="Event threads per process."),
    delivery_threads: int = typer.Option(
        32, "--delivery-threads", min=1, help="Delivery threads per process (they fill batches)."
    ),
    only: WorkerRole | None = typer.Option(
        None,
        "--only",
        help="Consume only `events` (mapping, flows, polls) or only `deliveries` (CRM writes), "
        "to scale the two stages apart. Default: both.",
    ),
) -> None:
    """Run worker processes (uses REDIS_URL). SIGTERM drains in-flight messages and exits."""
    from hub.runtime.stack import Children
    from hub.runtime.worker import run_worker
    from hub.settings import redis_url

    # Take SIGTERM/SIGINT at once: a stop that arrives while we start up still drains cleanly.
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    loaded = config_or_fail(config)
    url = redis_url()
    if url is None:
        fail("REDIS_URL is not set: export it (or use `crmhub run`, which starts an embedded server)")
    if processes == 1:
        role = only.value if only else "all"
        run_worker(loaded, url, threads=threads, delivery_threads=delivery_threads, role=role, stop=stop)
        return
    children = Children(config, url)
    for _ in range(processes):
        children.start(
            [
                "worker",
                "--config",
                str(config),
                "--threads",
                str(threads),
                "--delivery-threads",
                str(delivery_threads),
                *(["--only", only.value] if only else []),
            ]
        )
    _wait_for_signal(children)


def scheduler(config: Path = CONFIG_OPTION) -> None:
    """Run the scheduler (uses REDIS_URL): enqueues connector polls at their intervals and
    applies event-log retention. Run several for failover: a Redis lock keeps one active."""
    import redis

    from hub.runtime.polling import Scheduler
    from hub.settings import redis_url

    loaded = config_or_fail(config)
    url = redis_url()
    if url is None:
        fail("REDIS_URL is not set: export it (or use `crmhub run`, which starts an embedded server)")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    Scheduler(loaded, redis.Redis.from_url(url)).run(stop)


def _wait_for_signal(children: object) -> None:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            exited = children.any_exited()  # type: ignore[attr-defined]
            if exited is not None:
                err.print(f"a child process exited with code {exited.returncode}; stopping")
                break
    finally:
        children.stop()  # type: ignore[attr-defined]


def run(
    config: Path = CONFIG_OPTION,
    host: str = HOST_OPTION,
    port: int = PORT_OPTION,
    processes: int = typer.Option(1, "--processes", "-p", min=1, help="Worker processes."),
    threads: int = typer.Option(8, "--threads", "-t", min=1, help="Threads per worker process."),
) -> None:
    """Run everything: an embedded Redis-compatible server (unless REDIS_URL is set), the
    ingress, workers and the scheduler. Ctrl-C stops all of them; the next run finds the queue as it was."""
    from hub.runtime.stack import Children, resolve_redis

    loaded = config_or_fail(config)
    try:
        url, server = resolve_redis(loaded, embedded=True)
    except HubError as exc:
        fail(str(exc))
    children = Children(config, url)
    try:
        children.start(["serve", "--config", str(config), "--host", host, "--port", str(port)])
        children.start(
            ["worker", "--config", str(config), "--processes", str(processes), "--threads", str(threads)]
        )
        where = "embedded server" if server is not None else "REDIS_URL"
        err.print(
            f"CRM Hub running: webhooks on http://{host}:{port}/hooks/<connector id> "
            f"(queue: {where}); Ctrl-C to stop"
        )
        _wait_for_signal(children)
    finally:
        children.stop()
        if server is not None:
            server.stop()
    time.sleep(0)
    sys.exit(0)


def backfill(
    connector: str = typer.Argument(..., help="A polling connector instance id."),
    since: datetime = typer.Option(
        ..., "--since", help="Start date, e.g. 2026-01-01.", formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]
    ),
    config: Path = CONFIG_OPTION,
) -> None:
    """Poll a connector from --since until caught up; events go through the normal pipeline
    (workers map and deliver them; provider ids dedupe against live polling)."""
    import redis
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from hub.connector.base import PollingConnector
    from hub.runtime.polling import backfill as run_backfill
    from hub.runtime.stack import resolve_redis

    loaded = config_or_fail(config)
    instance = loaded.connectors.get(connector)
    if instance is None:
        fail(f"no connector instance {connector!r} in {config}")
    built = instance.build()
    if not isinstance(built, PollingConnector):
        fail(f"{connector!r} ({instance.type_name}) does not poll: only polling connectors backfill")
    try:
        url, server = resolve_redis(loaded, embedded=True)
    except HubError as exc:
        fail(str(exc))
    client = redis.Redis.from_url(url)
    start = since if since.tzinfo else since.replace(tzinfo=UTC)
    try:
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err
        ) as progress:
            task = progress.add_task(f"backfilling {connector} since {start.date()}", total=None)

            def report(pages: int, new: int, cursor: object) -> None:
                progress.update(
                    task,
                    description=f"backfilling {connector}: {pages} page(s), "
                    f"{new} new event(s), cursor {cursor}",
                )

            total = run_backfill(built, connector, client, start, report)
    except HubError as exc:
        fail(f"backfill stopped: {exc}")
    finally:
        client.close()
        if server is not None:
            server.stop()
    err.print(f"backfill done: {total} new event(s) queued")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("worker")(worker)
    app.command("run")(run)
    app.command("scheduler")(scheduler)
    app.command("backfill")(backfill)
