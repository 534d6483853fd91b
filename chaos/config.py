"""The `crmhub.yaml` of a chaos run: three webhook connectors, one HubSpot destination (the
fake, on loopback), and the flows of `chaos.payloads.FLOWS`."""

from __future__ import annotations

from pathlib import Path

from chaos.payloads import FLOWS, SECRETS
from hub.destinations.hubspot.fake import DEFAULT_TOKEN

__all__ = ["write_config"]


def write_config(path: Path, *, crm_url: str, data_dir: Path) -> Path:
    """Write the config file to `path` and return it."""
    lines = [
        "hub:",
        f"  data_dir: {data_dir}",
        "  default_region: US",
        "  allow_insecure_urls: true  # the fake CRM listens on http://127.0.0.1",
        "connectors:",
    ]
    for instance_id, (type_name, secret) in SECRETS.items():
        lines += [f"  {instance_id}:", f"    type: {type_name}", f"    secret: {secret}"]
    lines += [
        "destinations:",
        "  crm:",
        "    type: hubspot",
        f"    access_token: {DEFAULT_TOKEN}",
        f"    base_url: {crm_url}",
        "flows:",
    ]
    for name, (trigger, actions) in FLOWS.items():
        lines += [
            f"  - name: {name}",
            f'    when: "{trigger}"',
            f"    do: [{', '.join(actions)}]",
            "    to: crm",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path
