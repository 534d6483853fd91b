"""ActiveCampaign API v3 destination (`type: activecampaign`), with a fake of the API for tests."""

from hub.destinations.activecampaign.destination import ActiveCampaignDestination
from hub.destinations.activecampaign.settings import ActiveCampaignSettings

__all__ = ["ActiveCampaignDestination", "ActiveCampaignSettings"]
