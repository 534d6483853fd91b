"""The end of a run: every acknowledged event delivered exactly once (its contact, deals and
notes each present once in the CRM, linked) or dead-lettered with a reason, and nothing
left behind in Redis (no parked retry, no `failed` event, no message stranded).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import redis

from chaos.crm import IndexedFakeHubSpot
from chaos.payloads import Webhook
from chaos.senders import Ack
from hub.runtime import keys
from hub.runtime.admin import dead_letters
from hub.runtime.eventlog import STATUSES

__all__ = ["Leftovers", "Outcome", "check_crm", "event_statuses", "leftovers"]

_KEY = "crmhub_external_id"


@dataclass
class Outcome:
    """What the CRM holds against what the acknowledged events must produce."""

    expected: Counter[str] = field(default_factory=Counter)
    found: Counter[str] = field(default_factory=Counter)
    missing: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    unexpected: Counter[str] = field(default_factory=Counter)
    missing_links: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)


def event_statuses(client: redis.Redis, event_ids: list[str]) -> dict[str, tuple[str, str]]:
    """{event id: (status, error)} from the event log."""
    out: dict[str, tuple[str, str]] = {}
    for start in range(0, len(event_ids), 1000):
        part = event_ids[start : start + 1000]
        pipe = client.pipeline(transaction=False)
        for event_id in part:
            pipe.hmget(keys.event(event_id), "status", "error")
        for event_id, (status, error) in zip(part, pipe.execute(), strict=True):
            out[event_id] = ((status or b"").decode(), (error or b"").decode("utf-8", "replace"))
    return out


def _by(records: list[dict[str, Any]], prop: str, *, fold: bool = False) -> dict[str, list[str]]:
    index: dict[str, list[str]] = defaultdict(list)
    for record in records:
        value = record.get(prop)
        if value:
            index[value.lower() if fold else value].append(str(record["id"]))
    return index


def check_crm(
    fake: IndexedFakeHubSpot, webhooks: list[Webhook], acks: dict[int, Ack], dead: set[str]
) -> Outcome:
    """Count each acknowledged event's contact, deals and notes in the fake.

    An event in `dead` (dead-lettered) may have written part of its objects: only its
    duplicates count, not what it is missing.
    """
    outcome = Outcome()
    held = {
        "contacts": _by(fake.contacts, "email", fold=True),
        "deals": _by(fake.deals, _KEY),
        "notes": _by(fake.notes, _KEY),
    }
    links = fake.link_index()
    wanted: dict[str, set[str]] = {kind: set() for kind in held}
    for index, ack in acks.items():
        expected = webhooks[index].expected
        for kind, names in (
            ("contacts", [expected.email]),
            ("deals", expected.deal_keys),
            ("notes", expected.note_keys),
        ):
            for name in names:
                wanted[kind].add(name)
                outcome.expected[kind] += 1
                count = len(held[kind].get(name, ()))
                outcome.found[kind] += min(count, 1)
                if count == 0 and ack.event_id not in dead:
                    outcome.missing[kind] += 1
                    if len(outcome.examples) < 5:
                        outcome.examples.append(f"missing {kind} {name} (event {ack.event_id})")
                if count > 1:
                    outcome.duplicates[kind] += count - 1
                    if len(outcome.examples) < 5:
                        outcome.examples.append(f"{count} {kind} for {name} (event {ack.event_id})")
        if ack.event_id in dead:
            continue
        _check_links(links, held, expected.email, expected.deal_keys, expected.note_keys, outcome)
    for kind, index_ in held.items():
        outcome.unexpected[kind] = sum(len(ids) for name, ids in index_.items() if name not in wanted[kind])
    return outcome


def _check_links(
    links: dict[tuple[str, str, str], set[str]],
    held: dict[str, dict[str, list[str]]],
    email: str,
    deal_keys: tuple[str, ...],
    note_keys: tuple[str, ...],
    outcome: Outcome,
) -> None:
    contact_ids = held["contacts"].get(email) or []
    if len(contact_ids) != 1:
        return
    (contact_id,) = contact_ids
    deal_ids = [i for k in deal_keys for i in held["deals"].get(k, ())]
    for deal_id in deal_ids:
        if contact_id not in links[("deals", deal_id, "contacts")]:
            outcome.missing_links["deal->contact"] += 1
    for key in note_keys:
        for note_id in held["notes"].get(key, ()):
            if contact_id not in links[("notes", note_id, "contacts")]:
                outcome.missing_links["note->contact"] += 1
            if deal_ids and not set(deal_ids) & links[("notes", note_id, "deals")]:
                outcome.missing_links["note->deal"] += 1


@dataclass
class Leftovers:
    """What is still in Redis at the end (all should be zero)."""

    retry_parked: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    queued: dict[str, int] = field(default_factory=dict)
    dramatiq_dead: int = 0
    dramatiq_delayed: int = 0
    unacked: int = 0
    dead_letters: list[dict[str, Any]] = field(default_factory=list)


def leftovers(client: redis.Redis, live_broker_ids: list[str], queues: tuple[str, ...]) -> Leftovers:
    found = Leftovers(retry_parked=int(client.zcard(keys.retry_schedule())))
    pipe = client.pipeline(transaction=False)
    for status in STATUSES:
        pipe.zcard(keys.events_by_status(status))
    found.statuses = dict(zip(STATUSES, (int(n) for n in pipe.execute()), strict=True))
    for queue in queues:
        found.queued[queue] = int(client.llen(f"dramatiq:{queue}"))
        found.dramatiq_dead += int(client.zcard(f"dramatiq:{queue}.XQ"))
        found.dramatiq_delayed += int(client.llen(f"dramatiq:{queue}.DQ"))
        found.unacked += sum(int(client.scard(f"dramatiq:__acks__.{b}.{queue}")) for b in live_broker_ids)
    found.dead_letters = dead_letters(client, limit=100_000)
    return found
