"""A Lua script queued on pipelines as a bare EVALSHA.

redis-py's `Script` on a pipeline sends `SCRIPT EXISTS` before every `execute()`: one more
round trip per webhook on the ingress hot path. This helper queues `EVALSHA` only; when the
server does not know the script (first use, or after a restart without it) the whole
pipeline fails with NOSCRIPT before any call ran, so the caller loads it and sends again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError

__all__ = ["NoScriptError", "PipelinedScript"]


class PipelinedScript:
    """`queue(pipe, keys, args)` adds one EVALSHA; `load(client)` / `aload(client)` on NOSCRIPT."""

    def __init__(self, source: str) -> None:
        self.source = source
        # The server names scripts by SHA-1 of their source (not a security use).
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    def queue(self, pipe: Any, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Stage the call on `pipe` (no round trip); returns what `pipe.evalsha` returns."""
        return pipe.evalsha(self.sha, len(keys), *keys, *args)

    def load(self, client: Any) -> None:
        client.script_load(self.source)

    async def aload(self, client: Any) -> None:
        await client.script_load(self.source)
