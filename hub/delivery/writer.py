"""Applying a flow's actions to one destination: receipts first, bulk where the CRM has it,
write order contact -> company -> deal -> activities, each id remembered as soon as known
so a retried message resumes where it stopped."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
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
from hub.errors import DeliveryError, PermanentDeliveryError

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


def _unwrap(result: ItemResult) -> str:
    if isinstance(result, Written):
        return result.id
    raise result


class DestinationWriter:
    """One per destination per process; thread-safe (worker threads share its batchers)."""

    def __init__(self, destination: Destination, receipts: Receipts, *, debounce: float = 0.2) -> None:
        self.destination = destination
        self.receipts = receipts
        limits = destination.batch_limits

        def batcher(kind: str, bulk: Callable[[list[Any]], Sequence[ItemResult]]) -> Batcher[Any, ItemResult]:
            return Batcher(
                lambda items: split_on_permanent(bulk, items),
                max_size=int(limits.get(kind, 1)),
                max_wait=debounce if limits.get(kind, 1) > 1 else 0.0,
                name=f"{destination.instance_id}-{kind}",
            )

        self._contacts = batcher("contact", destination.upsert_contacts)
        self._companies = batcher("company", destination.upsert_companies)
        self._deals = batcher("deal", destination.upsert_deals)
        self._activities = batcher("activity", destination.add_activities)

    def close(self) -> None:
        for batcher in (self._contacts, self._companies, self._deals, self._activities):
            batcher.close()
        self.destination.close()

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
            contact_id = _unwrap(
                self._contacts.call(ContactWrite(contact, known_id=self.receipts.get("contact", identity)))
            )
            self.receipts.put("contact", identity, contact_id)
            ids["contact"] = contact_id
        if "upsert_company" in actions and bundle.companies:
            company = bundle.companies[0]
            identity = company_identity(company)
            company_id = _unwrap(
                self._companies.call(
                    CompanyWrite(
                        company, known_id=self.receipts.get("company", identity), contact_id=contact_id
                    )
                )
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
            deal_id = _unwrap(
                self._deals.call(
                    DealWrite(
                        deal,
                        known_id=self.receipts.get("deal", identity),
                        contact_id=contact_id,
                        company_id=company_id,
                    )
                )
            )
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
                activity_id = _unwrap(
                    self._activities.call(ActivityWrite(activity, contact_id=contact_id, deal_id=deal_id))
                )
                self.receipts.put("activity", identity, activity_id)
                activity_ids.append(activity_id)
            ids["activities"] = activity_ids
        if "add_tags" in actions and tags and contact_id is not None:
            self.destination.add_tags(contact_id, sorted(tags))
        return ids
