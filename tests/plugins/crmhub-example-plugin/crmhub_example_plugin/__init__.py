"""An example form connector: JSON posts signed with `X-Example-Signature: <hex HMAC-SHA256>`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from hub import RawRequest, SourceEvent, WebhookConnector, WebhookSettings, signatures


class ExampleFormsSettings(WebhookSettings):
    """Only the signing secret."""


class ExampleFormsConnector(WebhookConnector[ExampleFormsSettings]):
    name = "example_forms"
    category = "forms"
    events = ("submission",)
    settings_model = ExampleFormsSettings
    signature_header = "X-Example-Signature"

    def verify(self, request: RawRequest) -> None:
        signatures.verify_hmac(
            request.body,
            request.header(self.signature_header),
            self.settings.secret_bytes(),
            encoding="hex",
            header=self.signature_header,
        )

    def parse(self, request: RawRequest) -> list[SourceEvent]:
        data = request.json()
        return [SourceEvent("submission", str(data["id"]), request.received_at, data)]

    @classmethod
    def sample_request(
        cls, event_type: str, data: Mapping[str, Any], secret: str, *, at: datetime
    ) -> RawRequest:
        body = json.dumps(data).encode()
        digest = signatures.hmac_sha256(secret.encode(), body).hex()
        return RawRequest(
            "POST",
            body,
            {"content-type": "application/json", cls.signature_header: digest},
            received_at=at or datetime.now(UTC),
        )
