"""The connector plugin API: what a source connector implements.

A connector is a class registered under the entry point group `hub.connectors`. The hub
builds one instance per configured connector instance, with its validated settings.

- `WebhookConnector`: `verify` the raw request (raise `SignatureError`), `parse` it into
  source events; optionally `fetch` each event's full object through an injected
  `httpx.AsyncClient` (webhook-then-fetch) and answer a provider `handshake`.
- `PollingConnector`: `poll` from a cursor, return events and the next cursor.

Connectors never retry, sleep or rate-limit: the delivery layer does that.
"""

from __future__ import annotations

import inspect
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

from hub.errors import PayloadError

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
]


def event_slug(event_type: str) -> str:
    """A file-name-safe form of an event type: `orders/create` -> `orders_create`."""
    return event_type.replace("/", "_").replace(".", "_")


@dataclass(frozen=True)
class RawRequest:
    """An HTTP request exactly as received: verify signatures over `body`, never a re-dump."""

    method: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    path: str = "/"
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        # Header names are case-insensitive: store them lower-cased once.
        object.__setattr__(self, "headers", {k.lower(): v for k, v in self.headers.items()})

    def header(self, name: str) -> str | None:
        """The header's value, looked up case-insensitively."""
        return self.headers.get(name.lower())

    @property
    def content_type(self) -> str:
        return (self.header("content-type") or "").split(";", 1)[0].strip().lower()

    def json(self) -> Any:
        """The body parsed as JSON; raise `PayloadError` (400/415) if it is not JSON."""
        if self.content_type and "json" not in self.content_type:
            raise PayloadError(f"expected a JSON body, got content type {self.content_type!r}", status=415)
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PayloadError(f"body is not valid JSON: {exc}") from None
        except RecursionError:
            raise PayloadError("body is nested too deeply") from None
        except ValueError as exc:  # e.g. an integer over Python's digit limit
            raise PayloadError(f"body is not usable JSON: {exc}") from None


@dataclass(frozen=True)
class SourceEvent:
    """One event from a source: its type (mapping key), the source's own id, and its data."""

    type: str
    id: str
    occurred_at: datetime
    data: Mapping[str, Any]


@dataclass(frozen=True)
class HandshakeResponse:
    """A reply to a provider's verification handshake (e.g. Meta's `hub.challenge`)."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"


CursorT = TypeVar("CursorT")


@dataclass(frozen=True)
class PollResult(Generic[CursorT]):
    """What one poll found, and where the next poll starts. `more` asks for another poll now."""

    events: list[SourceEvent]
    next_cursor: CursorT
    more: bool = False


def _as_secret_list(value: Any) -> Any:
    if isinstance(value, str | SecretStr):
        return [value]
    return value


SecretList = Annotated[list[SecretStr], BeforeValidator(_as_secret_list)]


class ConnectorSettings(BaseModel):
    """Base of every connector's settings: frozen, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_base_url: str | None = Field(
        default=None, description="Base URL of the provider's API (point it at a stub in tests)."
    )


class WebhookSettings(ConnectorSettings):
    """Settings of a signed-webhook connector. `secret` may list several during rotation."""

    secret: SecretList = Field(
        min_length=1, description="Signing secret(s): a string, or a list during rotation."
    )
    timestamp_tolerance: float = Field(
        default=300, gt=0, description="Seconds a signed timestamp may be old (where signed)."
    )

    def secret_bytes(self) -> list[bytes]:
        """Every configured secret as UTF-8 bytes, for HMAC keys."""
        return [s.get_secret_value().encode() for s in self.secret]


class PollingSettings(ConnectorSettings):
    """Settings of a polling connector."""

    poll_interval: float = Field(default=300, gt=0, description="Seconds between polls.")


SettingsT = TypeVar("SettingsT", bound=ConnectorSettings)


class Connector(ABC, Generic[SettingsT]):
    """Base of every source connector. Subclasses set the class attributes below."""

    #: Connector type name, as used in config (`type: shopify`) and in `mappings/<name>/`.
    name: ClassVar[str]
    #: One of ecommerce, forms, calendars, accounting, ads, or another category.
    category: ClassVar[str] = "other"
    #: Event types this connector emits; each has a mapping spec `mappings/<name>/*.yaml`.
    events: ClassVar[tuple[str, ...]] = ()
    #: The pydantic settings model for one instance.
    settings_model: ClassVar[type[ConnectorSettings]] = ConnectorSettings

    def __init__(self, settings: SettingsT, *, instance_id: str | None = None) -> None:
        self.settings = settings
        self.instance_id = instance_id or self.name

    @classmethod
    def package_dir(cls) -> Path:
        return Path(inspect.getfile(cls)).parent

    @classmethod
    def mapping_dir(cls) -> Traversable:
        """Where the shipped mapping specs live: the top-level `mappings` package for
        built-ins, a `mappings/` folder beside the connector module for plugins."""
        local = cls.package_dir() / "mappings"
        if local.is_dir():
            return local
        return resources.files("mappings") / cls.name

    @classmethod
    def fixtures_dir(cls) -> Path:
        """Sample payloads, `fixtures/<event slug>/<case>.json`."""
        return cls.package_dir() / "fixtures"


class WebhookConnector(Connector[SettingsT]):
    """A connector fed by signed HTTP deliveries."""

    #: True when `parse` yields ids only and `fetch` must get the full object.
    fetches: ClassVar[bool] = False
    #: The header that carries the signature (the conformance suite strips it).
    signature_header: ClassVar[str] = ""
    #: True when the scheme signs a timestamp, so stale requests must be rejected.
    signs_timestamp: ClassVar[bool] = False

    @classmethod
    def sample_request(
        cls, event_type: str, data: Mapping[str, Any], secret: str, *, at: datetime
    ) -> RawRequest:
        """The signed request a genuine sender would POST for this mapping input.

        For a fetching connector, `data` is the fetched object and the request is the
        notification that refers to it. Used by `hub.testing` and `crmhub demo`.
        """
        raise NotImplementedError(f"{cls.__name__} does not build sample requests")

    def handshake(self, request: RawRequest) -> HandshakeResponse | None:
        """Answer a provider's verification handshake, or None if this is not one.

        Called before `verify` for every request. Raise `SignatureError` for a
        handshake with a wrong token.
        """
        return None

    @abstractmethod
    def verify(self, request: RawRequest) -> None:
        """Raise `SignatureError` unless the request is authentic (and fresh, where the
        scheme signs a timestamp: compare with `request.received_at`)."""

    @abstractmethod
    def parse(self, request: RawRequest) -> list[SourceEvent]:
        """Turn a verified request into source events; raise `PayloadError` if unparseable.

        An empty list means "nothing to do" (e.g. a ping); the hub still answers 200.
        """

    @classmethod
    def stub_routes(
        cls, samples: list[tuple[str, Mapping[str, Any]]], settings: Mapping[str, Any]
    ) -> dict[str, Any]:
        """For a fetching connector: the `GET` paths (below `api_base_url`, without the query)
        and JSON bodies a stub of the provider API must serve so `fetch` finds these samples.

        `settings` are the instance's raw settings. Used by `crmhub demo` and the tests.
        """
        return {}

    async def fetch(self, event: SourceEvent, client: Any) -> SourceEvent:
        """Get the full object an id-only event refers to (webhook-then-fetch).

        `client` is an `httpx.AsyncClient` owned by the caller. Returns the event whose
        `type` is the fetched object's mapping key and whose `data` is the API's response.
        """
        raise NotImplementedError(f"{type(self).__name__} does not fetch")


class PollingConnector(Connector[SettingsT], Generic[SettingsT, CursorT]):
    """A connector that pulls changes from an API from a cursor."""

    @property
    def interval(self) -> timedelta:
        seconds = getattr(self.settings, "poll_interval", 300.0)
        return timedelta(seconds=float(seconds))

    @abstractmethod
    def initial_cursor(self, since: datetime) -> CursorT:
        """The cursor that starts a poll (or a backfill) at `since`. Must be JSON-able."""

    @abstractmethod
    async def poll(self, cursor: CursorT, client: Any) -> PollResult[CursorT]:
        """Fetch what changed after `cursor` through `client` (an `httpx.AsyncClient`)."""
