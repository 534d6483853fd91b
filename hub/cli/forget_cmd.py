"""`crmhub forget EMAIL`: erase what the hub holds about one person (events, dead letters,
parked retries, write receipts); the CRMs keep their own records."""

from __future__ import annotations

from pathlib import Path

import redis
import typer

from hub.cli.common import CONFIG_OPTION, JSON_OPTION, config_or_fail, fail, out, print_json
from hub.errors import HubError
from hub.runtime.forget import forget as forget_email


def forget(
    email: str = typer.Argument(..., help="The person's email address (any case)."),
    config: Path = CONFIG_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Erase every event, dead letter, retry and write receipt that mentions EMAIL.

    The CRMs keep their own records of the person: erase them in each CRM as well.
    """
    from hub.runtime.stack import resolve_redis

    loaded = config_or_fail(config, require_env=False)
    try:
        url, server = resolve_redis(loaded, embedded=True)
    except HubError as exc:
        fail(str(exc))
    client = redis.Redis.from_url(url)
    try:
        report = forget_email(client, email, loaded.destinations)
    except ValueError as exc:
        fail(str(exc))
    finally:
        client.close()
        if server is not None:
            server.stop()
    crms = ", ".join(f"{d} ({i.type_name})" for d, i in loaded.destinations.items()) or "none configured"
    crm_note = f"the CRMs keep their own records of this person: erase them there too ({crms})"
    if as_json:
        print_json({"email": email, **report.as_dict(), "crm_records": crm_note})
        return
    out.print(f"Forgot {email}:")
    out.print(f"  events removed:            {report.events}")
    out.print(f"  dead letters removed:      {report.dead_letters}")
    out.print(f"  scheduled retries removed: {report.retries}")
    receipts = ", ".join(f"{d} {n}" for d, n in report.receipts.items())
    out.print(
        f"  write receipts removed:    {report.total_receipts}" + (f" ({receipts})" if receipts else "")
    )
    if report.queued:
        out.print(
            f"  {report.queued} queued deliveries still mention it: run `crmhub forget` again "
            "once the workers have delivered them"
        )
    out.print(crm_note[0].upper() + crm_note[1:] + ".")


def register(app: typer.Typer) -> None:
    app.command("forget")(forget)
