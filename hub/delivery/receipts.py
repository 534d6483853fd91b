"""Write receipts: the CRM id of every (destination, object kind, identity) once written, so
later events become updates and a retry after an ambiguous failure never creates twice."""

from __future__ import annotations

import hashlib
from typing import Any

from hub.canonical import Activity, Company, Contact, Deal
from hub.runtime import keys

__all__ = ["Receipts", "activity_identity", "company_identity", "contact_identity", "deal_identity"]


def _first_external(external_ids: dict[str, str]) -> str | None:
    if not external_ids:
        return None
    system = sorted(external_ids)[0]
    return f"ext:{system}:{external_ids[system]}"


def contact_identity(contact: Contact) -> str | None:
    """email, else phone, else the first external id (the CRM's own matching order)."""
    if contact.email:
        return f"email:{contact.email}"
    if contact.phone:
        return f"phone:{contact.phone}"
    return _first_external(dict(contact.external_ids))


def company_identity(company: Company) -> str | None:
    if company.domain:
        return f"domain:{company.domain}"
    if company.external_ids:
        return _first_external(dict(company.external_ids))
    return f"name:{company.name.casefold()}" if company.name else None


def deal_identity(deal: Deal, contact_id: str | None) -> str | None:
    found = _first_external(dict(deal.external_ids))
    if found:
        return found
    return f"title:{contact_id}:{deal.title}" if deal.title and contact_id else None


def activity_identity(activity: Activity, contact_id: str | None) -> str:
    found = _first_external(dict(activity.external_ids))
    if found:
        return f"{found}:{activity.kind}"
    digest = hashlib.sha256(
        f"{contact_id}|{activity.kind}|{activity.occurred_at.isoformat()}|{activity.subject}".encode()
    ).hexdigest()[:24]
    return f"hash:{digest}"


class Receipts:
    """Receipts of one destination, in Redis hashes by object kind."""

    def __init__(self, client: Any, destination: str) -> None:
        self.client = client
        self.destination = destination

    def get(self, kind: str, identity: str | None) -> str | None:
        if identity is None:
            return None
        value = self.client.hget(keys.receipts(self.destination, kind), identity)
        return value.decode() if value is not None else None

    def put(self, kind: str, identity: str | None, crm_id: str) -> None:
        if identity is not None:
            self.client.hset(keys.receipts(self.destination, kind), identity, crm_id)

    def get_many(self, kind: str, identities: list[str | None]) -> list[str | None]:
        """`get` for a whole batch, in one round trip."""
        wanted = [identity for identity in identities if identity is not None]
        if not wanted:
            return [None] * len(identities)
        values = self.client.hmget(keys.receipts(self.destination, kind), wanted)
        found = dict(zip(wanted, values, strict=True))
        return [
            None if identity is None or found[identity] is None else found[identity].decode()
            for identity in identities
        ]

    def put_many(self, kind: str, ids: dict[str, str]) -> None:
        """`put` for a whole batch (identity -> CRM id), in one round trip."""
        if ids:
            self.client.hset(keys.receipts(self.destination, kind), mapping=ids)

    def forget(self, kind: str, identities: list[str]) -> int:
        """Remove receipts (for `crmhub forget`); returns how many existed."""
        if not identities:
            return 0
        return int(self.client.hdel(keys.receipts(self.destination, kind), *identities))
