"""Every Redis key the hub uses, in one place (dramatiq's own keys live under `dramatiq:`)."""

from __future__ import annotations

__all__ = [
    "DEDUPE_TTL_SECONDS",
    "EVENTS_QUEUE",
    "NAMESPACE",
    "POLLS_QUEUE",
    "counters",
    "cursor",
    "dedupe",
    "delivery_queue",
    "dlq_index",
    "dlq_item",
    "event",
    "events_by_connector",
    "events_by_status",
    "events_index",
    "latency",
    "poll_lock",
    "poll_state",
    "retry_schedule",
    "scheduler_lock",
]

NAMESPACE = "crmhub"
#: The dramatiq queue that `process_event` consumes.
EVENTS_QUEUE = "events"
#: Provider delivery ids are remembered this long (senders retry for up to 3 days).
DEDUPE_TTL_SECONDS = 7 * 24 * 3600


def event(event_id: str) -> str:
    """Hash: one event's raw request, status, timestamps, mapping version, error."""
    return f"{NAMESPACE}:event:{event_id}"


def events_index() -> str:
    """Sorted set: every event id by received time (ms)."""
    return f"{NAMESPACE}:events"


def events_by_status(status: str) -> str:
    """Sorted set: event ids with this status, by last update (ms)."""
    return f"{NAMESPACE}:events:status:{status}"


def events_by_connector(connector: str) -> str:
    """Sorted set: event ids of one connector instance, by received time (ms)."""
    return f"{NAMESPACE}:events:connector:{connector}"


def dedupe(connector: str, source_id: str) -> str:
    """String: the hub event id already stored for this provider delivery."""
    return f"{NAMESPACE}:dedupe:{connector}:{source_id}"


def delivery_queue(destination: str) -> str:
    """The dramatiq queue (and actor name) that delivers to one destination."""
    return f"deliver.{destination}"


def retry_schedule() -> str:
    """Sorted set: encoded dramatiq messages waiting for a retry, by due time (ms)."""
    return f"{NAMESPACE}:retry"


def dlq_index() -> str:
    """Sorted set: dead-lettered delivery ids by time of death (ms)."""
    return f"{NAMESPACE}:dlq"


def dlq_item(item_id: str) -> str:
    """Hash: a dead-lettered message, its destination, event and final error."""
    return f"{NAMESPACE}:dlq:{item_id}"


def counters() -> str:
    """Hash: cluster-wide counters (processed, delivered, failed, dead, ...)."""
    return f"{NAMESPACE}:metrics:counters"


def latency() -> str:
    """Hash: end-to-end latency histogram buckets (`le` -> count, plus sum and count)."""
    return f"{NAMESPACE}:metrics:latency"


#: The dramatiq queue that runs connector polls.
POLLS_QUEUE = "polls"


def cursor(connector: str) -> str:
    """String (JSON): where the next poll of a connector instance starts."""
    return f"{NAMESPACE}:cursor:{connector}"


def poll_state(connector: str) -> str:
    """Hash: a polling instance's next due time, last run, last error, events found."""
    return f"{NAMESPACE}:poll:{connector}"


def poll_lock(connector: str) -> str:
    """String: held while one poll of the instance runs (no two at once)."""
    return f"{NAMESPACE}:poll-lock:{connector}"


def scheduler_lock() -> str:
    """String: the token of the one active scheduler."""
    return f"{NAMESPACE}:scheduler"


def rate_log(account: str) -> str:
    """List: reserved request slot times (ms) of one CRM account, newest first."""
    return f"{NAMESPACE}:rate:{account}:log"


def rate_state(account: str) -> str:
    """Hash: a CRM account's slow-down factor, last 429 time, blocked-until, 429 count."""
    return f"{NAMESPACE}:rate:{account}:state"


def receipts(destination: str, kind: str) -> str:
    """Hash: identity -> CRM id, for one destination and object kind."""
    return f"{NAMESPACE}:receipts:{destination}:{kind}"


def paused(account: str) -> str:
    """String: why a destination account is paused (credentials refused)."""
    return f"{NAMESPACE}:paused:{account}"


def identity_lock(destination: str, kind: str, identity: str) -> str:
    """String: held while one worker finds-then-creates this object in a CRM without upserts."""
    return f"{NAMESPACE}:lock:{destination}:{kind}:{identity}"
