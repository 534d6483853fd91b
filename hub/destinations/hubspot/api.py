"""The HubSpot endpoints the adapter uses, one method each, over the injected `httpx.Client`.

Paths follow `api_version` (crm-apis.md §1 "Versions"): `v3` -> `/crm/v3/objects/…`,
`/crm/v4/associations/…`; `2026-03` -> `/crm/objects/2026-03/…`. Batch calls are split at
100 inputs (§1.6) and answered per input, in input order, through `objectWriteTraceId`.
No retries here: every failure is raised as classified by `errors.classify`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
from pydantic import SecretStr

from hub.destinations.hubspot.errors import classify, classify_item_error, transport_error
from hub.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError

__all__ = ["BATCH_MAX", "SEARCH_PAGE_MAX", "BatchInput", "HubSpotApi", "Paths", "Record", "chunks"]

#: Inputs per batch request (crm-apis.md §1.6).
BATCH_MAX: Final = 100
#: Results per search page, and values per `IN` filter kept under the same number.
SEARCH_PAGE_MAX: Final = 100
#: Search results read at most per query (HubSpot stops at 10,000; we never need more).
_SEARCH_CAP: Final = 1000

#: A HubSpot object as returned: {"id": "512", "properties": {...}, ...}.
Record = dict[str, Any]


def chunks(items: Sequence[Any], size: int = BATCH_MAX) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class Paths:
    """URL paths for one API version family."""

    version: str = "v3"

    def _family(self, family: str, rest: str) -> str:
        if self.version == "v3":
            return f"/crm/v3/{family}/{rest}"
        return f"/crm/{family}/{self.version}/{rest}"

    def objects(self, kind: str) -> str:
        return self._family("objects", kind)

    def properties(self, kind: str) -> str:
        return self._family("properties", kind)

    def pipelines(self, kind: str) -> str:
        return self._family("pipelines", kind)

    def associate_default(self, from_kind: str, to_kind: str) -> str:
        if self.version == "v3":
            return f"/crm/v4/associations/{from_kind}/{to_kind}/batch/associate/default"
        return f"/crm/associations/{self.version}/{from_kind}/{to_kind}/batch/associate/default"


@dataclass(frozen=True)
class BatchInput:
    """One input of a batch write: `id` is a record id, or the `id_property` value to upsert by."""

    properties: Mapping[str, str]
    id: str | None = None
    id_property: str | None = None
    associations: Sequence[Mapping[str, Any]] = field(default_factory=tuple)


def _trace_index(value: Any, size: int) -> int | None:
    try:
        index = int(str(value))
    except ValueError:
        return None
    return index if 0 <= index < size else None


def _error_inputs(error: Mapping[str, Any], size: int, by_key: Mapping[str, int]) -> list[int]:
    """Which inputs a 207 error names: `context.objectWriteTraceId`, else `context.ids`."""
    context = error.get("context")
    if not isinstance(context, Mapping):
        return []
    if "objectWriteTraceId" in context:
        found = [_trace_index(v, size) for v in context.get("objectWriteTraceId") or ()]
    else:
        found = [by_key.get(str(v).lower()) for v in context.get("ids") or ()]
    return [i for i in found if i is not None]


def _error_keys(error: Mapping[str, Any]) -> set[str]:
    keys: set[str] = set()
    context = error.get("context")
    if isinstance(context, Mapping):
        for values in context.values():
            if isinstance(values, list):
                keys.update(str(v) for v in values)
    return keys


class HubSpotApi:
    """Thin, typed calls; `client` is read at call time (the delivery layer injects it late)."""

    def __init__(self, client: Callable[[], httpx.Client | None], token: SecretStr, version: str) -> None:
        self._client = client
        self._token = token
        self.paths = Paths(version)

    # -- one request -------------------------------------------------------------------------

    def send(
        self,
        method: str,
        path: str,
        *,
        what: str,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        allow: tuple[int, ...] = (),
    ) -> httpx.Response:
        """Send one request; a non-2xx status not in `allow` raises its delivery error."""
        client = self._client()
        if client is None:
            raise PermanentDeliveryError("HubSpot destination has no HTTP client (not set up by the hub)")
        token = self._token.get_secret_value()
        try:
            response = client.request(
                method,
                path,
                json=json,
                params=params,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            )
        except httpx.TransportError as exc:
            raise transport_error(exc, what=what) from exc
        if response.is_success or response.status_code in allow:
            return response
        raise classify(response, what=what, secret=token)

    def _json(self, response: httpx.Response, *, what: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as exc:
            raise TransientDeliveryError(f"HubSpot {what}: the answer is not JSON") from exc
        if not isinstance(body, dict):
            raise TransientDeliveryError(f"HubSpot {what}: unexpected answer")
        return body

    # -- records -----------------------------------------------------------------------------

    def get(
        self, kind: str, record_id: str, properties: Sequence[str], *, id_property: str | None = None
    ) -> Record | None:
        """One record by id (or by a unique `id_property` value); None when HubSpot has none."""
        params = {"properties": ",".join(properties)}
        if id_property:
            params["idProperty"] = id_property
        what = f"{kind} read"
        response = self.send(
            "GET", f"{self.paths.objects(kind)}/{record_id}", what=what, params=params, allow=(404,)
        )
        return None if response.status_code == 404 else self._json(response, what=what)

    def update(self, kind: str, record_id: str, properties: Mapping[str, str]) -> Record | None:
        """PATCH one record's properties; None when the record does not exist (404)."""
        what = f"{kind} update"
        response = self.send(
            "PATCH",
            f"{self.paths.objects(kind)}/{record_id}",
            what=what,
            json={"properties": dict(properties)},
            allow=(404,),
        )
        return None if response.status_code == 404 else self._json(response, what=what)

    def create(
        self, kind: str, properties: Mapping[str, str], associations: Sequence[Mapping[str, Any]] = ()
    ) -> Record:
        """POST one record; a duplicate raises `ConflictError` (409) carrying the existing id."""
        what = f"{kind} create"
        body: dict[str, Any] = {"properties": dict(properties)}
        if associations:
            body["associations"] = list(associations)
        return self._json(self.send("POST", self.paths.objects(kind), what=what, json=body), what=what)

    def search(
        self, kind: str, filters: Sequence[Mapping[str, Any]], properties: Sequence[str]
    ) -> list[Record]:
        """Records matching every filter (one filter group), all pages up to a cap.
        Search lags writes by "a few moments" (crm-apis.md §1.4): never the only retry guard."""
        what = f"{kind} search"
        found: list[Record] = []
        after: str | None = None
        while len(found) < _SEARCH_CAP:
            body: dict[str, Any] = {
                "filterGroups": [{"filters": list(filters)}],
                "properties": list(properties),
                "limit": SEARCH_PAGE_MAX,
            }
            if after:
                body["after"] = after
            page = self._json(
                self.send("POST", f"{self.paths.objects(kind)}/search", what=what, json=body), what=what
            )
            found.extend(page.get("results") or [])
            after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                break
        return found

    # -- batches -----------------------------------------------------------------------------

    def batch_read(
        self, kind: str, ids: Sequence[str], properties: Sequence[str], *, id_property: str | None = None
    ) -> list[Record]:
        """Records for the ids that exist (missing ones are simply absent)."""
        what = f"{kind} batch read"
        found: list[Record] = []
        for part in chunks(list(dict.fromkeys(ids))):
            body: dict[str, Any] = {
                "inputs": [{"id": i} for i in part],
                "properties": list(properties),
                "propertiesWithHistory": [],
            }
            if id_property:
                body["idProperty"] = id_property
            response = self.send("POST", f"{self.paths.objects(kind)}/batch/read", what=what, json=body)
            found.extend(self._json(response, what=what).get("results") or [])
        return found

    def batch_write(
        self,
        kind: str,
        verb: str,
        inputs: Sequence[BatchInput],
        *,
        key_of: Callable[[Record], str] | None = None,
    ) -> list[Record | DeliveryError]:
        """`verb` is `create`, `update` or `upsert`. One result per input, in order: the
        written record, or that input's own error (207 multi-status). Results are matched by
        `objectWriteTraceId`, else by `key_of(record)` == the input's `id` (case-insensitive).
        A whole-batch refusal (4xx) raises, and the delivery layer splits the batch."""
        what = f"{kind} batch {verb}"
        results: list[Record | DeliveryError] = []
        for part in chunks(list(inputs)):
            body = {"inputs": [self._input(verb, index, item) for index, item in enumerate(part)]}
            response = self.send("POST", f"{self.paths.objects(kind)}/batch/{verb}", what=what, json=body)
            results.extend(self._per_input(self._json(response, what=what), part, what, key_of))
        return results

    @staticmethod
    def _input(verb: str, index: int, item: BatchInput) -> dict[str, Any]:
        entry: dict[str, Any] = {"properties": dict(item.properties), "objectWriteTraceId": str(index)}
        if verb != "create":
            entry["id"] = item.id
        if item.id_property:
            entry["idProperty"] = item.id_property
        if verb == "create" and item.associations:
            entry["associations"] = list(item.associations)
        return entry

    def _per_input(
        self,
        body: Mapping[str, Any],
        part: Sequence[BatchInput],
        what: str,
        key_of: Callable[[Record], str] | None,
    ) -> list[Record | DeliveryError]:
        size = len(part)
        out: list[Record | DeliveryError | None] = [None] * size
        by_key = {str(item.id).lower(): i for i, item in enumerate(part) if item.id}
        for record in body.get("results") or ():
            index = _trace_index(record.get("objectWriteTraceId"), size)
            if index is None and key_of is not None:
                index = by_key.get(key_of(record).lower())
            if index is None and size == 1:
                index = 0
            if index is not None and out[index] is None:
                out[index] = record
        stray: DeliveryError | None = None
        for error in body.get("errors") or ():
            problem = classify_item_error(error, what=what, secret=self._token.get_secret_value())
            hits = [i for i in _error_inputs(error, size, by_key) if out[i] is None]
            for index in hits:
                out[index] = problem
            if not hits:
                stray = stray or problem
        missing = TransientDeliveryError(f"HubSpot {what}: no result for this input")
        return [item if item is not None else (stray or missing) for item in out]

    def associate(
        self, from_kind: str, to_kind: str, pairs: Sequence[tuple[str, str]]
    ) -> list[DeliveryError | None]:
        """Default (unlabelled) associations, repeat-safe (crm-apis.md §1.3); None = linked."""
        what = f"{from_kind}->{to_kind} association"
        outcome: list[DeliveryError | None] = []
        for part in chunks(list(pairs)):
            body = {"inputs": [{"from": {"id": a}, "to": {"id": b}} for a, b in part]}
            response = self.send(
                "POST", self.paths.associate_default(from_kind, to_kind), what=what, json=body
            )
            errors = (
                self._json(response, what=what).get("errors") or [] if response.status_code == 207 else []
            )
            for a, b in part:
                problem: DeliveryError | None = None
                for error in errors:
                    if {a, b} & _error_keys(error):
                        problem = classify_item_error(error, what=what)
                        break
                outcome.append(problem)
        return outcome

    # -- metadata ----------------------------------------------------------------------------

    def list_properties(self, kind: str) -> list[Record]:
        what = f"{kind} properties"
        return list(
            self._json(self.send("GET", self.paths.properties(kind), what=what), what=what).get("results")
            or []
        )

    def get_property(self, kind: str, name: str) -> Record | None:
        what = f"{kind} property {name}"
        response = self.send("GET", f"{self.paths.properties(kind)}/{name}", what=what, allow=(404,))
        return None if response.status_code == 404 else self._json(response, what=what)

    def create_property(self, kind: str, definition: Mapping[str, Any]) -> bool:
        """True if created, False if it already existed (409)."""
        response = self.send(
            "POST",
            self.paths.properties(kind),
            what=f"{kind} property create",
            json=dict(definition),
            allow=(409,),
        )
        return response.status_code != 409

    def update_property(self, kind: str, name: str, changes: Mapping[str, Any]) -> Record:
        what = f"{kind} property {name} update"
        return self._json(
            self.send("PATCH", f"{self.paths.properties(kind)}/{name}", what=what, json=dict(changes)),
            what=what,
        )

    def create_group(self, kind: str, name: str, label: str) -> bool:
        response = self.send(
            "POST",
            f"{self.paths.properties(kind)}/groups",
            what=f"{kind} property group",
            json={"name": name, "label": label},
            allow=(409,),
        )
        return response.status_code != 409

    def pipelines(self, kind: str) -> list[Record]:
        what = f"{kind} pipelines"
        return list(
            self._json(self.send("GET", self.paths.pipelines(kind), what=what), what=what).get("results")
            or []
        )
