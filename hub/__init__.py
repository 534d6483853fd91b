"""CRM Hub: the plugin author's API, in one place.

Connector authors import only from here::

    from hub import WebhookConnector, WebhookSettings, RawRequest, SourceEvent, SignatureError
"""

from hub.canonical import (
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
)
from hub.connector import (
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
    signatures,
)
from hub.destination import (
    ActivityWrite,
    CompanyWrite,
    ContactWrite,
    DealWrite,
    Destination,
    DestinationSettings,
    ItemResult,
    Written,
)
from hub.errors import (
    AuthDeliveryError,
    ConfigError,
    DeliveryError,
    HubError,
    MappingError,
    PayloadError,
    PermanentDeliveryError,
    PluginError,
    SignatureError,
    TransientDeliveryError,
)

__version__ = "0.1.0"

__all__ = [
    # canonical model
    "Activity",
    # destination API
    "ActivityWrite",
    "Address",
    "AuthDeliveryError",
    "Bundle",
    "Company",
    "CompanyWrite",
    # errors
    "ConfigError",
    # connector API
    "Connector",
    "ConnectorSettings",
    "Contact",
    "ContactWrite",
    "Deal",
    "DealStatus",
    "DealWrite",
    "DeliveryError",
    "Destination",
    "DestinationSettings",
    "HandshakeResponse",
    "HubError",
    "ItemResult",
    "LeadSource",
    "LifecycleStage",
    "LineItem",
    "MappingError",
    "MarketingConsent",
    "PayloadError",
    "PermanentDeliveryError",
    "PluginError",
    "PollResult",
    "PollingConnector",
    "PollingSettings",
    "RawRequest",
    "SignatureError",
    "SourceEvent",
    "TransientDeliveryError",
    "WebhookConnector",
    "WebhookSettings",
    "Written",
    "event_slug",
    "signatures",
]
