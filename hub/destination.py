"""The destination plugin API: what a CRM adapter implements (entry point group `hub.destinations`).

A destination writes canonical objects and returns the CRM's own ids. It is handed an
`httpx.Client` by the delivery layer (rate-governed, with the CRM's base URL); adapters
never retry, sleep or rate-limit: they raise `TransientDeliveryError(retry_after)` /
`PermanentDeliveryError` / `AuthDeliveryError` (one classification table per adapter) and
the delivery layer decides what happens next.

Each write carries the CRM id the hub already knows for that object (`known_id`, from the
hub's write receipts): update that record instead of looking it up; if the CRM says it no
longer exists, fall back to the lookup. Bulk methods return one result per input, in order:
`Written(id)` or the `DeliveryError` for that input alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from hub.canonical import Activity, Company, Contact, Deal
from hub.errors import DeliveryError

__all__ = [
    "ActivityWrite",
    "CompanyWrite",
    "ContactWrite",
    "DealWrite",
    "Destination",
    "DestinationSettings",
    "ItemResult",
    "Written",
]


class DestinationSettings(BaseModel):
    """Base of every destination's settings: frozen, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True)
class Written:
    """A successful write: the CRM's id for the object."""

    id: str


ItemResult = Written | DeliveryError


@dataclass(frozen=True)
class ContactWrite:
    contact: Contact
    known_id: str | None = None


@dataclass(frozen=True)
class CompanyWrite:
    company: Company
    known_id: str | None = None
    contact_id: str | None = None


@dataclass(frozen=True)
class DealWrite:
    deal: Deal
    known_id: str | None = None
    contact_id: str | None = None
    company_id: str | None = None


@dataclass(frozen=True)
class ActivityWrite:
    activity: Activity
    known_id: str | None = None
    contact_id: str | None = None
    deal_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def _each(fn: Any, items: Sequence[Any]) -> list[ItemResult]:
    results: list[ItemResult] = []
    for item in items:
        try:
            results.append(Written(fn(item)))
        except DeliveryError as exc:
            results.append(exc)
    return results


class Destination(ABC):
    """Base of every CRM adapter. One instance per configured destination per worker thread."""

    #: Destination type name, as used in config (`type: hubspot`).
    name: ClassVar[str]
    settings_model: ClassVar[type[DestinationSettings]] = DestinationSettings
    #: Records per bulk request by object kind (`contact`, `company`, `deal`, `activity`);
    #: a kind not listed has no bulk endpoint (1 per request).
    batch_limits: ClassVar[Mapping[str, int]] = {}
    #: The CRM's documented request budget per account: (requests, seconds); None = none.
    rate_limit: ClassVar[tuple[int, float] | None] = None
    #: True when every single-object write is atomic in the CRM itself (a keyed upsert or a
    #: transaction); False when it is find-then-create, so the delivery layer must hold a
    #: lock per object identity while it runs.
    atomic_writes: ClassVar[bool] = False

    def __init__(self, settings: Any, *, instance_id: str | None = None, client: Any = None) -> None:
        self.settings = settings
        self.instance_id = instance_id or self.name
        #: The injected `httpx.Client` (rate-governed by the delivery layer), for HTTP adapters.
        self.client = client

    # --- what the delivery layer asks before writing ----------------------------------

    def base_url(self) -> str | None:
        """The CRM API's base URL for the injected client (None: not an HTTP adapter)."""
        return None

    def account_key(self) -> str:
        """Identifies the CRM account whose request budget is shared by every worker
        (e.g. a hash of base URL and credential); never the credential itself."""
        return self.instance_id

    def request_budget(self) -> tuple[int, float] | None:
        """(requests, seconds) to pace this account at: settings may lower the class default."""
        return self.rate_limit

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; called when the worker shuts down."""

    def check(self) -> list[str]:
        """Problems that would stop delivery (missing properties, pipelines, stages, bad
        credentials), found through the CRM's own metadata endpoints."""
        return []

    # --- one object at a time ---------------------------------------------------------

    @abstractmethod
    def upsert_contact(self, contact: Contact, *, known_id: str | None = None) -> str:
        """Create or update the contact (by email, then phone, then external id); its CRM id."""

    @abstractmethod
    def upsert_company(self, company: Company, *, known_id: str | None = None) -> str:
        """Create or update the company (by domain, then name); its CRM id."""

    @abstractmethod
    def upsert_deal(self, deal: Deal, *, contact_id: str | None, company_id: str | None,
                    known_id: str | None = None) -> str:
        """Create or update the deal (deduplicated by its source external id); its CRM id."""

    @abstractmethod
    def add_activity(self, activity: Activity, *, contact_id: str | None, deal_id: str | None,
                     known_id: str | None = None) -> str:
        """Record a timeline entry (deduplicated by its source external id); its CRM id."""

    @abstractmethod
    def add_tags(self, contact_id: str, tags: Iterable[str]) -> None:
        """Add tags to a contact (a union: existing tags stay)."""

    def link_contact_company(self, contact_id: str, company_id: str) -> None:  # noqa: B027
        """Associate a contact with a company, where the CRM has associations."""

    # --- bulk: override where the CRM has bulk endpoints ------------------------------

    def upsert_contacts(self, writes: Sequence[ContactWrite]) -> list[ItemResult]:
        return _each(lambda w: self.upsert_contact(w.contact, known_id=w.known_id), writes)

    def upsert_companies(self, writes: Sequence[CompanyWrite]) -> list[ItemResult]:
        return _each(lambda w: self.upsert_company(w.company, known_id=w.known_id), writes)

    def upsert_deals(self, writes: Sequence[DealWrite]) -> list[ItemResult]:
        return _each(lambda w: self.upsert_deal(w.deal, contact_id=w.contact_id, company_id=w.company_id,
                                                known_id=w.known_id), writes)

    def add_activities(self, writes: Sequence[ActivityWrite]) -> list[ItemResult]:
        return _each(lambda w: self.add_activity(w.activity, contact_id=w.contact_id, deal_id=w.deal_id,
                                                 known_id=w.known_id), writes)
