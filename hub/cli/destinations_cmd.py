"""`crmhub destinations list | check | resume`: CRM destinations before and during delivery."""

from __future__ import annotations

from pathlib import Path

import httpx
import typer

from hub import plugins
from hub.cli.common import CONFIG_OPTION, JSON_OPTION, config_or_fail, fail, out, print_json, print_table
from hub.destination import Destination
from hub.errors import HubError

app = typer.Typer(
    help="CRM destinations: installed types, configuration checks, pauses.", no_args_is_help=True
)


@app.command("list")
def list_destinations(as_json: bool = JSON_OPTION) -> None:
    """Installed destination plugins (`hub.destinations` entry points)."""
    registry = plugins.destinations()
    rows = [
        {
            "name": name,
            "plugin": registry.origins[name],
            "status": "ok",
            "batch_limits": dict(cls.batch_limits),
            "rate_limit": cls.rate_limit,
        }
        for name, cls in sorted(registry.plugins.items())
    ]
    rows += [
        {
            "name": b.name,
            "plugin": b.target,
            "status": f"broken: {b.reason}",
            "batch_limits": {},
            "rate_limit": None,
        }
        for b in registry.broken
    ]
    if as_json:
        print_json(rows)
        return
    print_table(
        "Destinations",
        ["name", "bulk", "rate limit", "plugin", "status"],
        [
            [
                r["name"],
                ", ".join(f"{k} {v}" for k, v in r["batch_limits"].items()),
                f"{r['rate_limit'][0]} / {r['rate_limit'][1]:g} s" if r["rate_limit"] else "",
                r["plugin"],
                r["status"],
            ]
            for r in rows
        ],
    )


@app.command("check")
def check(config: Path = CONFIG_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Ask each configured CRM's metadata endpoints whether every mapped property, pipeline
    and stage exists, before any data flows. Exit 1 if anything is missing."""
    loaded = config_or_fail(config)
    report = []
    for destination_id, instance in loaded.destinations.items():
        destination = instance.build()
        assert isinstance(destination, Destination)
        base_url = destination.base_url()
        client = httpx.Client(base_url=base_url, timeout=30) if base_url else None
        destination.client = client
        try:
            problems = destination.check()
        except HubError as exc:
            problems = [str(exc)]
        except httpx.HTTPError as exc:
            problems = [f"cannot reach the CRM: {type(exc).__name__}"]
        finally:
            destination.close()
            if client is not None:
                client.close()
        report.append({"destination": destination_id, "type": instance.type_name, "problems": problems})
    if as_json:
        print_json(report)
    else:
        for item in report:
            status = "OK" if not item["problems"] else f"{len(item['problems'])} problem(s)"
            out.print(f"{item['destination']} ({item['type']}): {status}")
            for problem in item["problems"]:
                out.print(f"  - {problem}")
    if any(item["problems"] for item in report):
        raise typer.Exit(1)


@app.command("resume")
def resume(destination_id: str, config: Path = CONFIG_OPTION) -> None:
    """Resume a destination paused after its credentials were refused."""
    import redis

    from hub.delivery.pause import clear_pause
    from hub.runtime.stack import resolve_redis

    loaded = config_or_fail(config, require_env=False)
    instance = loaded.destinations.get(destination_id)
    if instance is None:
        fail(f"no destination {destination_id!r} in {config}")
    destination = instance.build()
    try:
        url, server = resolve_redis(loaded, embedded=True)
    except HubError as exc:
        fail(str(exc))
    client = redis.Redis.from_url(url)
    try:
        cleared = clear_pause(client, destination.account_key())
    finally:
        client.close()
        if server is not None:
            server.stop()
    out.print(f"{destination_id}: {'resumed' if cleared else 'was not paused'}")
