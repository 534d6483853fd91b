"""The root `crmhub` Typer app: logging setup and command registration."""

from __future__ import annotations

import logging

import typer

from hub import redaction
from hub.cli import (
    config_cmd,
    connectors_cmd,
    crm_cmd,
    demo_cmd,
    destinations_cmd,
    events_cmd,
    forget_cmd,
    mapping_cmd,
    run_cmd,
    transform_cmd,
)

app = typer.Typer(
    name="crmhub",
    help="CRM Hub: get every lead, order, booking and invoice into your CRM, clean, once, fast.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at DEBUG level to stderr."),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    redaction.install()


transform_cmd.register(app)
config_cmd.register(app)
run_cmd.register(app)
demo_cmd.register(app)
forget_cmd.register(app)
app.add_typer(connectors_cmd.app, name="connectors")
app.add_typer(mapping_cmd.app, name="mapping")
app.add_typer(events_cmd.app, name="events")
app.add_typer(events_cmd.dlq_app, name="dlq")
app.add_typer(crm_cmd.app, name="crm")
app.add_typer(destinations_cmd.app, name="destinations")


def main() -> None:
    """Console-script entry point."""
    app()
