"""Pausing a destination whose credentials were refused: its queue is kept, deliveries wait,
the reason shows in `crmhub events` and metrics, and it resumes when the credentials change
(the account key changes), on `crmhub destinations resume`, or when a probe succeeds."""

from __future__ import annotations

from typing import Any

from hub.runtime import keys

__all__ = ["PROBE_INTERVAL", "clear_pause", "pause", "pause_reason", "take_probe"]

#: Seconds between probe deliveries to a paused destination.
PROBE_INTERVAL = 60


def pause(client: Any, account: str, reason: str) -> None:
    client.set(keys.paused(account), reason)


def pause_reason(client: Any, account: str) -> str | None:
    value = client.get(keys.paused(account))
    return value.decode() if value is not None else None


def clear_pause(client: Any, account: str) -> bool:
    return bool(client.delete(keys.paused(account)))


def take_probe(client: Any, account: str) -> bool:
    """True for at most one delivery per PROBE_INTERVAL: it tries the CRM despite the pause."""
    return bool(client.set(f"{keys.paused(account)}:probe", "1", nx=True, ex=PROBE_INTERVAL))
