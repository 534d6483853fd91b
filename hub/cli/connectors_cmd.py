"""`crmhub connectors list`: the installed connector plugins (and broken ones)."""

from __future__ import annotations

import typer

from hub import plugins
from hub.cli.common import JSON_OPTION, print_json, print_table

app = typer.Typer(help="Installed source connector plugins.", no_args_is_help=True)


@app.command("list")
def list_connectors(as_json: bool = JSON_OPTION) -> None:
    """List connector plugins found through the `hub.connectors` entry points."""
    registry = plugins.connectors()
    rows = []
    for name, cls in sorted(registry.plugins.items()):
        rows.append(
            {
                "name": name,
                "category": cls.category,
                "events": list(cls.events),
                "delivery": "poll"
                if hasattr(cls, "poll")
                else ("webhook+fetch" if getattr(cls, "fetches", False) else "webhook"),
                "plugin": registry.origins[name],
                "status": "ok",
            }
        )
    for broken in registry.broken:
        rows.append(
            {
                "name": broken.name,
                "category": "",
                "events": [],
                "delivery": "",
                "plugin": broken.target,
                "status": f"broken: {broken.reason}",
            }
        )
    if as_json:
        print_json(rows)
        return
    print_table(
        "Connectors",
        ["name", "category", "delivery", "events", "plugin", "status"],
        [
            [r["name"], r["category"], r["delivery"], ", ".join(r["events"]), r["plugin"], r["status"]]
            for r in rows
        ],
    )
