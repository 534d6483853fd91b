"""Applying a flow's actions to one destination: receipts first, bulk where the CRM has it,
write order contact -> company -> deal -> activities, each id remembered as soon as known
so a retried message resumes where it stopped."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from hub.canonical import Bundle, Deal
from hub.delivery.batcher import Batcher
from hub.delivery.receipts import (
    Receipts,
    activity_identity,
    company_identity,
    contact_identity,
    deal_identity,
)
from hub.destination import (
    ActivityWrite,
    CompanyWrite,
    ContactWrite,
    DealWrite,
    Destination,
    ItemResult,
    Written,
)
from hub.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from hub.runtime import keys

__all__ = ["DestinationWriter", "split_on_permanent"]

log = logging.getLogger(__name__)

W = TypeVar("W")


def split_on_permanent(bulk: Callable[[list[W]], Sequence[ItemResult]], items: list[W]) -> list[ItemResult]:
    """Call `bulk`; if the CRM refuses the whole batch, re-send halves until the bad records
    are alone, so every other record goes through and only the bad one fails."""
    try:
        results = list(bulk(items))
    except PermanentDeliveryError as exc:
        if len(items) == 1:
            return [exc]
        middle = len(items) // 2
        return split_on_permanent(bulk, items[:middle]) + split_on_permanent(bulk, items[middle:])
    except DeliveryError as exc:
        return [exc] * len(items)
    if len(results) != len(items):
        raise PermanentDeliveryError(f"the adapter returned {len(results)} results for {len(items)} writes")
    return results


class IdentityLocks:
    """A Redis lock per (destination, object identity) around find-then-create, so two
    workers writing the same new person to a CRM without upserts cannot both create it."""

    def __init__(self, client: Any, destination: str, *, ttl_ms: int = 15_000, wait: float = 30.0) -> None:
        self.client = client
        self.destination = destination
        self.ttl_ms = ttl_ms
        self.wait = wait

    @contextmanager
    def hold(self, kind: str, identity: str | None) -> Iterator[None]:
        if identity is None or self.client is None:
            yield
            return
        key = keys.identity_lock(self.destination, kind, identity)
        token = os.urandom(8).hex()
        deadline = time.monotonic() + self.wait
        while not self.client.set(key, token, nx=True, px=self.ttl_ms):
            if time.monotonic() > deadline:
                raise TransientDeliveryError(f"another worker is still writing this {kind}")
            time.sleep(0.02)
        try:
            yield
        finally:
            if self.client.get(key) == token.encode():
                self.client.delete(key)


def _unwrap(result: ItemResult) -> str:
    if isinstance(result, Written):
        return result.id
    raise result


class DestinationWriter:
    """One per destination per process; thread-safe (worker threads share its batchers)."""

    def __init__(self, destination: Destination, receipts: Receipts, *, debounce: float = 0.2) -> None:
        self.destination = destination
        self.receipts = receipts
        self.locks = IdentityLocks(receipts.client, destination.instance_id)
        self._bulk: dict[str, Callable[[list[Any]], Sequence[ItemResult]]] = {
            "contact": destination.upsert_contacts,
            "company": destination.upsert_companies,
            "deal": destination.upsert_deals,
            "activity": destination.add_activities,
        }
        self._batchers: dict[str, Batcher[Any, ItemResult]] = {}
        for kind, bulk in self._bulk.items():
            limit = int(destination.batch_limits.get(kind, 1))
            if limit > 1:  # the CRM has a bulk endpoint: coalesce across threads

                def flush(items: list[Any], bulk: Any = bulk) -> list[ItemResult]:
                    return split_on_permanent(bulk, items)

                self._batchers[kind] = Batcher(
                    flush, max_size=limit, max_wait=debounce, name=f"{destination.instance_id}-{kind}"
                )

    def close(self) -> None:
        for batcher in self._batchers.values():
            batcher.close()
        self.destination.close()

    def _write(self, kind: str, write: Any, identity: str | None) -> str:
        """One object's write: through the batcher where the CRM has bulk, else directly
        under the identity lock (find-then-create must not race another worker)."""
        batcher = self._batchers.get(kind)
        if batcher is not None:
            return _unwrap(batcher.call(write))
        if self.destination.atomic_writes:
            return _unwrap(split_on_permanent(self._bulk[kind], [write])[0])
        with self.locks.hold(kind, identity):
            return _unwrap(split_on_permanent(self._bulk[kind], [write])[0])

    def apply(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Write the bundle's objects as the flow's actions say; returns the CRM ids."""
        bundle = Bundle.model_validate(payload["bundle"])
        actions = set(payload["actions"])
        tags = frozenset(payload.get("tags") or ())
        ids: dict[str, Any] = {}
        contact_id = company_id = deal_id = None
        wants_contact = bool(actions & {"upsert_contact", "add_tags"}) or (
            bool(actions & {"upsert_deal", "add_activity"}) and bool(bundle.contacts)
        )
        if wants_contact and bundle.contacts:
            contact = bundle.contacts[0]
            if tags and "upsert_contact" in actions:
                contact = contact.model_copy(update={"tags": contact.tags | tags})
            identity = contact_identity(contact)
            contact_id = self._write(
                "contact", ContactWrite(contact, known_id=self.receipts.get("contact", identity)), identity
            )
            self.receipts.put("contact", identity, contact_id)
            ids["contact"] = contact_id
        if "upsert_company" in actions and bundle.companies:
            company = bundle.companies[0]
            identity = company_identity(company)
            known = self.receipts.get("company", identity)
            company_id = self._write(
                "company", CompanyWrite(company, known_id=known, contact_id=contact_id), identity
            )
            self.receipts.put("company", identity, company_id)
            ids["company"] = company_id
            if contact_id is not None:
                self.destination.link_contact_company(contact_id, company_id)
        if "upsert_deal" in actions and bundle.deals:
            deal: Deal = bundle.deals[0]
            overrides = {k: payload[k] for k in ("pipeline", "stage") if payload.get(k)}
            if overrides:
                deal = deal.model_copy(update=overrides)
            identity = deal_identity(deal, contact_id)
            write = DealWrite(
                deal,
                known_id=self.receipts.get("deal", identity),
                contact_id=contact_id,
                company_id=company_id,
            )
            deal_id = self._write("deal", write, identity)
            self.receipts.put("deal", identity, deal_id)
            ids["deal"] = deal_id
        if "add_activity" in actions and bundle.activities:
            activity_ids = []
            for activity in bundle.activities:
                identity = activity_identity(activity, contact_id)
                known = self.receipts.get("activity", identity)
                if known is not None:
                    activity_ids.append(known)  # written before: a redelivery adds nothing
                    continue
                activity_id = self._write(
                    "activity", ActivityWrite(activity, contact_id=contact_id, deal_id=deal_id), identity
                )
                self.receipts.put("activity", identity, activity_id)
                activity_ids.append(activity_id)
            ids["activities"] = activity_ids
        if "add_tags" in actions and tags and contact_id is not None:
            self.destination.add_tags(contact_id, sorted(tags))
        return ids
