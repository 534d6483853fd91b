"""The local CRM: CRM Hub's default destination (`type: local`), a SQLite database on disk."""

from hub.destinations.local.destination import LocalCrm, LocalCrmSettings

__all__ = ["LocalCrm", "LocalCrmSettings"]
