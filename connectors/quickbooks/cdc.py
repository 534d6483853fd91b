"""QuickBooks Online polled through change data capture (CDC), the alternative to webhooks.

One poll is one `GET /v3/company/{realmId}/cdc?entities=Customer,Invoice,Payment&changedSince=<ISO>`
(shared/reference/sources.md §10; Intuit's "Change data capture operation" page). The body:

    {"CDCResponse": [{"QueryResponse": [
        {"Customer": [{...}, ...], "startPosition": 1, "maxResults": 2},
        {"Invoice": [{...}, {"status": "Deleted", "domain": "QBO", "Id": "979",
                             "MetaData": {"LastUpdatedTime": "..."}}], ...}]}],
     "time": "2026-03-21T02:06:10.220-07:00"}

Provider facts this module relies on:

- Objects come back in full, as `GET /v3/company/{realm}/{entity}/{id}` returns them, so a
  polled object becomes the same event data `QuickBooksConnector.fetch` returns and maps
  with the same shipped specs (`mappings/quickbooks`).
- Deleted objects are stubs with `"status": "Deleted"`, the `Id` and `MetaData.LastUpdatedTime`
  (the deletion time). They become events shaped like a webhook `Delete` notification, which
  hold no object and so map to an empty Bundle.
- CDC looks back at most 30 days and returns at most 1,000 objects per response, grouped by
  entity, each group ordered by LastUpdatedTime, deleted objects after the active ones.

OAuth, reads and error mapping are `QuickBooksSession`'s (`api.py`), shared with the
webhook connector. Nothing here retries or sleeps; tokens are never logged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib.resources.abc import Traversable
from typing import Any, ClassVar

from pydantic import Field, field_validator

from connectors.quickbooks.api import QuickBooksSession, fault_text
from connectors.quickbooks.connector import QuickBooksApiSettings, QuickBooksConnector
from connectors.quickbooks.notifications import canonical_entity
from hub import PermanentDeliveryError, PollingConnector, PollingSettings, PollResult, SourceEvent

__all__ = [
    "CDC_LOOKBACK",
    "CDC_MAX_OBJECTS",
    "QuickBooksCdcConnector",
    "QuickBooksCdcSettings",
]

log = logging.getLogger(__name__)

#: How far back CDC can look (Intuit: "CDC operations can track changes within the last 30 days").
CDC_LOOKBACK = timedelta(days=30)
#: Kept off the 30-day edge, so a cursor clamped now is still accepted when the poll runs.
_LOOKBACK_MARGIN = timedelta(minutes=10)
#: The most objects one CDC response holds; a response this full may have been cut short.
CDC_MAX_OBJECTS = 1000
#: Entities CDC does not serve (Intuit's CDC page).
_CDC_UNSUPPORTED = frozenset({"JournalCode", "TaxAgency", "TimeActivity", "TaxCode", "TaxRate"})
_ENTITY = re.compile(r"^[A-Za-z]{1,64}$")
_DEFAULT_ENTITIES = ("Customer", "Invoice", "Payment")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class QuickBooksCdcSettings(QuickBooksApiSettings, PollingSettings):
    """One QuickBooks app's OAuth tokens for one company, polled every `poll_interval` seconds.

    The OAuth and API fields mean what they mean for the `quickbooks` webhook connector.
    There is no `secret`: a poll has no signature to check.
    """

    realm_id: str = Field(
        pattern=r"^[\w-]{1,64}$",
        description="The company (realmId) to poll; the tokens must belong to it.",
    )
    entities: tuple[str, ...] = Field(
        default=_DEFAULT_ENTITIES,
        min_length=1,
        description=(
            "Entities to poll, e.g. [Customer, Invoice, Payment]. Each is an event type; "
            "only those with a mapping spec reach a CRM."
        ),
    )

    @field_validator("entities")
    @classmethod
    def _known_entities(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        names: list[str] = []
        for raw in value:
            if not _ENTITY.match(raw.replace("_", "")):
                raise ValueError(f"{raw!r} is not a QuickBooks entity name")
            name = canonical_entity(raw)
            if name in _CDC_UNSUPPORTED:
                raise ValueError(f"change data capture does not serve {name}")
            if name not in names:
                names.append(name)
        return tuple(names)


class QuickBooksCdcConnector(PollingConnector[QuickBooksCdcSettings, dict[str, str]]):
    """QuickBooks Online customers, invoices and payments, polled with change data capture.

    Cursor: `{"changed_since": "2026-03-21T09:05:44Z"}`, the `changedSince` of the next poll
    (ISO 8601, UTC, whole seconds). It only ever moves forward.
    """

    name: ClassVar[str] = "quickbooks_cdc"
    category: ClassVar[str] = "accounting"
    events: ClassVar[tuple[str, ...]] = _DEFAULT_ENTITIES
    settings_model: ClassVar[type[QuickBooksCdcSettings]] = QuickBooksCdcSettings

    def __init__(self, settings: QuickBooksCdcSettings, *, instance_id: str | None = None) -> None:
        super().__init__(settings, instance_id=instance_id)
        access = settings.access_token
        self._session = QuickBooksSession(
            api_base_url=settings.api_base_url,
            token_url=settings.token_url,
            client_id=settings.client_id,
            client_secret=settings.client_secret.get_secret_value(),
            refresh_token=settings.refresh_token.get_secret_value(),
            access_token=access.get_secret_value() if access is not None else None,
            minor_version=settings.minor_version,
        )
        #: The current time (UTC); replaced in tests.
        self.clock: Callable[[], datetime] = _utcnow

    @classmethod
    def mapping_dir(cls) -> Traversable:
        """The `quickbooks` connector's specs: a polled object is the same data as a fetched one."""
        return QuickBooksConnector.mapping_dir()

    def initial_cursor(self, since: datetime) -> dict[str, str]:
        """The cursor of a poll (or backfill) from `since`, clamped to CDC's 30-day look-back.

        CDC cannot see further back than 30 days (Intuit refuses an older `changedSince`),
        so an older `since` starts at 30 days ago (less a 10-minute margin) instead: changes
        before that are not polled. Backfill those with the query endpoint.
        """
        return {"changed_since": _format(self._clamp(_aware(since)))}

    async def poll(self, cursor: dict[str, str], client: Any) -> PollResult[dict[str, str]]:
        """One CDC call from `cursor["changed_since"]`; every changed object is one event.

        Next cursor:

        - the newest `MetaData.LastUpdatedTime` among the objects newer than the cursor;
        - nothing newer (only objects re-sent at the cursor's own second, or none): the
          response's `time`;
        - a full response (1,000 objects, the cap; `more=True`, so the scheduler polls again
          at once): the *oldest* of the entities' newest times, so an entity that was cut
          short is read on from where it stopped instead of being skipped.

        It never moves backwards. Objects at the cursor's second may come back in the next
        poll; their event ids repeat and the hub drops them as duplicates.

        A stored cursor older than 30 days (polling stopped for that long) is clamped as in
        `initial_cursor`, with a warning: CDC can no longer return what changed before.
        """
        realm = self.settings.realm_id
        since = self._cursor_time(cursor)
        clamped = self._clamp(since)
        if clamped > since:
            log.warning(
                "QuickBooks CDC for %s: cursor %s is beyond the 30-day look-back; polling from "
                "%s, so earlier changes are not seen", self.instance_id, _format(since),
                _format(clamped),
            )
            since = clamped
        body = await self._session.get_json(
            client,
            self._session.company_url(realm, "cdc"),
            {"entities": ",".join(self.settings.entities), "changedSince": _format(since)},
            what=f"changes in company {realm} since {_format(since)}",
        )
        groups, response_time = _read_response(body, realm)

        events: list[SourceEvent] = []
        newest_by_entity: dict[str, datetime] = {}
        total = 0
        for entity, objects in groups:
            total += len(objects)
            for obj in objects:
                found = self._event(entity, obj, response_time)
                if found is None:
                    continue
                event, updated_at = found
                events.append(event)
                if updated_at is not None and updated_at > since:
                    seen = newest_by_entity.get(entity)
                    newest_by_entity[entity] = updated_at if seen is None else max(seen, updated_at)

        more = total >= CDC_MAX_OBJECTS
        if more and newest_by_entity:
            next_time = min(newest_by_entity.values())
        elif more:
            # A full response, all at the cursor's own second: step past it, not loop on it.
            log.warning(
                "QuickBooks CDC for %s: %d objects changed at %s; moving on one second",
                self.instance_id, total, _format(since),
            )
            next_time = since + timedelta(seconds=1)
        elif newest_by_entity:
            next_time = max(newest_by_entity.values())
        else:
            next_time = (_parse_time(response_time) if response_time else None) or since
        next_time = max(_whole_seconds(next_time), since)
        return PollResult(events, {"changed_since": _format(next_time)}, more=more and next_time > since)

    # --- helpers ---------------------------------------------------------------------

    def _clamp(self, since: datetime) -> datetime:
        earliest = _whole_seconds(self.clock() - CDC_LOOKBACK + _LOOKBACK_MARGIN)
        return max(_whole_seconds(since), earliest)

    @staticmethod
    def _cursor_time(cursor: Any) -> datetime:
        value = cursor.get("changed_since") if isinstance(cursor, dict) else None
        parsed = _parse_time(value) if isinstance(value, str) else None
        if parsed is None:
            raise ValueError(f"not a QuickBooks CDC cursor: {cursor!r}")
        return parsed

    def _event(
        self, entity: str, obj: Any, response_time: str | None
    ) -> tuple[SourceEvent, datetime | None] | None:
        """The event of one CDC object and its LastUpdatedTime (None if it has none)."""
        realm = self.settings.realm_id
        raw_id = obj.get("Id") if isinstance(obj, dict) else None
        if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or not str(raw_id):
            log.warning("QuickBooks CDC for %s: a %s without an Id was skipped", self.instance_id, entity)
            return None
        entity_id = str(raw_id)
        meta = obj.get("MetaData")
        stamp = meta.get("LastUpdatedTime") if isinstance(meta, dict) else None
        updated_at = _parse_time(stamp) if isinstance(stamp, str) else None
        if updated_at is None:
            stamp = response_time or ""
        event_id = f"{realm}:{entity}:{entity_id}:{stamp}"
        occurred_at = updated_at or (_parse_time(response_time) if response_time else None)
        if obj.get("status") == "Deleted":
            # As a webhook `Delete` notification: no object, so the mappings produce nothing.
            data: dict[str, Any] = {
                "realmId": realm,
                "id": entity_id,
                "operation": "Delete",
                "lastUpdated": stamp or None,
                "deleted": True,
            }
        else:
            # As `QuickBooksConnector.fetch` returns it (`{"Invoice": {...}, "time": ...}`).
            data = {entity: obj}
            if response_time:
                data["time"] = response_time
            data["realmId"] = realm
        event = SourceEvent(
            type=entity, id=event_id, occurred_at=occurred_at or self.clock(), data=data
        )
        return event, updated_at


def _read_response(body: Any, realm: str) -> tuple[list[tuple[str, list[Any]]], str | None]:
    """`[(entity, objects), ...]` and the response `time` from a CDC body."""
    what = f"QuickBooks CDC response for company {realm}"
    if not isinstance(body, dict):
        raise PermanentDeliveryError(f"{what} is not a JSON object")
    fault = fault_text(body)
    if fault:
        raise PermanentDeliveryError(f"{what} is a fault: {fault}")
    cdc = body.get("CDCResponse")
    if isinstance(cdc, dict):
        cdc = [cdc]
    if not isinstance(cdc, list):
        raise PermanentDeliveryError(f"{what} has no CDCResponse")
    groups: list[tuple[str, list[Any]]] = []
    for item in cdc:
        fault = fault_text(item)
        if fault:
            raise PermanentDeliveryError(f"{what} is a fault: {fault}")
        queries = item.get("QueryResponse") if isinstance(item, dict) else None
        if isinstance(queries, dict):
            queries = [queries]
        if not isinstance(queries, list):
            continue  # no changes
        for query in queries:
            if not isinstance(query, dict):
                continue
            fault = fault_text(query)
            if fault:
                raise PermanentDeliveryError(f"{what} is a fault: {fault}")
            for key, value in query.items():
                # Entity lists sit beside paging numbers (`startPosition`, `maxResults`, ...).
                if isinstance(value, list) and key[:1].isupper():
                    groups.append((key, value))
    time = body.get("time")
    return groups, time if isinstance(time, str) and time else None


def _parse_time(value: str) -> datetime | None:
    """An ISO 8601 time (`2026-03-21T02:05:44-07:00`, `...44.120Z`) in UTC; naive means UTC."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return _aware(parsed).astimezone(UTC)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _whole_seconds(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(microsecond=0)


def _format(value: datetime) -> str:
    """`2026-03-21T09:05:44Z`: the `changedSince` and cursor format (UTC, whole seconds)."""
    return _whole_seconds(value).strftime("%Y-%m-%dT%H:%M:%SZ")
