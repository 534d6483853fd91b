"""`crmhub events` and `crmhub dlq`: inspect and replay events and dead letters (uses REDIS_URL
or the embedded server of `--config`'s data dir)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import redis
import typer

from hub.cli.common import CONFIG_OPTION, JSON_OPTION, config_or_fail, fail, out, print_json, print_table
from hub.errors import HubError
from hub.runtime.admin import dead_letters, replay_dead_letter, replay_event
from hub.runtime.eventlog import STATUSES, EventLog

app = typer.Typer(help="The event log: list, show, replay.", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead-lettered deliveries: list, replay.", no_args_is_help=True)


@contextmanager
def _client(config: Path) -> Iterator[redis.Redis]:
    """A Redis client on REDIS_URL, or on the embedded server (started if needed)."""
    from hub.runtime.stack import resolve_redis

    loaded = config_or_fail(config, require_env=False)
    try:
        url, server = resolve_redis(loaded, embedded=True)
    except HubError as exc:
        fail(str(exc))
    client = redis.Redis.from_url(url)
    try:
        yield client
    finally:
        client.close()
        if server is not None:
            server.stop()


@app.callback(invoke_without_command=True)
def events(
    ctx: typer.Context,
    status: str | None = typer.Option(None, "--status", "-s", help=f"One of {', '.join(STATUSES)}."),
    connector: str | None = typer.Option(None, "--connector", help="A connector instance id."),
    limit: int = typer.Option(50, "--limit", "-n", min=1),
    config: Path = CONFIG_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """List events, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    if status is not None and status not in STATUSES:
        fail(f"unknown status {status!r}: use one of {', '.join(STATUSES)}")
    with _client(config) as client:
        records = EventLog(client).query(status=status, connector=connector, limit=limit)
    rows = [r.summary() for r in records]
    if as_json:
        print_json(rows)
        return
    print_table(
        "Events",
        ["id", "received", "connector", "type", "status", "error"],
        [[r["id"], r["received_at"], r["connector"], r["type"], r["status"], r["error"][:80]] for r in rows],
    )


@app.command("show")
def show(event_id: str, config: Path = CONFIG_OPTION) -> None:
    """One event in full: status, timestamps, mapping version, error, results, raw body."""
    with _client(config) as client:
        record = EventLog(client).get(event_id)
    if record is None:
        fail(f"no event {event_id!r} in the log")
    detail = record.summary()
    detail["headers"] = record.headers
    detail["body"] = (record.body or b"").decode("utf-8", "replace")
    print_json(detail)


@app.command("replay")
def replay(
    event_id: str | None = typer.Argument(None, help="The event to replay."),
    status: str | None = typer.Option(None, "--status", help="Replay every event with this status."),
    config: Path = CONFIG_OPTION,
) -> None:
    """Re-run events with the current mapping and flows (after fixing a mapping, say)."""
    if (event_id is None) == (status is None):
        fail("give an event id, or --status failed (one of the two)")
    with _client(config) as client:
        if event_id is not None:
            if not replay_event(client, event_id):
                fail(f"no event {event_id!r} in the log")
            out.print(f"replaying {event_id}")
            return
        records = EventLog(client).query(status=status, limit=1_000_000)
        for record in records:
            replay_event(client, record.id)
    out.print(f"replaying {len(records)} event(s)")


@dlq_app.command("list")
def dlq_list(
    config: Path = CONFIG_OPTION,
    as_json: bool = JSON_OPTION,
    limit: int = typer.Option(100, "--limit", "-n", min=1),
) -> None:
    """Dead-lettered deliveries with their final error, newest first."""
    with _client(config) as client:
        items = dead_letters(client, limit=limit)
    for item in items:
        item["died_at"] = datetime.fromtimestamp(item["died_at"] / 1000, tz=UTC).isoformat()
    if as_json:
        print_json(items)
        return
    print_table(
        "Dead letters",
        ["id", "died", "event", "destination", "reason"],
        [[i["id"], i["died_at"], i["event_id"], i["destination"], i["reason"][:100]] for i in items],
    )


@dlq_app.command("replay")
def dlq_replay(
    item_id: str | None = typer.Argument(None, help="The dead letter to replay."),
    replay_all: bool = typer.Option(False, "--all", help="Replay every dead letter."),
    config: Path = CONFIG_OPTION,
) -> None:
    """Send dead letters to their destination again (after fixing the cause)."""
    if (item_id is None) == (not replay_all):
        fail("give a dead-letter id, or --all")
    with _client(config) as client:
        ids = [item_id] if item_id else [i["id"] for i in dead_letters(client, limit=1_000_000)]
        done = sum(1 for i in ids if i and replay_dead_letter(client, i))
    if item_id and not done:
        fail(f"no dead letter {item_id!r}")
    out.print(f"replaying {done} dead letter(s)")
