"""Pipedrive destination (`type: pipedrive`): API v2 (notes v1), find-then-write, no bulk."""

from hub.destinations.pipedrive.destination import PipedriveDestination
from hub.destinations.pipedrive.settings import PipedriveSettings

__all__ = ["PipedriveDestination", "PipedriveSettings"]
