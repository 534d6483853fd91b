"""A memo scoped to one `Mapper.map` call: work the getters and transforms of a record share.

`Mapper.map` opens a scope; inside it `remember(key, compute, *args)` computes a value once
(an index of a list for `[k=v]` filters, a parsed URL query). Outside a scope nothing
is remembered, so a getter called on its own always reads the data afresh. Nothing
outlives the call: the payload may change between calls.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from contextvars import ContextVar, Token
from typing import Any, TypeVar, TypeVarTuple

__all__ = ["close", "open_scope", "remember"]

Args = TypeVarTuple("Args")
T = TypeVar("T")

_CURRENT: ContextVar[dict[Hashable, Any] | None] = ContextVar("hub_mapping_memo", default=None)


def open_scope() -> Token[dict[Hashable, Any] | None]:
    """Start a fresh memo (for one record); pass the token to `close`."""
    return _CURRENT.set({})


def close(token: Token[dict[Hashable, Any] | None]) -> None:
    """End the memo opened with `token`, restoring the one before it."""
    _CURRENT.reset(token)


def remember(key: Hashable, compute: Callable[[*Args], T], *args: *Args) -> T:
    """`compute(*args)`, once per key within the current scope (every time outside one)."""
    memo = _CURRENT.get()
    if memo is None:
        return compute(*args)
    try:
        value: T = memo[key]
    except KeyError:
        value = memo[key] = compute(*args)
    return value
