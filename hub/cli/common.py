"""Helpers shared by CLI commands: consoles, errors, JSON output, config loading."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from hub.errors import HubError
from hub.settings import HubConfig, load_config

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

JSON_OPTION = typer.Option(False, "--json", help="Print one JSON array on stdout, for scripts.")
CONFIG_OPTION = typer.Option(Path("crmhub.yaml"), "--config", "-c", help="The config file.")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error on stderr and exit non-zero."""
    err.print(f"[bold red]error:[/] {message}", markup=True)
    raise typer.Exit(code)


def fail_on(exc: HubError) -> NoReturn:
    fail(str(exc))


def print_json(value: Any) -> None:
    """Plain JSON on stdout (no rich markup, no wrapping)."""
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    out.print(table)


def config_or_fail(path: Path, *, require_env: bool = True) -> HubConfig:
    try:
        config = load_config(path, require_env=require_env)
    except HubError as exc:
        fail_on(exc)
    register_config_secrets(config)
    return config


def register_config_secrets(config: HubConfig) -> None:
    """Teach the log redaction every secret value of the loaded config."""
    from hub import redaction

    for connector in config.connectors.values():
        redaction.register_secrets(redaction.secrets_of(connector.settings))
    for destination in config.destinations.values():
        redaction.register_secrets(redaction.secrets_of(destination.settings))
