"""Applying a flow's actions to one destination: receipts first, bulk where the CRM has it,
write order contact -> company -> deal -> activities, each id remembered as soon as known
so a retried message resumes where it stopped.

Where the CRM has bulk calls, the receipts of a whole batch are read and recorded by the
batch's flush (two Redis round trips per batch instead of two per object)."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from hub.canonical import Activity, Bundle, Deal
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
        self._batchers: dict[str, Batcher[tuple[str | None, Any], ItemResult]] = {}
        for kind in self._bulk:
            limit = int(destination.batch_limits.get(kind, 1))
            if limit > 1:  # the CRM has a bulk endpoint: coalesce across threads
                self._batchers[kind] = Batcher(
                    self._batch_flush(kind),
                    max_size=limit,
                    max_wait=debounce,
                    name=f"{destination.instance_id}-{kind}",
                )

    def close(self) -> None:
        for batcher in self._batchers.values():
            batcher.close()
        self.destination.close()

    def _batch_flush(self, kind: str) -> Callable[[list[tuple[str | None, Any]]], list[ItemResult]]:
        """The flush of `kind`'s batcher: (identity, write) items -> results, receipts
        looked up before the bulk call and recorded after it, once per batch. An activity
        already written (it has a receipt) is not written again."""
        bulk = self._bulk[kind]

        def flush(items: list[tuple[str | None, Any]]) -> list[ItemResult]:
            known = self.receipts.get_many(kind, [identity for identity, _ in items])
            results: list[ItemResult | None] = [None] * len(items)
            todo: list[int] = []
            for i, ((_, write), crm_id) in enumerate(zip(items, known, strict=True)):
                if crm_id is not None and kind == "activity":
                    results[i] = Written(crm_id)  # written before: a redelivery adds nothing
                elif crm_id is not None and write.known_id is None:
                    items[i] = (items[i][0], dataclasses.replace(write, known_id=crm_id))
                    todo.append(i)
                else:
                    todo.append(i)
            written = split_on_permanent(bulk, [items[i][1] for i in todo]) if todo else []
            for i, result in zip(todo, written, strict=True):
                results[i] = result
            self.receipts.put_many(
                kind,
                {
                    identity: result.id
                    for (identity, _), result, crm_id in zip(items, results, known, strict=True)
                    if identity is not None and isinstance(result, Written) and result.id != crm_id
                },
            )
            return [r for r in results if r is not None]

        return flush

    def _write(self, kind: str, identity: str | None, make: Callable[[str | None], Any]) -> str:
        """One object's write, `make(known_id)` building it; its receipt read first and
        recorded after. Through the batcher where the CRM has bulk, else directly under the
        identity lock (find-then-create must not race another worker)."""
        batcher = self._batchers.get(kind)
        if batcher is not None:
            return _unwrap(batcher.call((identity, make(None))))
        known = self.receipts.get(kind, identity)
        if kind == "activity" and known is not None:
            return known  # written before: a redelivery adds nothing
        write = make(known)
        if self.destination.atomic_writes:
            crm_id = _unwrap(split_on_permanent(self._bulk[kind], [write])[0])
        else:
            with self.locks.hold(kind, identity):
                crm_id = _unwrap(split_on_permanent(self._bulk[kind], [write])[0])
        self.receipts.put(kind, identity, crm_id)
        return crm_id

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
            contact_id = self._write(
                "contact", contact_identity(contact), lambda known: ContactWrite(contact, known_id=known)
            )
            ids["contact"] = contact_id
        if "upsert_company" in actions and bundle.companies:
            company = bundle.companies[0]
            company_id = self._write(
                "company",
                company_identity(company),
                lambda known: CompanyWrite(company, known_id=known, contact_id=contact_id),
            )
            ids["company"] = company_id
            if contact_id is not None:
                self.destination.link_contact_company(contact_id, company_id)
        if "upsert_deal" in actions and bundle.deals:
            deal: Deal = bundle.deals[0]
            overrides = {k: payload[k] for k in ("pipeline", "stage") if payload.get(k)}
            if overrides:
                deal = deal.model_copy(update=overrides)
            deal_id = self._write(
                "deal",
                deal_identity(deal, contact_id),
                lambda known: DealWrite(deal, known_id=known, contact_id=contact_id, company_id=company_id),
            )
            ids["deal"] = deal_id
        if "add_activity" in actions and bundle.activities:

            def activity_write(activity: Activity) -> Callable[[str | None], ActivityWrite]:
                # No known id: an activity with a receipt is never written again.
                return lambda _known: ActivityWrite(activity, contact_id=contact_id, deal_id=deal_id)

            ids["activities"] = [
                self._write("activity", activity_identity(a, contact_id), activity_write(a))
                for a in bundle.activities
            ]
        if "add_tags" in actions and tags and contact_id is not None:
            self.destination.add_tags(contact_id, sorted(tags))
        return ids
