"""QuickBooks Online source connector (webhook-then-fetch)."""

from connectors.quickbooks.connector import QuickBooksConnector, QuickBooksSettings

__all__ = ["QuickBooksConnector", "QuickBooksSettings"]
