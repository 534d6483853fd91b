"""`crmhub transform`: map one payload file to a Bundle and print it as JSON."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import typer

from hub import plugins
from hub.cli.common import fail, print_json
from hub.connector.base import SourceEvent
from hub.errors import HubError
from hub.mapping import MappingSet
from hub.settings import load_config


def transform(
    connector: str = typer.Option(..., "--connector", help="Connector type (or instance id with --config)."),
    event: str = typer.Option(..., "--event", help="Event type, e.g. orders/create, Invoice, leadgen."),
    file: Path = typer.Argument(
        ..., help="The payload: a webhook body, or the fetched API object.", exists=False
    ),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Use this config's mapping overrides for the instance."
    ),
    region: str | None = typer.Option(None, "--region", help="Default region for national phones."),
) -> None:
    """Map FILE with the connector's mapping for EVENT; print the Bundle JSON on stdout."""
    try:
        data = json.loads(file.read_bytes())
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        fail(f"{file} is not valid JSON: {exc}")
    if not isinstance(data, dict):
        fail(f"{file} must hold a JSON object, not {type(data).__name__}")
    try:
        if config is not None:
            hub_config = load_config(config)
            if connector not in hub_config.connectors:
                fail(f"no connector instance {connector!r} in {config}")
            mappings = hub_config.connectors[connector].mappings
        else:
            cls = plugins.connectors().get(connector)
            mappings = MappingSet.load(cls.mapping_dir(), default_region=region)
        mapper = mappings.get(event)
        if mapper is None:
            known = ", ".join(mappings.events) or "none"
            fail(f"connector {connector!r} has no mapping for event {event!r}; mapped events: {known}")
        event_id = hashlib.sha256(file.read_bytes()).hexdigest()[:16]
        bundle = mapper.map(SourceEvent(event, event_id, datetime.now(UTC), data), connector=connector)
    except HubError as exc:
        fail(f"{file}: {exc}")
    print_json(bundle.to_json_dict())


def register(app: typer.Typer) -> None:
    app.command("transform")(transform)
