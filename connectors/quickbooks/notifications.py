"""QuickBooks webhook notifications (legacy and CloudEvents) -> id-only source events.

Both bodies name changed entities and carry no field values; `fetch` gets the object.
Formats per shared/reference/sources.md §10:

- legacy: `{"eventNotifications": [{"realmId", "dataChangeEvent": {"entities": [
  {"name", "id", "operation", "lastUpdated"}]}}]}`
- CloudEvents: `[{"specversion", "id", "type": "qbo.<entity>.<op>.v1", "time",
  "intuitentityid", "intuitaccountid", "data": {}}]`

Every event's data is `{"realmId", "id", "operation", "lastUpdated", "deleted"}` with the
operation in the legacy spelling (`Create`, `Update`, `Delete`, `Merge`, `Void`, `Emailed`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from hub import PayloadError, SourceEvent

__all__ = ["ENTITY_NAMES", "canonical_entity", "canonical_operation", "parse_notification"]

#: Webhook-capable entities, keyed by lower case (CloudEvents types spell them in lower
#: case: `qbo.salesreceipt.created.v1`), valued by the API's own spelling.
ENTITY_NAMES: dict[str, str] = {
    name.lower(): name
    for name in (
        "Account Bill BillPayment Budget Class CreditMemo Currency Customer Department "
        "Deposit Employee Estimate Invoice Item JournalCode JournalEntry Payment "
        "PaymentMethod Preferences Purchase PurchaseOrder RefundReceipt SalesReceipt "
        "TaxAgency Term TimeActivity Transfer Vendor VendorCredit"
    ).split()
}

#: Realm and entity ids go into API paths: QuickBooks ids are digits, allow word characters.
_ID = re.compile(r"^[\w-]{1,64}$")

#: CloudEvents operation words -> the legacy operation names.
_OPERATIONS: dict[str, str] = {
    "created": "Create",
    "updated": "Update",
    "deleted": "Delete",
    "merged": "Merge",
    "voided": "Void",
    "emailed": "Emailed",
}


def canonical_entity(name: str) -> str:
    """`invoice` / `sales_receipt` -> `Invoice` / `SalesReceipt`; unknown names capitalised."""
    key = name.replace("_", "").replace("-", "").lower()
    return ENTITY_NAMES.get(key, name[:1].upper() + name[1:])


def canonical_operation(operation: str) -> str:
    """`created` -> `Create`; a legacy name (`Update`) is kept as sent."""
    return _OPERATIONS.get(operation.lower(), operation)


def parse_notification(body: Any, *, received_at: datetime) -> list[SourceEvent]:
    """Turn a parsed notification body (either format) into one event per entity.

    Raises PayloadError when the body is neither format or an entity lacks its id.
    """
    if isinstance(body, list):
        return [_from_cloud_event(item, n, received_at) for n, item in enumerate(body)]
    if isinstance(body, dict) and "specversion" in body:
        return [_from_cloud_event(body, 0, received_at)]
    if isinstance(body, dict) and "eventNotifications" in body:
        return _from_legacy(body["eventNotifications"], received_at)
    raise PayloadError(
        "not a QuickBooks notification: expected a CloudEvents array or an object with "
        "eventNotifications"
    )


def _from_cloud_event(item: Any, index: int, received_at: datetime) -> SourceEvent:
    where = f"CloudEvent [{index}]"
    if not isinstance(item, dict):
        raise PayloadError(f"{where} is not an object")
    event_id = _required_text(item, "id", where)
    event_type = _required_text(item, "type", where)
    entity_id = _required_text(item, "intuitentityid", where)
    realm_id = _required_text(item, "intuitaccountid", where)
    parts = event_type.split(".")
    if len(parts) >= 3 and parts[0] == "qbo":
        entity, operation = canonical_entity(parts[1]), canonical_operation(parts[2])
    else:
        # Not a QBO entity event: keep the type as sent so the runtime can ignore it.
        entity, operation = event_type, ""
    time = _optional_text(item, "time", where)
    return SourceEvent(
        type=entity,
        id=event_id,
        occurred_at=_timestamp(time, where) if time else received_at,
        data=_event_data(realm_id, entity_id, operation, time, item.get("deletedid")),
    )


def _from_legacy(notifications: Any, received_at: datetime) -> list[SourceEvent]:
    if not isinstance(notifications, list):
        raise PayloadError("eventNotifications is not a list")
    events: list[SourceEvent] = []
    for n, notification in enumerate(notifications):
        where = f"eventNotifications[{n}]"
        if not isinstance(notification, dict):
            raise PayloadError(f"{where} is not an object")
        realm_id = _required_text(notification, "realmId", where)
        change = notification.get("dataChangeEvent")
        entities = change.get("entities") if isinstance(change, dict) else None
        if not isinstance(entities, list):
            raise PayloadError(f"{where}.dataChangeEvent.entities is missing or not a list")
        for e, entity in enumerate(entities):
            at = f"{where}.entities[{e}]"
            events.append(_from_legacy_entity(entity, realm_id, at, received_at))
    return events


def _from_legacy_entity(
    entity: Any, realm_id: str, where: str, received_at: datetime
) -> SourceEvent:
    if not isinstance(entity, dict):
        raise PayloadError(f"{where} is not an object")
    name = canonical_entity(_required_text(entity, "name", where))
    entity_id = _required_text(entity, "id", where)
    operation = canonical_operation(_optional_text(entity, "operation", where) or "")
    last_updated = _optional_text(entity, "lastUpdated", where)
    # The legacy format has no event id: these five fields identify one change, and a
    # redelivery repeats them exactly (shared/reference/sources.md §0, "Replay").
    dedupe_id = f"{realm_id}:{name}:{entity_id}:{operation}:{last_updated or ''}"
    return SourceEvent(
        type=name,
        id=dedupe_id,
        occurred_at=_timestamp(last_updated, where) if last_updated else received_at,
        data=_event_data(realm_id, entity_id, operation, last_updated, entity.get("deletedId")),
    )


def _event_data(
    realm_id: str, entity_id: str, operation: str, last_updated: str | None, deleted_id: Any
) -> dict[str, Any]:
    for name, value in (("realm id", realm_id), ("entity id", entity_id)):
        if not _ID.match(value):
            raise PayloadError(f"{name} {value[:70]!r} is not a QuickBooks id")
    data: dict[str, Any] = {
        "realmId": realm_id,
        "id": entity_id,
        "operation": operation,
        "lastUpdated": last_updated,
        # A deleted object cannot be fetched; `fetch` passes it through unfetched.
        "deleted": operation == "Delete",
    }
    if deleted_id is not None:
        data["deletedId"] = str(deleted_id)  # Merge: the id that was merged away
    return data


def _required_text(item: Mapping[str, Any], key: str, where: str) -> str:
    value = _optional_text(item, key, where)
    if not value:
        raise PayloadError(f"{where} has no {key}")
    return value


def _optional_text(item: Mapping[str, Any], key: str, where: str) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PayloadError(f"{where}.{key} is not a string")
    return str(value).strip()


def _timestamp(value: str, where: str) -> datetime:
    # Legacy sends `2015-10-05T14:42:19-0700` or `...19.000Z`; CloudEvents RFC 3339.
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PayloadError(f"{where} has an unreadable timestamp {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise PayloadError(f"{where} has an out-of-range timestamp {value[:40]!r}") from None
