"""No secret and no personal data reaches the logs: capture every log line of an end-to-end
run (ingress and worker at DEBUG) and the stored errors, and look for what was sent."""

from __future__ import annotations

import logging

import pytest

from hub.redaction import RedactingFilter, redact, register_secrets
from tests.integration.conftest import CONFIG, SECRETS, now

pytestmark = pytest.mark.integration

EMAILS = [f"Private.Person{n}@Example.org" for n in range(5)]
PHONES = ["+44 20 7946 0018", "+81 90-1234-5678"]


def test_an_end_to_end_run_logs_no_secret_email_or_phone(make_stack):
    from connectors.shopify import ShopifyConnector

    broken = CONFIG.replace(
        "    secret: shop-secret\n",
        "    secret: shop-secret\n    mappings:\n      orders/create:\n        fields:\n"
        "          contact.phone: {{path: phone, transforms: [{{e164: GB}}]}}\n",
    )
    stack = make_stack(broken)
    stack._spawn("ingress", "-v", "serve", "--config", str(stack.config), "--port", str(stack.port))
    import time

    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{stack.base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    stack._spawn("worker", "-v", "worker", "--config", str(stack.config), "--threads", "2")
    ids = []
    for n, email in enumerate(EMAILS):
        order = {
            "id": 70 + n,
            "email": email,
            "currency": "EUR",
            "total_price": "9",
            "phone": PHONES[n % 2] if n < 4 else "not a phone " + email,
        }
        request = ShopifyConnector.sample_request("orders/create", order, SECRETS["shop"], at=now())
        ids.extend(e["id"] for e in stack.post("shop", request).json()["events"])
    # A forged request too: its signature must not be logged either.
    stack.post("shop", ShopifyConnector.sample_request("orders/create", {"id": 1}, "wrong-secret", at=now()))
    stack.wait_for(ids)
    stack.stop_all()
    logs = "".join(p.read_text(errors="replace") for p in stack.dir.glob("*.log"))
    assert "DEBUG" in logs  # we did capture debug-level output
    errors = " ".join(stack.log.get(i).error for i in ids)
    for text in (logs, errors):
        for secret in [*SECRETS.values(), "wrong-secret"]:
            assert secret not in text
        for email in EMAILS:
            assert email not in text and email.lower() not in text
        for phone in PHONES:
            assert phone not in text and phone.replace(" ", "").replace("-", "") not in text


def test_the_filter_masks_log_records(caplog):
    register_secrets(["sk-live-abcdef123456"])
    logger = logging.getLogger("hub.test.redaction")
    handler = logging.StreamHandler()
    handler.addFilter(RedactingFilter())
    record = logger.makeRecord(
        "x",
        logging.WARNING,
        __file__,
        1,
        "token %s for %s at %s",
        ("sk-live-abcdef123456", "ann@example.com", "+14155550132"),
        None,
    )
    assert handler.filter(record)
    assert record.getMessage() == "token [redacted] for [redacted] at [redacted]"
    masked = redact("Authorization: Bearer eyJhbGciOi.abc, api_key=k123 Api-Token: t456")
    assert "eyJhbGciOi" not in masked and "k123" not in masked and "t456" not in masked
