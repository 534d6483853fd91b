"""Signature helpers: constant-time HMAC checks, timestamped schemes, Standard Webhooks."""

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from hub import SignatureError
from hub.connector import signatures

BODY = b'{"id": 1, "name": "Ann \\u00e9"}'
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def b64(key: bytes, msg: bytes) -> str:
    return base64.b64encode(hmac.new(key, msg, hashlib.sha256).digest()).decode()


def test_verify_hmac_base64_and_hex_and_prefix():
    signatures.verify_hmac(BODY, b64(b"k", BODY), [b"k"], encoding="base64", header="X-Sig")
    hexsig = "sha256=" + hmac.new(b"k", BODY, hashlib.sha256).hexdigest().upper()
    signatures.verify_hmac(BODY, hexsig, [b"k"], encoding="hex", header="X-Sig", prefix="sha256=")


@pytest.mark.parametrize(
    ("provided", "message"),
    [(None, "missing signature header X-Sig"), ("", "missing"), ("bm90IGl0", "does not match")],
)
def test_verify_hmac_rejects(provided, message):
    with pytest.raises(SignatureError, match=message):
        signatures.verify_hmac(BODY, provided, [b"secret-k"], encoding="base64", header="X-Sig")


def test_rotation_accepts_any_configured_secret_and_never_echoes_it():
    signatures.verify_hmac(BODY, b64(b"old", BODY), [b"new", b"old"], encoding="base64", header="X")
    with pytest.raises(SignatureError) as info:
        signatures.verify_hmac(BODY, b64(b"other", BODY), [b"new-secret"], encoding="base64", header="X")
    assert "new-secret" not in str(info.value) and b64(b"new-secret", BODY) not in str(info.value)


def test_timestamped_hmac_accepts_fresh_and_rejects_stale_or_future():
    t = int(NOW.timestamp()) - 10
    sig = hmac.new(b"k", f"{t}.".encode() + BODY, hashlib.sha256).hexdigest()
    header = f"t={t},v1=deadbeef,v1={sig}"
    assert signatures.verify_timestamped_hmac(BODY, header, [b"k"], now=NOW, tolerance=300, header="S") == t
    stale = int(NOW.timestamp()) - 301
    sig = hmac.new(b"k", f"{stale}.".encode() + BODY, hashlib.sha256).hexdigest()
    with pytest.raises(SignatureError, match="stale"):
        signatures.verify_timestamped_hmac(
            BODY, f"t={stale},v1={sig}", [b"k"], now=NOW, tolerance=300, header="S"
        )
    with pytest.raises(SignatureError, match="malformed"):
        signatures.verify_timestamped_hmac(BODY, "v1=abc", [b"k"], now=NOW, tolerance=300, header="S")


def test_standard_webhooks_scheme():
    key = b"standard-key-bytes"
    secret = "whsec_" + base64.b64encode(key).decode()
    ts = str(int(NOW.timestamp()))
    sig = b64(key, f"msg_1.{ts}.".encode() + BODY)
    signatures.verify_standard_webhook(
        BODY, msg_id="msg_1", timestamp=ts, signature=f"v1,bad v1,{sig}", secrets=[secret], now=NOW
    )
    with pytest.raises(SignatureError, match="does not match"):
        signatures.verify_standard_webhook(
            BODY + b" ", msg_id="msg_1", timestamp=ts, signature=f"v1,{sig}", secrets=[secret], now=NOW
        )
    with pytest.raises(SignatureError, match="missing header"):
        signatures.verify_standard_webhook(
            BODY, msg_id=None, timestamp=ts, signature=f"v1,{sig}", secrets=[secret], now=NOW
        )
