"""`crmhub demo`: run the whole hub on embedded defaults with signed sample webhooks."""

from __future__ import annotations

from pathlib import Path

import typer

from hub.cli.common import err, fail, out, print_table


def demo(
    work_dir: Path = typer.Option(Path(".crmhub/demo"), "--dir", help="Scratch folder (wiped first)."),
    timeout: float = typer.Option(90.0, "--timeout", help="Seconds to wait for delivery."),
) -> None:
    """Start the embedded stack, post signed sample webhooks of every built-in connector,
    wait until they reach the local CRM and print its contacts, deals and activities."""
    from hub.demo.runner import run_demo, summary
    from hub.destinations.local.destination import LocalCrm, LocalCrmSettings

    result = run_demo(work_dir, timeout=timeout, say=lambda text: err.print(f"[demo] {text}"))
    crm = LocalCrm(LocalCrmSettings(path=str(result.crm_db)))
    try:
        contacts, deals, activities = crm.contacts(), crm.deals(), crm.activities()
    finally:
        crm.close()
    print_table(
        f"Contacts ({len(contacts)})",
        ["name", "email", "phone", "company", "tags"],
        [
            [
                " ".join(p for p in (c.get("first_name"), c.get("last_name")) if p),
                c.get("email"),
                c.get("phone"),
                c.get("company"),
                ", ".join(sorted(c.get("tags") or [])),
            ]
            for c in contacts
        ],
    )
    print_table(
        f"Deals ({len(deals)})",
        ["title", "amount", "status", "contact"],
        [
            [
                d.get("title"),
                f"{d.get('amount') or ''} {d.get('currency') or ''}".strip(),
                d.get("status"),
                d.get("contact_id"),
            ]
            for d in deals
        ],
    )
    print_table(
        f"Activities ({len(activities)})",
        ["kind", "when", "subject"],
        [[a.get("kind"), a.get("occurred_at"), a.get("subject")] for a in activities],
    )
    report = summary(result)
    out.print(f"sent {report['sent']} webhooks; events: {report['events']}")
    if report["problems"]:
        fail("some events did not arrive:\n  " + "\n  ".join(report["problems"]))
    out.print(
        "demo OK: every sample webhook was verified, stored, mapped and delivered (or ignored "
        "when it held nothing to deliver)"
    )


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
