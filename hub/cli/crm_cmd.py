"""`crmhub crm contacts|deals|activities`: browse the local CRM (the `local` destination)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import typer

from hub.cli.common import JSON_OPTION, fail, out, print_json, print_table
from hub.destinations.local import LocalCrm, LocalCrmSettings
from hub.errors import HubError
from hub.settings import load_config

app = typer.Typer(help="Browse the local CRM: what the `local` destination received.", no_args_is_help=True)

_DEFAULT_CONFIG = Path("crmhub.yaml")

SEARCH_OPTION = typer.Option(None, "--search", "-s", help="Only rows containing TEXT (any case).")
DB_OPTION = typer.Option(None, "--db", help="The database file (default: the config's local destination).")
CRM_CONFIG_OPTION = typer.Option(
    None,
    "--config",
    "-c",
    help="The config whose `type: local` destination to open (default: crmhub.yaml if present, "
    "else .crmhub/crm.db).",
)

Row = dict[str, Any]


def _database(db: Path | None, config: Path | None) -> Path:
    """The database to open: `--db`, else the config's local destination, else the default."""
    if db is not None:
        return db
    if config is None:
        if not _DEFAULT_CONFIG.is_file():
            return Path(LocalCrmSettings().path)
        config = _DEFAULT_CONFIG
    try:
        loaded = load_config(config)
    except HubError as exc:
        fail(f"{exc}\n(or pass --db PATH to open a local CRM database directly)")
    local = {d.id: d.settings for d in loaded.destinations.values() if d.type_name == LocalCrm.name}
    if not local:
        fail(f"{config} has no `type: local` destination: add one, or pass --db PATH")
    if len(local) > 1:
        fail(f"{config} has {len(local)} local destinations ({', '.join(sorted(local))}): pass --db PATH")
    (settings,) = local.values()
    return Path(settings.path)


def _show(
    db: Path | None,
    config: Path | None,
    as_json: bool,
    read: Callable[[LocalCrm], list[Row]],
    title: str,
    columns: Sequence[str],
    cells: Callable[[Row], Sequence[Any]],
) -> None:
    path = _database(db, config)
    if not path.is_file():
        fail(f"no local CRM database at {path}: nothing has been delivered yet (or pass --db PATH)")
    crm = LocalCrm(LocalCrmSettings(path=str(path)))
    try:
        rows = read(crm)
    except (OSError, sqlite3.Error) as exc:
        fail(f"cannot read the local CRM database {path}: {exc}")
    finally:
        crm.close()
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print(f"No {title.lower()} in {path}.")
        return
    print_table(f"{title} ({len(rows)})", columns, [cells(row) for row in rows])


@app.command("contacts")
def contacts(
    search: str | None = SEARCH_OPTION,
    as_json: bool = JSON_OPTION,
    db: Path | None = DB_OPTION,
    config: Path | None = CRM_CONFIG_OPTION,
) -> None:
    """List contacts: name, email, phone, company, lifecycle stage, tags."""
    _show(
        db,
        config,
        as_json,
        lambda crm: crm.contacts(search),
        "Contacts",
        ["name", "email", "phone", "company", "stage", "tags"],
        lambda r: [
            r["name"],
            r["email"],
            r["phone"],
            r["company"],
            r["lifecycle_stage"],
            ", ".join(r["tags"]),
        ],
    )


@app.command("deals")
def deals(
    search: str | None = SEARCH_OPTION,
    as_json: bool = JSON_OPTION,
    db: Path | None = DB_OPTION,
    config: Path | None = CRM_CONFIG_OPTION,
) -> None:
    """List deals: title, amount and currency, status, contact."""
    _show(
        db,
        config,
        as_json,
        lambda crm: crm.deals(search),
        "Deals",
        ["title", "amount", "status", "contact"],
        lambda r: [
            r["title"],
            " ".join(v for v in (r["amount"], r["currency"]) if v),
            r["status"],
            r["contact"],
        ],
    )


@app.command("activities")
def activities(
    search: str | None = SEARCH_OPTION,
    as_json: bool = JSON_OPTION,
    db: Path | None = DB_OPTION,
    config: Path | None = CRM_CONFIG_OPTION,
) -> None:
    """List timeline activities: kind, when (UTC), subject, contact."""
    _show(
        db,
        config,
        as_json,
        lambda crm: crm.activities(search),
        "Activities",
        ["kind", "when", "subject", "contact"],
        lambda r: [r["kind"], r["occurred_at"], r["subject"], r["contact"]],
    )
