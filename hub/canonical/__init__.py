"""The canonical model and its normalisers."""

from hub.canonical.models import (
    Activity,
    Address,
    Bundle,
    Company,
    Contact,
    Deal,
    DealStatus,
    LeadSource,
    LifecycleStage,
    LineItem,
    MarketingConsent,
    Scalar,
)

__all__ = [
    "Activity",
    "Address",
    "Bundle",
    "Company",
    "Contact",
    "Deal",
    "DealStatus",
    "LeadSource",
    "LifecycleStage",
    "LineItem",
    "MarketingConsent",
    "Scalar",
]
