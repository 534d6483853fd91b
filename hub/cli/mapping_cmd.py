"""`crmhub mapping check|test`: validate specs, try one on a payload."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer

from hub.cli.common import fail, out, print_json
from hub.connector.base import SourceEvent
from hub.errors import Issue, MappingError
from hub.mapping import compile_spec, load_spec_file

app = typer.Typer(help="Check and try mapping specs.", no_args_is_help=True)

_DEFAULT_ROOT = Path("mappings")


def _spec_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted([*path.rglob("*.yaml"), *path.rglob("*.yml")])
    fail(f"{path} does not exist: give a mapping file or a folder of them")


@app.command("check")
def check(
    path: Path = typer.Argument(_DEFAULT_ROOT, help="A spec file or a folder (default mappings/)."),
) -> None:
    """Load and compile every spec; report every problem with file, line and key."""
    issues: list[Issue] = []
    files = _spec_files(path)
    for file in files:
        try:
            compile_spec(load_spec_file(file))
        except MappingError as exc:
            issues.extend(exc.issues)
    if issues:
        fail(str(MappingError(issues)))
    out.print(f"{len(files)} mapping spec(s) OK")


@app.command("test")
def test(
    mapping: Path = typer.Argument(..., help="The mapping spec file."),
    file: Path = typer.Argument(..., help="A JSON payload to map."),
    event: str | None = typer.Option(None, "--event", help="Event type (default: the spec's first)."),
) -> None:
    """Map FILE with MAPPING and print the Bundle JSON (no connector needed)."""
    try:
        mapper = compile_spec(load_spec_file(mapping))
        data = json.loads(file.read_bytes())
        event_type = event or mapper.events[0]
        bundle = mapper.map(SourceEvent(event_type, "test", datetime.now(UTC), data), connector="test")
    except MappingError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot read: {exc}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        fail(f"{file} is not valid JSON: {exc}")
    print_json(bundle.to_json_dict())
