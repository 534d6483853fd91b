"""Typeform source connector: signed `form_response` webhooks (forms category)."""

from connectors.typeform.connector import TypeformConnector, TypeformSettings

__all__ = ["TypeformConnector", "TypeformSettings"]
