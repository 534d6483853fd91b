"""QuickBooks Online source connectors: webhook-then-fetch, and polled change data capture."""

from connectors.quickbooks.cdc import QuickBooksCdcConnector, QuickBooksCdcSettings
from connectors.quickbooks.connector import QuickBooksConnector, QuickBooksSettings

__all__ = [
    "QuickBooksCdcConnector",
    "QuickBooksCdcSettings",
    "QuickBooksConnector",
    "QuickBooksSettings",
]
