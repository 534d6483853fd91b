"""HubSpot CRM destination (`type: hubspot`): contacts, companies, deals, notes, tags, associations.

`FakeHubSpot` (in `hub.destinations.hubspot.fake`) plays the API in tests and benchmarks.
"""

from hub.destinations.hubspot.destination import HubSpotDestination
from hub.destinations.hubspot.settings import HubSpotSettings

__all__ = ["HubSpotDestination", "HubSpotSettings"]
