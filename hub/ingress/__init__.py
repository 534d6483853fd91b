"""HTTP ingress: signed webhooks in, stored and queued before the 200."""

from hub.ingress.app import create_app

__all__ = ["create_app"]
