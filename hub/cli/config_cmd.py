"""`crmhub check` and `crmhub schema`: validate a config, print its JSON Schema."""

from __future__ import annotations

from pathlib import Path

import typer

from hub.cli.common import CONFIG_OPTION, config_or_fail, out, print_json
from hub.config_schema import config_json_schema


def check(config: Path = CONFIG_OPTION) -> None:
    """Validate a whole config: connectors, secrets present, mappings load, flows."""
    loaded = config_or_fail(config)
    out.print(
        f"{config}: OK ({len(loaded.connectors)} connector(s), "
        f"{len(loaded.destinations)} destination(s), {len(loaded.flows)} flow(s))"
    )


def schema() -> None:
    """Print the JSON Schema of crmhub.yaml (for editor completion)."""
    print_json(config_json_schema())


def register(app: typer.Typer) -> None:
    app.command("check")(check)
    app.command("schema")(schema)
