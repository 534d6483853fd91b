"""Connector plugin API: base classes, request/event types, signature helpers."""

from hub.connector import signatures
from hub.connector.base import (
    Connector,
    ConnectorSettings,
    HandshakeResponse,
    PollingConnector,
    PollingSettings,
    PollResult,
    RawRequest,
    SourceEvent,
    WebhookConnector,
    WebhookSettings,
    event_slug,
)

__all__ = [
    "Connector",
    "ConnectorSettings",
    "HandshakeResponse",
    "PollResult",
    "PollingConnector",
    "PollingSettings",
    "RawRequest",
    "SourceEvent",
    "WebhookConnector",
    "WebhookSettings",
    "event_slug",
    "signatures",
]
