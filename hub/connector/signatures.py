"""Signature checks shared by webhook connectors: pure functions over the raw body.

Every compare is constant-time (`hmac.compare_digest`) and every check accepts a list of
secrets, so a secret can be rotated without dropping deliveries signed with the old one.
Messages never contain a secret or the expected signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Literal

from hub.errors import SignatureError

__all__ = [
    "check_timestamp",
    "hmac_sha256",
    "parse_timestamped_header",
    "verify_hmac",
    "verify_standard_webhook",
    "verify_timestamped_hmac",
]

Encoding = Literal["base64", "hex"]


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 of `message` under `key`, as raw bytes."""
    return hmac.new(key, message, hashlib.sha256).digest()


def _encode(digest: bytes, encoding: Encoding) -> bytes:
    if encoding == "hex":
        return digest.hex().encode()
    return base64.b64encode(digest)


def _matches_any(provided: bytes, expected: Iterable[bytes]) -> bool:
    # Compare against every secret (no early exit) so timing does not reveal which matched.
    found = False
    for candidate in expected:
        found |= hmac.compare_digest(provided, candidate)
    return found


def verify_hmac(
    message: bytes,
    provided: str | None,
    secrets: Sequence[bytes],
    *,
    encoding: Encoding,
    header: str,
    prefix: str = "",
) -> None:
    """Check `provided` (e.g. `sha256=<hex>`) is the HMAC-SHA256 of `message` under a secret.

    Raises SignatureError naming the header when it is missing, malformed or wrong.
    """
    if not secrets:
        raise SignatureError("no signing secret is configured for this connector")
    if provided is None or not provided.strip():
        raise SignatureError(f"missing signature header {header}")
    value = provided.strip()
    if prefix:
        if not value.startswith(prefix):
            raise SignatureError(f"malformed {header}: expected a value starting {prefix!r}")
        value = value[len(prefix) :]
    if encoding == "hex":
        value = value.lower()
    expected = [_encode(hmac_sha256(secret, message), encoding) for secret in secrets]
    if not _matches_any(value.encode("ascii", "replace"), expected):
        raise SignatureError(f"signature in {header} does not match the body")


def parse_timestamped_header(value: str | None, *, header: str) -> tuple[int, list[str]]:
    """Parse `t=<unix>,v1=<sig>[,v1=<sig>]` (Stripe, Calendly): the timestamp and v1 values."""
    if value is None or not value.strip():
        raise SignatureError(f"missing signature header {header}")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in value.split(","):
        key, sep, item = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(item)
            except ValueError:
                raise SignatureError(f"malformed {header}: t= is not a unix time") from None
        elif key == "v1":
            signatures.append(item.strip().lower())
    if timestamp is None or not signatures:
        raise SignatureError(f"malformed {header}: expected t=<unix time>,v1=<signature>")
    return timestamp, signatures


def check_timestamp(
    timestamp: int, *, now: datetime, tolerance: float, header: str, future: bool = True
) -> None:
    """Reject a signed timestamp older than `tolerance` seconds (and, if `future`, newer)."""
    age = now.timestamp() - timestamp
    if age > tolerance:
        raise SignatureError(
            f"stale request: {header} timestamp is {int(age)} s old (tolerance {int(tolerance)} s)"
        )
    if future and -age > tolerance:
        raise SignatureError(f"{header} timestamp is {int(-age)} s in the future")


def verify_timestamped_hmac(
    body: bytes,
    header_value: str | None,
    secrets: Sequence[bytes],
    *,
    now: datetime,
    tolerance: float,
    header: str,
) -> int:
    """Verify a `t=…,v1=…` header over `"<t>.<body>"` (hex), return the signed timestamp."""
    if not secrets:
        raise SignatureError("no signing secret is configured for this connector")
    timestamp, signatures = parse_timestamped_header(header_value, header=header)
    message = str(timestamp).encode() + b"." + body
    expected = [_encode(hmac_sha256(secret, message), "hex") for secret in secrets]
    found = False
    for signature in signatures:
        found |= _matches_any(signature.encode("ascii", "replace"), expected)
    if not found:
        raise SignatureError(f"signature in {header} does not match the body")
    check_timestamp(timestamp, now=now, tolerance=tolerance, header=header)
    return timestamp


def verify_standard_webhook(
    body: bytes,
    *,
    msg_id: str | None,
    timestamp: str | None,
    signature: str | None,
    secrets: Sequence[str],
    now: datetime,
    tolerance: float = 300,
) -> None:
    """Verify a Standard Webhooks delivery (`webhook-id`, `webhook-timestamp`, `webhook-signature`).

    Each secret is `whsec_<base64 key>`; the signed content is `"<id>.<timestamp>.<body>"` and
    the header holds space-separated `v1,<base64>` values.
    """
    if not msg_id or not timestamp or not signature:
        raise SignatureError(
            "missing header: webhook-id, webhook-timestamp and webhook-signature are required"
        )
    try:
        ts = int(timestamp)
    except ValueError:
        raise SignatureError("malformed webhook-timestamp: not a unix time") from None
    keys: list[bytes] = []
    for secret in secrets:
        try:
            keys.append(base64.b64decode(secret.removeprefix("whsec_"), validate=True))
        except (binascii.Error, ValueError):
            raise SignatureError("a configured Standard Webhooks secret is not base64") from None
    message = f"{msg_id}.{ts}.".encode() + body
    expected = [_encode(hmac_sha256(key, message), "base64") for key in keys]
    provided = [
        part.split(",", 1)[1].encode("ascii", "replace")
        for part in signature.split()
        if part.startswith("v1,")
    ]
    found = False
    for candidate in provided:
        found |= _matches_any(candidate, expected)
    if not found:
        raise SignatureError("signature in webhook-signature does not match the body")
    check_timestamp(ts, now=now, tolerance=tolerance, header="webhook-timestamp")
