"""Calendly source connector: signed `invitee.created` / `invitee.canceled` webhooks."""

from connectors.calendly.connector import CalendlyConnector, CalendlySettings

__all__ = ["CalendlyConnector", "CalendlySettings"]
