"""Source paths (`a.b[0].c`, `items[*].sku`, `answers[field.ref=email].email`) compiled to getters."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from hub.mapping.memo import remember

__all__ = ["Getter", "PathSyntaxError", "compile_path", "is_empty"]

Getter = Callable[[Any, Any], Any]
"""`getter(node, root)`: the value at the path under `node` (`$.` paths read `root`)."""

_MISSING = None
_TOKEN = re.compile(
    r"""
      (?P<key>[^.\[\]]+)                 # a plain key
    | \[(?P<index>-?\d+)\]               # [0]
    | \[(?P<star>\*)\]                   # [*]
    | \[(?P<fpath>[^=\]]+)=(?P<fvalue>[^\]]*)\]   # [field.ref=email]
    | \["(?P<qkey>[^"]*)"\]              # ["key with.dots"]
    | (?P<dot>\.)
    """,
    re.VERBOSE,
)


class PathSyntaxError(ValueError):
    """A source path does not follow the path syntax."""


def is_empty(value: Any) -> bool:
    """None, blank strings and empty containers count as "no value"."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | dict | tuple | set | frozenset):
        return len(value) == 0
    return False


_KEY, _INDEX, _FILTER = "key", "index", "filter"
_Op = tuple[str, Any]
"""One step of a path: (_KEY, name), (_INDEX, position) or (_FILTER, `_Filter`)."""


class _Filter:
    """`[fpath=expected]`: the first element whose value at `fpath` reads as `expected`.

    Each list is indexed by `fpath` once per mapping call (see `memo`), so the many
    `answers[field.ref=...]` paths of a spec cost one scan of `answers` per record.
    """

    __slots__ = ("expected", "fpath", "getter")

    def __init__(self, fpath: str, expected: str) -> None:
        self.fpath = fpath
        self.expected = expected
        self.getter = compile_path(fpath)

    def pick(self, items: list[Any]) -> Any:
        _, by_value = remember((_FILTER, id(items), self.fpath), self._index, items)
        return by_value.get(self.expected, _MISSING)

    def _index(self, items: list[Any]) -> tuple[list[Any], dict[str, Any]]:
        by_value: dict[str, Any] = {}
        for item in items:
            value = self.getter(item, item)
            if value is not None:
                by_value.setdefault(str(value), item)
        return items, by_value  # the list is kept so its id stays unique in the memo


def _tokens(path: str) -> list[re.Match[str]]:
    tokens: list[re.Match[str]] = []
    pos = 0
    while pos < len(path):
        match = _TOKEN.match(path, pos)
        if match is None or match.end() == pos:
            raise PathSyntaxError(f"invalid path {path!r} at character {pos + 1}")
        tokens.append(match)
        pos = match.end()
    return tokens


def compile_path(path: str) -> Getter:
    """Compile a dot path once into a getter; raise PathSyntaxError if malformed.

    `[*]` fans out: the rest of the path is applied to each element and the non-empty
    results are returned as a list.
    """
    if not isinstance(path, str):
        raise PathSyntaxError(f"a path is text, not {type(path).__name__}")
    text = path.strip()
    if not text:
        raise PathSyntaxError("empty path")
    from_root = False
    if text == "$":
        return lambda node, root: root
    if text.startswith("$."):
        from_root, text = True, text[2:]
    return _getter(_segments(path, text), from_root)


def _segments(path: str, text: str) -> list[_Op | None]:
    """The path's steps in order; None marks a `[*]` fan-out."""
    segments: list[_Op | None] = []
    previous_dot = True
    for token in _tokens(text):
        if token.group("dot"):
            if previous_dot:
                raise PathSyntaxError(f"invalid path {path!r}: empty segment")
            previous_dot = True
            continue
        if token.group("key") is not None:
            if not previous_dot:
                raise PathSyntaxError(f"invalid path {path!r}: missing '.' before a key")
            segments.append((_KEY, token.group("key").strip()))
        elif token.group("qkey") is not None:
            segments.append((_KEY, token.group("qkey")))
        elif token.group("index") is not None:
            segments.append((_INDEX, int(token.group("index"))))
        elif token.group("star"):
            segments.append(None)
        else:
            fpath, expected = token.group("fpath").strip(), token.group("fvalue").strip()
            segments.append((_FILTER, _Filter(fpath, expected)))
        previous_dot = False
    if previous_dot:
        raise PathSyntaxError(f"invalid path {path!r}: ends with '.'")
    return segments


def _getter(segments: list[_Op | None], from_root: bool) -> Getter:
    ops = [s for s in segments if s is not None]
    if len(ops) < len(segments):
        return _fan_out(segments, from_root)
    if all(kind == _KEY for kind, _ in ops):
        return _keys_getter(tuple(name for _, name in ops), from_root)
    return _ops_getter(tuple(ops), from_root)


def _keys_getter(keys: tuple[str, ...], from_root: bool) -> Getter:
    """A path of plain keys (the common case): each read from a dict, None once one is missing."""

    def get(node: Any, root: Any) -> Any:
        if from_root:
            node = root
        for key in keys:
            if not isinstance(node, dict):
                return _MISSING
            node = node.get(key)
        return node

    return get


def _ops_getter(ops: tuple[_Op, ...], from_root: bool) -> Getter:
    """A path of keys, indexes and filters, walked in one loop; None once a step finds nothing."""

    def get(node: Any, root: Any) -> Any:
        if from_root:
            node = root
        for kind, arg in ops:
            if kind is _KEY:
                node = node.get(arg) if isinstance(node, dict) else _MISSING
            elif not isinstance(node, list):
                return _MISSING
            elif kind is _FILTER:
                node = arg.pick(node)
            else:
                node = node[arg] if -len(node) <= arg < len(node) else _MISSING
            if node is None:
                return None
        return node

    return get


def _fan_out(segments: list[_Op | None], from_root: bool) -> Getter:
    """`head[*]tail`: `tail` of each element of the list at `head`, the non-empty ones."""
    star = segments.index(None)
    rest = segments[star + 1 :]
    head = _getter(segments[:star], from_root) if star else None
    tail = _getter(rest, False) if rest else None
    nested = None in rest

    def fan_out(node: Any, root: Any) -> Any:
        items = head(node, root) if head is not None else (root if from_root else node)
        if not isinstance(items, list):
            return None
        values: list[Any] = []
        for item in items:
            value = tail(item, item) if tail is not None else item
            if isinstance(value, list) and nested:
                values.extend(v for v in value if not is_empty(v))
            elif not is_empty(value):
                values.append(value)
        return values

    return fan_out
