"""Shopify source connector: signed order and customer webhooks."""

from connectors.shopify.connector import ShopifyConnector, ShopifySettings

__all__ = ["ShopifyConnector", "ShopifySettings"]
