"""The ingress benchmark's ceiling: a bare ASGI app that reads the body and answers 200 at once.

Served by uvicorn exactly like `crmhub serve` (same loop, same HTTP implementation, access log
off), so the ratio of the hub's ingress to this is what signature checking, parsing and the
Redis round trip cost on top of HTTP itself.

    python -m uvicorn noop_app:app --app-dir benchmarks --port 8001
"""

from __future__ import annotations

from typing import Any

_BODY = b'{"status":"accepted"}'
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    more = True
    while more:  # drain the request body, as the ingress does
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})
