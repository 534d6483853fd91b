"""Plugin discovery through entry points: connectors, destinations and transforms.

Entry points are read once per process. A plugin that fails to import, or does not
follow the plugin API, is reported (`PluginRegistry.broken`) and skipped, never fatal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

from hub.connector.base import Connector, ConnectorSettings
from hub.errors import PluginError

__all__ = [
    "CONNECTOR_GROUP",
    "DESTINATION_GROUP",
    "TRANSFORM_GROUP",
    "PluginRegistry",
    "connectors",
    "destinations",
    "load_transform_plugins",
]

log = logging.getLogger(__name__)

CONNECTOR_GROUP = "hub.connectors"
DESTINATION_GROUP = "hub.destinations"
TRANSFORM_GROUP = "hub.transforms"

T = TypeVar("T")


@dataclass(frozen=True)
class BrokenPlugin:
    name: str
    target: str
    reason: str


@dataclass
class PluginRegistry(Generic[T]):
    """The plugins of one entry point group: loaded ones by name, and broken ones."""

    group: str
    plugins: dict[str, type[T]] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    broken: list[BrokenPlugin] = field(default_factory=list)

    def get(self, name: str) -> type[T]:
        """The plugin class registered as `name`; `PluginError` listing the known ones."""
        try:
            return self.plugins[name]
        except KeyError:
            known = ", ".join(sorted(self.plugins)) or "none"
            reason = next((b.reason for b in self.broken if b.name == name), None)
            if reason:
                raise PluginError(f"plugin {name!r} ({self.group}) is broken: {reason}") from None
            raise PluginError(f"unknown {self.group} plugin {name!r}; installed: {known}") from None


def _check_connector(cls: Any) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise PluginError("is not a subclass of hub.Connector")
    if not isinstance(getattr(cls, "name", None), str):
        raise PluginError("has no `name`")
    settings = getattr(cls, "settings_model", None)
    if not (isinstance(settings, type) and issubclass(settings, ConnectorSettings)):
        raise PluginError("settings_model is not a hub.ConnectorSettings subclass")
    if getattr(cls, "__abstractmethods__", None):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise PluginError(f"does not implement {missing}")


def _check_destination(cls: Any) -> None:
    from hub.destination import Destination

    if not (isinstance(cls, type) and issubclass(cls, Destination)):
        raise PluginError("is not a subclass of hub.destination.Destination")
    if getattr(cls, "__abstractmethods__", None):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise PluginError(f"does not implement {missing}")


def _load(group: str, check: Any) -> PluginRegistry[Any]:
    registry: PluginRegistry[Any] = PluginRegistry(group)
    eps: list[EntryPoint] = sorted(entry_points(group=group), key=lambda ep: ep.name)
    for ep in eps:
        try:
            cls = ep.load()
            check(cls)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            log.warning("skipping broken plugin %s = %s (%s)", ep.name, ep.value, reason)
            log.debug("plugin load failure", exc_info=True)
            registry.broken.append(BrokenPlugin(ep.name, ep.value, reason))
            continue
        if ep.name in registry.plugins:
            registry.broken.append(BrokenPlugin(ep.name, ep.value, "duplicate name; first one kept"))
            continue
        registry.plugins[ep.name] = cls
        registry.origins[ep.name] = ep.value
    return registry


@cache
def connectors() -> PluginRegistry[Connector[Any]]:
    """Every installed connector plugin (`hub.connectors`)."""
    return _load(CONNECTOR_GROUP, _check_connector)


@cache
def destinations() -> PluginRegistry[Any]:
    """Every installed destination plugin (`hub.destinations`)."""
    return _load(DESTINATION_GROUP, _check_destination)


@cache
def load_transform_plugins() -> list[BrokenPlugin]:
    """Import `hub.transforms` entry points (each registers its transforms on import)."""
    broken: list[BrokenPlugin] = []
    for ep in entry_points(group=TRANSFORM_GROUP):
        try:
            ep.load()
        except Exception as exc:
            log.warning("skipping broken transform plugin %s (%s)", ep.name, exc)
            broken.append(BrokenPlugin(ep.name, ep.value, f"{type(exc).__name__}: {exc}"))
    return broken
