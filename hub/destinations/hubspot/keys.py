"""Dedupe keys the hub writes into HubSpot's unique `external_id_property` (crm-apis.md §6).

The same choice as the hub's write receipts (`hub/delivery/receipts.py`): the first external
id by system name, so a retried delivery always lands on the same key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from hub.canonical import Activity, Deal

__all__ = ["activity_key", "deal_key", "external_key"]


def external_key(external_ids: Mapping[str, str]) -> str | None:
    """`<system>:<id>` of the first system by name (`shopify:1001`), or None."""
    if not external_ids:
        return None
    system = sorted(external_ids)[0]
    return f"{system}:{external_ids[system]}"


def deal_key(deal: Deal, contact_id: str | None) -> str | None:
    """The source's id; else title + contact (what the receipts use); else None (no dedupe)."""
    found = external_key(deal.external_ids)
    if found:
        return found
    if deal.title and contact_id:
        return f"title:{contact_id}:{deal.title}"
    return None


def activity_key(activity: Activity, contact_id: str | None) -> str:
    """The source's id plus the kind (one order yields `order_placed` and `order_paid`
    notes); else a digest of contact, kind, time and subject."""
    found = external_key(activity.external_ids)
    if found:
        return f"{found}:{activity.kind}"
    natural = f"{contact_id}|{activity.kind}|{activity.occurred_at.isoformat()}|{activity.subject}"
    return "hash:" + hashlib.sha256(natural.encode()).hexdigest()[:32]
