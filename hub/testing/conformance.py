"""A conformance suite any connector runs in its own tests (pytest collects the subclass).

Checks: mapping specs load; every shipped fixture maps to a valid, non-empty Bundle;
signed sample requests verify and parse; tampered, unsigned, wrongly signed and (where the
scheme signs a timestamp) stale requests raise `SignatureError`; rotated secrets work.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from hub.canonical import Bundle
from hub.connector.base import Connector, RawRequest, SourceEvent, WebhookConnector, event_slug
from hub.errors import SignatureError
from hub.mapping import MappingSet

__all__ = ["ConnectorConformance", "fixture_cases"]

_SECRET = "conformance-secret-0123456789abcdef"  # noqa: S105 - a test secret
_OTHER_SECRET = "some-other-secret-fedcba9876543210"  # noqa: S105


def fixture_cases(cls: type[Connector[Any]]) -> list[tuple[str, Path, dict[str, Any]]]:
    """Every `(event_type, path, data)` fixture a connector ships, by its `events`."""
    cases = []
    root = cls.fixtures_dir()
    for event_type in cls.events:
        folder = root / event_slug(event_type)
        if folder.is_dir():
            for path in sorted(folder.glob("*.json")):
                cases.append((event_type, path, json.loads(path.read_text(encoding="utf-8"))))
    return cases


def _fail(problems: list[str]) -> None:
    if problems:
        raise AssertionError("\n".join(problems))


class ConnectorConformance:
    """Subclass with `connector = MyConnector` (and `settings_values`) in a test module."""

    connector: ClassVar[type[Connector[Any]]]
    #: Settings besides `secret` that the connector requires.
    settings_values: ClassVar[dict[str, Any]] = {}

    def make(self, secret: str | list[str] = _SECRET) -> Connector[Any]:
        settings = self.connector.settings_model.model_validate({**self.settings_values, "secret": secret})
        return self.connector(settings, instance_id="conformance")

    def webhook(self) -> WebhookConnector[Any]:
        instance = self.make()
        assert isinstance(instance, WebhookConnector), "not a webhook connector"
        return instance

    def requests(self, secret: str = _SECRET, at: datetime | None = None) -> list[tuple[str, RawRequest]]:
        when = at or datetime.now(UTC)
        return [
            (str(path), self.connector.sample_request(event_type, data, secret, at=when))  # type: ignore[attr-defined]
            for event_type, path, data in fixture_cases(self.connector)
        ]

    # --- mapping ---------------------------------------------------------------------

    def test_declares_events_and_settings(self) -> None:
        assert self.connector.events, "a connector declares the event types it emits"
        assert "secret" in self.connector.settings_model.model_fields or not issubclass(
            self.connector, WebhookConnector
        ), "the signing secret must be the setting named `secret`"

    def test_mapping_specs_load(self) -> None:
        mappings = MappingSet.load(self.connector.mapping_dir())
        missing = [e for e in self.connector.events if mappings.get(e) is None]
        assert not missing, f"events without a mapping spec: {missing}"

    def test_every_fixture_maps_to_a_bundle(self) -> None:
        mappings = MappingSet.load(self.connector.mapping_dir())
        cases = fixture_cases(self.connector)
        assert cases, f"no fixtures under {self.connector.fixtures_dir()}/<event slug>/*.json"
        problems = []
        for event_type, path, data in cases:
            mapper = mappings.get(event_type)
            assert mapper is not None
            try:
                bundle = mapper.map(
                    SourceEvent(event_type, path.stem, datetime.now(UTC), data), connector="conformance"
                )
            except Exception as exc:
                problems.append(f"{path}: {exc}")
                continue
            if bundle.is_empty:
                problems.append(f"{path}: mapped to an empty Bundle")
            if Bundle.model_validate_json(bundle.model_dump_json()) != bundle:
                problems.append(f"{path}: Bundle does not round-trip through JSON")
        _fail(problems)

    # --- signatures ------------------------------------------------------------------

    def test_signed_requests_verify_and_parse(self) -> None:
        connector = self.webhook()
        problems = []
        for name, request in self.requests():
            try:
                connector.verify(request)
                events = connector.parse(request)
            except Exception as exc:
                problems.append(f"{name}: {type(exc).__name__}: {exc}")
                continue
            if not events:
                problems.append(f"{name}: parsed to no events")
            for event in events:
                if event.occurred_at.tzinfo is None:
                    problems.append(f"{name}: occurred_at is naive")
                if not event.id:
                    problems.append(f"{name}: event has no id")
        _fail(problems)

    def _expect_rejected(self, requests: list[tuple[str, RawRequest]], why: str) -> None:
        connector = self.webhook()
        problems = []
        for name, request in requests:
            try:
                connector.verify(request)
            except SignatureError as exc:
                if _SECRET in str(exc):
                    problems.append(f"{name}: the error message contains the secret")
                continue
            problems.append(f"{name}: {why} request was accepted")
        _fail(problems)

    def test_tampered_body_rejected(self) -> None:
        tampered = []
        for name, request in self.requests():
            body = bytearray(request.body)
            body[len(body) // 2] ^= 0x01
            tampered.append((name, replace(request, body=bytes(body))))
        self._expect_rejected(tampered, "a tampered")

    def test_missing_signature_rejected(self) -> None:
        header = self.connector.signature_header.lower()  # type: ignore[attr-defined]
        assert header, "set `signature_header` on the connector"
        stripped = [
            (name, replace(request, headers={k: v for k, v in request.headers.items() if k != header}))
            for name, request in self.requests()
        ]
        self._expect_rejected(stripped, "an unsigned")

    def test_wrong_secret_rejected(self) -> None:
        self._expect_rejected(self.requests(secret=_OTHER_SECRET), "a wrongly signed")

    def test_stale_rejected(self) -> None:
        if not getattr(self.connector, "signs_timestamp", False):
            return  # the scheme signs no timestamp: replays are caught by delivery-id dedupe
        old = datetime.now(UTC) - timedelta(hours=2)
        self._expect_rejected(self.requests(at=old), "a stale")

    def test_rotated_secrets_accepted(self) -> None:
        connector = self.make([_OTHER_SECRET, _SECRET])
        assert isinstance(connector, WebhookConnector)
        for _, request in self.requests():
            connector.verify(request)
