"""`LocalCrm`: the built-in destination, with the merge policy a real CRM would apply.

Merge policy, the same for every record type:

- a non-empty new value wins; an empty one never erases what is stored;
- `address`, `lead_source` and `line_items` are replaced whole (never mixed field by field);
- tags are a union; `custom_fields` and `external_ids` are merged key by key;
- `lifecycle_stage` only moves forward (subscriber < lead < mql < sql < opportunity <
  customer); `other` never replaces a known stage, a known stage replaces `other`;
- `marketing_consent: unknown` never replaces opted_in / opted_out;
- a deal's `open` status never replaces `won` / `lost` (a late, out-of-order redelivery).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Final

from pydantic import Field

from hub.canonical import Activity, Company, Contact, Deal, DealStatus, LifecycleStage, MarketingConsent
from hub.destination import Destination, DestinationSettings
from hub.destinations.local.store import CrmStore, Identity, Row, Table
from hub.errors import PermanentDeliveryError, TransientDeliveryError

__all__ = ["LocalCrm", "LocalCrmSettings"]

log = logging.getLogger(__name__)

#: Forward order of lifecycle stages; `other` is outside it.
_STAGE_ORDER: Final = (
    LifecycleStage.subscriber,
    LifecycleStage.lead,
    LifecycleStage.mql,
    LifecycleStage.sql,
    LifecycleStage.opportunity,
    LifecycleStage.customer,
)
_CLOSED: Final = (DealStatus.won.value, DealStatus.lost.value)
_SINGULAR: Final[dict[Table, str]] = {
    "contacts": "contact",
    "companies": "company",
    "deals": "deal",
    "activities": "activity",
}


class LocalCrmSettings(DestinationSettings):
    """`type: local`: a SQLite file on this machine; nothing to sign up for."""

    path: str = Field(
        ".crmhub/crm.db",
        description="The SQLite database file; relative paths resolve against the current directory.",
    )


# -- merge rules: (stored, new) -> kept -----------------------------------------------------

Rule = Callable[[Any, Any], Any]
Merge = Callable[[Row, Row], Row]


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _compact(value: Any) -> Any:
    """A JSON object without its empty fields; None when nothing is left."""
    if isinstance(value, dict):
        kept = {k: v for k, v in value.items() if not _blank(v)}
        return kept or None
    return value


def _newer(old: Any, new: Any) -> Any:
    new = _compact(new)
    return old if _blank(new) else new


def _newer_items(old: Any, new: Any) -> list[Any]:
    return list(new or old or [])


def _merged_map(old: Any, new: Any) -> dict[str, Any]:
    return {**(old or {}), **{k: v for k, v in (new or {}).items() if not _blank(v)}}


def _union(old: Any, new: Any) -> list[str]:
    return sorted({*(old or ()), *(new or ())})


def _forward_stage(old: str | None, new: str | None) -> str | None:
    if new is None or old == new:
        return old
    if old is None or old == LifecycleStage.other:
        return new
    if new == LifecycleStage.other:
        return old
    return new if _STAGE_ORDER.index(LifecycleStage(new)) > _STAGE_ORDER.index(LifecycleStage(old)) else old


def _known_consent(old: str | None, new: str | None) -> str:
    if new is None or (new == MarketingConsent.unknown and old is not None):
        return old or MarketingConsent.unknown.value
    return new


def _closed_status(old: str | None, new: str | None) -> str:
    if new is None or (new == DealStatus.open and old in _CLOSED):
        return old or DealStatus.open.value
    return new


_CONTACT_RULES: Final[dict[str, Rule]] = {
    **dict.fromkeys(
        ("email", "phone", "first_name", "last_name", "company", "job_title", "address", "lead_source"),
        _newer,
    ),
    "tags": _union,
    "custom_fields": _merged_map,
    "external_ids": _merged_map,
    "lifecycle_stage": _forward_stage,
    "marketing_consent": _known_consent,
}
_COMPANY_RULES: Final[dict[str, Rule]] = {
    **dict.fromkeys(("name", "domain", "phone", "address"), _newer),
    "custom_fields": _merged_map,
    "external_ids": _merged_map,
}
_DEAL_RULES: Final[dict[str, Rule]] = {
    **dict.fromkeys(("title", "stage", "pipeline", "close_date", "contact_id", "company_id"), _newer),
    "line_items": _newer_items,
    "status": _closed_status,
    "custom_fields": _merged_map,
    "external_ids": _merged_map,
}


def _merge(rules: Mapping[str, Rule], old: Row, new: Row) -> Row:
    return {field: rule(old.get(field), new.get(field)) for field, rule in rules.items()}


def _merge_contact(old: Row, new: Row) -> Row:
    return _merge(_CONTACT_RULES, old, new)


def _merge_company(old: Row, new: Row) -> Row:
    return _merge(_COMPANY_RULES, old, new)


def _merge_deal(old: Row, new: Row) -> Row:
    merged = _merge(_DEAL_RULES, old, new)
    # Amount and currency travel together: a currency alone never relabels a stored amount.
    source = new if new.get("amount") is not None else old
    merged["amount"] = source.get("amount")
    merged["currency"] = source.get("currency") or new.get("currency")
    return merged


def _external(external_ids: Mapping[str, str]) -> list[Identity]:
    return [("external", system, value) for system, value in sorted(external_ids.items())]


class LocalCrm(Destination):
    """The local CRM. Safe to share between threads, and between processes on one file.

    Example::

        crm = LocalCrm(LocalCrmSettings(path="/tmp/crm.db"))
        contact_id = crm.upsert_contact(Contact(email="ada@example.com", tags={"vip"}))
    """

    name: ClassVar[str] = "local"
    atomic_writes = True  # every upsert is one SQLite BEGIN IMMEDIATE transaction
    settings_model: ClassVar[type[DestinationSettings]] = LocalCrmSettings

    def __init__(
        self, settings: LocalCrmSettings | None = None, *, instance_id: str | None = None, client: Any = None
    ) -> None:
        settings = settings or LocalCrmSettings()
        super().__init__(settings, instance_id=instance_id, client=client)
        self.path = Path(settings.path).expanduser().resolve()
        self._store: CrmStore | None = None
        self._pid: int | None = None

    @property
    def store(self) -> CrmStore:
        """The open store; opened on first use, and again in a forked child."""
        if self._store is None or self._pid != os.getpid():
            self._store = CrmStore(self.path)
            self._pid = os.getpid()
        return self._store

    def close(self) -> None:
        if self._store is not None and self._pid == os.getpid():
            self._store.close()
        self._store = None

    def check(self) -> list[str]:
        try:
            self.store.counts()
        except (OSError, sqlite3.Error) as exc:
            return [f"cannot open the local CRM database {self.path}: {exc}"]
        return []

    @contextmanager
    def _writing(self, what: str) -> Iterator[CrmStore]:
        """One write transaction; SQLite errors become the delivery layer's errors."""
        try:
            with self.store.transaction() as store:
                yield store
        except sqlite3.OperationalError as exc:  # locked past busy_timeout, disk full, I/O
            raise TransientDeliveryError(f"local CRM {self.path}: cannot write the {what}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise PermanentDeliveryError(f"local CRM {self.path}: cannot write the {what}: {exc}") from exc

    def _require(self, store: CrmStore, table: Table, record_id: str | None) -> int | None:
        if record_id is None:
            return None
        if record_id.isdecimal() and store.exists(table, int(record_id)):
            return int(record_id)
        raise PermanentDeliveryError(f"local CRM {self.path}: no {_SINGULAR[table]} with id {record_id!r}")

    def _upsert(
        self,
        store: CrmStore,
        table: Table,
        merge: Merge,
        found: int | None,
        new: Row,
        identities: list[Identity],
    ) -> int:
        """Insert or merge one record, then record every identity it arrived with."""
        if found is None:
            record_id = store.insert(table, merge({}, new))
            log.debug("local crm %s: created %s %d", self.instance_id, table, record_id)
        else:
            record_id = found
            old = store.get(table, found) or {}
            merged = merge(old, new)
            if any(old.get(field) != value for field, value in merged.items()):
                store.update(table, found, merged)
                log.debug("local crm %s: updated %s %d", self.instance_id, table, found)
        store.claim(table, record_id, identities)
        return record_id

    def upsert_contact(self, contact: Contact, *, known_id: str | None = None) -> str:
        new = contact.model_dump(mode="json")
        identities: list[Identity] = [
            *([("email", "", contact.email)] if contact.email else []),
            *([("phone", "", contact.phone)] if contact.phone else []),
            *_external(contact.external_ids),
        ]
        with self._writing("contact") as store:
            found = store.find("contacts", identities)
            return str(self._upsert(store, "contacts", _merge_contact, found, new, identities))

    def upsert_company(self, company: Company, *, known_id: str | None = None) -> str:
        new = company.model_dump(mode="json")
        by_domain = [("domain", "", company.domain)] if company.domain else []
        by_name = [("name", "", company.name.casefold())] if company.name else []
        with self._writing("company") as store:
            found = store.find("companies", [*by_domain, *_external(company.external_ids)])
            if found is None and by_name:
                found = store.find("companies", by_name)
                stored = store.get("companies", found) if found is not None else None
                # Same name, different domains: two companies (Acme Inc vs Acme GmbH), not one.
                if stored and stored["domain"] and company.domain and stored["domain"] != company.domain:
                    found = None
            identities = [*by_domain, *_external(company.external_ids), *by_name]
            return str(self._upsert(store, "companies", _merge_company, found, new, identities))

    def upsert_deal(
        self, deal: Deal, *, contact_id: str | None, company_id: str | None, known_id: str | None = None
    ) -> str:
        new = deal.model_dump(mode="json")
        identities = _external(deal.external_ids)
        with self._writing("deal") as store:
            new["contact_id"] = self._require(store, "contacts", contact_id)
            new["company_id"] = self._require(store, "companies", company_id)
            if identities:
                found = store.find("deals", identities)
            else:
                found = store.find_where("deals", contact_id=new["contact_id"], title=deal.title)
            record_id = self._upsert(store, "deals", _merge_deal, found, new, identities)
            if new["contact_id"] is not None and new["company_id"] is not None:
                store.link_contact_company(new["contact_id"], new["company_id"])
            return str(record_id)

    def add_activity(
        self, activity: Activity, *, contact_id: str | None, deal_id: str | None, known_id: str | None = None
    ) -> str:
        row = activity.model_dump(mode="json")
        identities = _external(activity.external_ids)
        with self._writing("activity") as store:
            row["contact_id"] = self._require(store, "contacts", contact_id)
            row["deal_id"] = self._require(store, "deals", deal_id)
            if identities:
                found = store.find("activities", identities)
            else:
                found = store.find_where(
                    "activities",
                    contact_id=row["contact_id"],
                    kind=row["kind"],
                    occurred_at=row["occurred_at"],
                    subject=row["subject"],
                )
            if found is not None:  # a redelivery: the timeline already has it
                return str(found)
            record_id = store.insert("activities", row)
            store.claim("activities", record_id, identities)
            return str(record_id)

    def add_tags(self, contact_id: str, tags: Iterable[str]) -> None:
        with self._writing("tags") as store:
            record_id = self._require(store, "contacts", contact_id)
            assert record_id is not None
            stored = (store.get("contacts", record_id) or {}).get("tags") or []
            merged = _union(stored, (t.strip() for t in tags if t and t.strip()))
            if merged != stored:
                store.update("contacts", record_id, {"tags": merged})

    def link_contact_company(self, contact_id: str, company_id: str) -> None:
        with self._writing("contact-company link") as store:
            contact = self._require(store, "contacts", contact_id)
            company = self._require(store, "companies", company_id)
            assert contact is not None and company is not None
            store.link_contact_company(contact, company)

    # -- read API (tests, `crmhub crm`) ------------------------------------------------------

    def contacts(self, search: str | None = None) -> list[dict[str, Any]]:
        """Contacts as plain dicts, oldest first; `search` matches name, email, phone, company, tags."""
        return self.store.contacts(search)

    def deals(self, search: str | None = None) -> list[dict[str, Any]]:
        """Deals as plain dicts; `search` matches title, stage, pipeline, status, contact, company."""
        return self.store.deals(search)

    def activities(self, search: str | None = None) -> list[dict[str, Any]]:
        """Activities as plain dicts in time order; `search` matches kind, subject, body, contact."""
        return self.store.activities(search)

    def counts(self) -> dict[str, int]:
        """Number of contacts, companies, deals and activities."""
        return self.store.counts()
