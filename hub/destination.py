"""The destination plugin API: what a CRM adapter implements (entry point group `hub.destinations`).

A destination writes canonical objects and returns the CRM's own ids. Adapters never
retry or sleep: they raise `TransientDeliveryError` / `PermanentDeliveryError` /
`AuthDeliveryError` and the delivery layer decides what happens next.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from hub.canonical import Activity, Company, Contact, Deal

__all__ = ["Destination", "DestinationSettings"]


class DestinationSettings(BaseModel):
    """Base of every destination's settings: frozen, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Destination(ABC):
    """Base of every CRM adapter. One instance per configured destination per process."""

    #: Destination type name, as used in config (`type: local`).
    name: ClassVar[str]
    settings_model: ClassVar[type[DestinationSettings]] = DestinationSettings

    def __init__(self, settings: Any, *, instance_id: str | None = None) -> None:
        self.settings = settings
        self.instance_id = instance_id or self.name

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; called when the worker shuts down."""

    def check(self) -> list[str]:
        """Problems that would stop delivery (missing properties, bad credentials)."""
        return []

    @abstractmethod
    def upsert_contact(self, contact: Contact) -> str:
        """Create or update the contact (by email, then phone, then external id); its CRM id."""

    @abstractmethod
    def upsert_company(self, company: Company) -> str:
        """Create or update the company; its CRM id."""

    @abstractmethod
    def upsert_deal(self, deal: Deal, *, contact_id: str | None, company_id: str | None) -> str:
        """Create or update the deal (deduplicated by its source external id); its CRM id."""

    @abstractmethod
    def add_activity(self, activity: Activity, *, contact_id: str | None, deal_id: str | None) -> str:
        """Record a timeline entry (deduplicated by its source external id); its CRM id."""

    @abstractmethod
    def add_tags(self, contact_id: str, tags: Iterable[str]) -> None:
        """Add tags to a contact (a union: existing tags stay)."""

    def link_contact_company(self, contact_id: str, company_id: str) -> None:  # noqa: B027
        """Associate a contact with a company, where the CRM has associations."""
