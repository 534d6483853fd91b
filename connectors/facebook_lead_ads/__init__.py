"""Meta (Facebook/Instagram) Lead Ads source connector: `leadgen` webhooks, then fetch (ads)."""

from connectors.facebook_lead_ads.connector import (
    FacebookLeadAdsConnector,
    FacebookLeadAdsSettings,
)

__all__ = ["FacebookLeadAdsConnector", "FacebookLeadAdsSettings"]
