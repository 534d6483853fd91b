"""Operations on the event log and dead letters: replay, list, forget. Used by CLI and admin API."""

from __future__ import annotations

from typing import Any

from hub.runtime import keys
from hub.runtime.broker import encode_message
from hub.runtime.eventlog import EventLog, now_ms

__all__ = ["dead_letters", "replay_dead_letter", "replay_event"]


def replay_event(client: Any, event_id: str) -> bool:
    """Re-run an event from its stored raw request with the current mapping and flows."""
    log = EventLog(client)
    record = log.get(event_id, with_body=False)
    if record is None:
        return False
    msg_id, body = encode_message("process_event", keys.EVENTS_QUEUE, (event_id,))
    now = now_ms()
    pipe = client.pipeline(transaction=True)
    pipe.hset(
        keys.event(event_id), mapping={"status": "received", "updated_at": now, "error": "", "pending": 0}
    )
    pipe.zrem(keys.events_by_status(record.status), event_id)
    pipe.zadd(keys.events_by_status("received"), {event_id: now})
    pipe.hset(f"dramatiq:{keys.EVENTS_QUEUE}.msgs", msg_id, body)
    pipe.rpush(f"dramatiq:{keys.EVENTS_QUEUE}", msg_id)
    pipe.execute()
    return True


def dead_letters(client: Any, *, limit: int = 100) -> list[dict[str, Any]]:
    """Dead-lettered deliveries, newest first, with their final error."""
    items = []
    for raw_id in client.zrevrange(keys.dlq_index(), 0, limit - 1):
        item_id = raw_id.decode()
        stored = client.hgetall(keys.dlq_item(item_id))
        data = {k.decode(): v.decode("utf-8", "replace") for k, v in stored.items()}
        if not data:
            continue
        items.append(
            {
                "id": item_id,
                "event_id": data.get("event_id", ""),
                "destination": data.get("destination", ""),
                "flow": data.get("flow", ""),
                "reason": data.get("reason", ""),
                "died_at": int(data.get("died_at") or 0),
            }
        )
    return items


def replay_dead_letter(client: Any, item_id: str) -> bool:
    """Send a dead letter to its destination again (attempts start over); False if unknown."""
    data = client.hgetall(keys.dlq_item(item_id))
    if not data:
        return False
    fields = {k.decode(): v.decode() for k, v in data.items()}
    queue = keys.delivery_queue(fields["destination"])
    msg_id, body = encode_message(queue, queue, (fields["payload"], 0))
    now = now_ms()
    event_id = fields["event_id"]
    pipe = client.pipeline(transaction=True)
    pipe.hset(f"dramatiq:{queue}.msgs", msg_id, body)
    pipe.rpush(f"dramatiq:{queue}", msg_id)
    pipe.delete(keys.dlq_item(item_id))
    pipe.zrem(keys.dlq_index(), item_id)
    pipe.hincrby(keys.event(event_id), "pending", 1)
    pipe.hset(keys.event(event_id), mapping={"status": "mapped", "updated_at": now, "error": ""})
    pipe.zrem(keys.events_by_status("dead"), event_id)
    pipe.zadd(keys.events_by_status("mapped"), {event_id: now})
    pipe.execute()
    return True
