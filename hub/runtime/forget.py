"""`forget`: erase what the hub holds about one email address (right to erasure).

Removed: events in the log whose stored request or data mention the address, dead letters
that mention it or belong to those events, parked retries that mention it, and the write
receipts whose identity holds it (plus `title:<her CRM contact id>:...` deal receipts). The
CRMs keep their own records: erase the person there too. Deliveries already on a dramatiq
queue cannot be pulled out from under the workers; they are counted (`queued`) so the caller
can run `forget` again once they are delivered.

Matching is case-insensitive and on whole addresses (`ann@x.com` does not match
`joann@x.com` or `ann@x.com.au`), in the text as stored, JSON-unescaped (`\\u0040`, `\\n`) and
URL-decoded (`ann%40x.com`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from hub.delivery.receipts import Receipts
from hub.runtime import keys
from hub.runtime.eventlog import EventLog

__all__ = ["ForgetReport", "forget", "mentions"]

log = logging.getLogger(__name__)

#: Ids and hashes read per round trip while scanning.
BATCH = 500

_JSON_ESCAPE = re.compile(r'\\(u[0-9a-fA-F]{4}|["\\/bfnrt])')
_JSON_SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


@dataclass(frozen=True)
class ForgetReport:
    """What `forget` removed, by kind (receipts by destination id)."""

    events: int = 0
    dead_letters: int = 0
    retries: int = 0
    receipts: Mapping[str, int] = field(default_factory=dict)
    #: Deliveries still on a dramatiq queue that mention the address (not removed).
    queued: int = 0

    @property
    def total_receipts(self) -> int:
        return sum(self.receipts.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "dead_letters": self.dead_letters,
            "retries": self.retries,
            "receipts": dict(self.receipts),
            "queued": self.queued,
        }


def _json_unescape(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        return chr(int(code[1:], 16)) if code[0] == "u" else _JSON_SIMPLE[code]

    return _JSON_ESCAPE.sub(one, text)


class _Address:
    """One email address, found case-insensitively and whole in stored text."""

    def __init__(self, email: str) -> None:
        address = email.strip().lower()
        if "@" not in address or any(c.isspace() for c in address):
            raise ValueError("give one email address, like ann@example.com")
        # Not preceded by a character that could extend the local part, nor followed by one
        # that could extend the domain.
        self._pattern = re.compile(rf"(?<![\w.%+-]){re.escape(address)}(?![\w-]|\.\w)")

    def __call__(self, value: bytes | str | None) -> bool:
        if value is None:
            return False
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if self._pattern.search(text.lower()):
            return True
        if "\\" in text and self._pattern.search(_json_unescape(text).lower()):
            return True
        return "%" in text and self._pattern.search(unquote_plus(text).lower()) is not None


def mentions(value: bytes | str | None, email: str) -> bool:
    """Whether stored text mentions the address (how `forget` decides).

    Example::

        mentions(b'{"email": "Ann.Lee@Example.com"}', "ann.lee@example.com")  # True
    """
    return _Address(email)(value)


def _members(client: Any, index: str) -> Iterator[list[str]]:
    """A sorted set's members in batches (read it all before changing it)."""
    start = 0
    while chunk := client.zrange(index, start, start + BATCH - 1):
        yield [m.decode() for m in chunk]
        start += BATCH


def _forget_events(client: Any, found: _Address) -> set[str]:
    matched: dict[str, tuple[bytes | None, bytes | None]] = {}
    for ids in _members(client, keys.events_index()):
        pipe = client.pipeline(transaction=False)
        for event_id in ids:
            pipe.hgetall(keys.event(event_id))
        for event_id, data in zip(ids, pipe.execute(), strict=True):
            if any(found(v) for v in data.values()):
                matched[event_id] = (data.get(b"connector"), data.get(b"source_id"))
    ids = list(matched)
    for start in range(0, len(ids), BATCH):
        EventLog(client).delete(ids[start : start + BATCH])
    # A provider id holding the address (a dedupe key's name) goes too; other dedupe keys stay,
    # so a provider's retry of a forgotten delivery is still not stored again.
    stale = [
        keys.dedupe(connector.decode(), source_id.decode())
        for connector, source_id in matched.values()
        if connector and source_id and found(source_id)
    ]
    if stale:
        client.delete(*stale)
    return set(ids)


def _forget_dead_letters(client: Any, found: _Address, events: set[str]) -> int:
    doomed = []
    for ids in _members(client, keys.dlq_index()):
        pipe = client.pipeline(transaction=False)
        for item_id in ids:
            pipe.hmget(keys.dlq_item(item_id), "payload", "reason", "event_id")
        for item_id, (payload, reason, event_id) in zip(ids, pipe.execute(), strict=True):
            if found(payload) or found(reason) or (event_id and event_id.decode() in events):
                doomed.append(item_id)
    if doomed:
        pipe = client.pipeline(transaction=True)
        pipe.delete(*(keys.dlq_item(i) for i in doomed))
        pipe.zrem(keys.dlq_index(), *doomed)
        pipe.execute()
    return len(doomed)


def _forget_retries(client: Any, found: _Address) -> int:
    doomed = [member for member, _ in client.zscan_iter(keys.retry_schedule(), count=BATCH) if found(member)]
    return int(client.zrem(keys.retry_schedule(), *doomed)) if doomed else 0


def _forget_receipts(client: Any, found: _Address, destination: str) -> int:
    receipts = Receipts(client, destination)
    prefix = keys.receipts(destination, "")
    by_kind: dict[str, list[str]] = {}
    contact_ids: set[str] = set()
    for key in client.scan_iter(match=keys.receipts(destination, "*"), count=BATCH):
        kind = key.decode().removeprefix(prefix)
        for identity, crm_id in client.hscan_iter(key, count=BATCH):
            if found(identity):
                by_kind.setdefault(kind, []).append(identity.decode())
                if kind == "contact":
                    contact_ids.add(crm_id.decode())
    if contact_ids:
        # Deals matched by title carry her CRM contact id: `title:<contact id>:<title>`.
        for identity, _ in client.hscan_iter(keys.receipts(destination, "deal"), count=BATCH):
            text = identity.decode("utf-8", "replace")
            if any(text.startswith(f"title:{c}:") for c in contact_ids):
                by_kind.setdefault("deal", []).append(text)
    return sum(receipts.forget(kind, sorted(set(ids))) for kind, ids in by_kind.items())


def _count_queued(client: Any, found: _Address, destinations: list[str]) -> int:
    count = 0
    for destination in destinations:
        messages = f"dramatiq:{keys.delivery_queue(destination)}.msgs"
        count += sum(1 for _, body in client.hscan_iter(messages, count=BATCH) if found(body))
    return count


def forget(client: Any, email: str, destinations: Iterable[str]) -> ForgetReport:
    """Erase what the hub holds about `email` (see the module docstring); what was removed.

    Args:
        client: a sync `redis.Redis`.
        email: the address, in any case.
        destinations: destination ids whose write receipts to search.

    Raises:
        ValueError: `email` is not an email address.
    """
    found = _Address(email)
    targets = list(dict.fromkeys(destinations))
    events = _forget_events(client, found)
    report = ForgetReport(
        events=len(events),
        dead_letters=_forget_dead_letters(client, found, events),
        retries=_forget_retries(client, found),
        receipts={d: _forget_receipts(client, found, d) for d in targets},
        queued=_count_queued(client, found, targets),
    )
    log.info(
        "forget: removed %d events, %d dead letters, %d retries, %d receipts; %d still queued",
        report.events,
        report.dead_letters,
        report.retries,
        report.total_receipts,
        report.queued,
    )
    return report
