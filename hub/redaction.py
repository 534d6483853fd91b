"""Keeping secrets and personal data out of logs and stored error messages.

`redact(text)` masks email addresses, phone numbers, bearer tokens, signature-like strings
(long hex / base64) and every secret value the loaded config holds. `RedactingFilter` applies
it to every log record; the CLI installs it on the root logger, and the event log applies
`redact` to every error it stores.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, SecretStr

__all__ = ["RedactingFilter", "install", "redact", "register_secrets", "secrets_of"]

MASK = "[redacted]"
_PATTERNS = [
    re.compile(r"(?i)\bbearer\s+[^\s\"',;]+"),
    re.compile(
        r"(?i)\b(bearer|token|api[-_ ]?key|api-token|x-api-token|authorization)([=:\s\"']+)[^\s\"',;]+"
    ),
    re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}"),
    re.compile(r"\+\d[\d \-().]{6,18}\d"),
    re.compile(r"\b[0-9a-fA-F]{40,}\b"),
    re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{40,}={0,2}"),
]
_secrets: set[str] = set()
_lock = threading.Lock()


def register_secrets(values: Iterable[str]) -> None:
    """Mask these exact values wherever they appear (values shorter than 4 are ignored)."""
    with _lock:
        _secrets.update(v for v in values if v and len(v) >= 4)


def secrets_of(model: Any) -> list[str]:
    """Every SecretStr value inside a settings model (recursively)."""
    found: list[str] = []
    if isinstance(model, SecretStr):
        return [model.get_secret_value()]
    if isinstance(model, BaseModel):
        for name in type(model).model_fields:
            found.extend(secrets_of(getattr(model, name)))
    elif isinstance(model, list | tuple | set | frozenset):
        for item in model:
            found.extend(secrets_of(item))
    elif isinstance(model, dict):
        for item in model.values():
            found.extend(secrets_of(item))
    return found


def redact(text: str) -> str:
    """`text` with secrets, tokens, signatures, emails and phone numbers masked."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, MASK)
    text = _PATTERNS[0].sub(f"Bearer {MASK}", text)
    text = _PATTERNS[1].sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    for pattern in _PATTERNS[2:]:
        text = pattern.sub(MASK, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and exception text) through `redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg, record.args = redact(message), ()
        if record.exc_info:
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, redact(formatted)
        return True


def install() -> None:
    """Put the filter on every handler of the root logger (call after logging is configured)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
