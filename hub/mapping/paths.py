"""Source paths (`a.b[0].c`, `items[*].sku`, `answers[field.ref=email].email`) compiled to getters."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

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


Step = Callable[[Any], Any]


def _key_step(key: str) -> Step:
    def step(node: Any) -> Any:
        if isinstance(node, dict):
            return node.get(key)
        return _MISSING

    return step


def _index_step(index: int) -> Step:
    def step(node: Any) -> Any:
        if isinstance(node, list) and -len(node) <= index < len(node):
            return node[index]
        return _MISSING

    return step


def _filter_step(getter: Getter, expected: str) -> Step:
    def step(node: Any) -> Any:
        if not isinstance(node, list):
            return _MISSING
        for item in node:
            value = getter(item, item)
            if value is not None and str(value) == expected:
                return item
        return _MISSING

    return step


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
    steps: list[Step | None] = []  # None marks a [*] fan-out
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
            steps.append(_key_step(token.group("key").strip()))
        elif token.group("qkey") is not None:
            steps.append(_key_step(token.group("qkey")))
        elif token.group("index") is not None:
            steps.append(_index_step(int(token.group("index"))))
        elif token.group("star"):
            steps.append(None)
        else:
            field_getter = compile_path(token.group("fpath").strip())
            steps.append(_filter_step(field_getter, token.group("fvalue").strip()))
        previous_dot = False
    if previous_dot:
        raise PathSyntaxError(f"invalid path {path!r}: ends with '.'")
    walk = _chain(steps)
    if from_root:
        return lambda node, root: walk(root)
    return lambda node, root: walk(node)


def _chain(steps: list[Step | None]) -> Step:
    if None not in steps:
        plain = [s for s in steps if s is not None]
        if len(plain) == 1:
            return plain[0]

        def walk(node: Any) -> Any:
            for step in plain:
                node = step(node)
                if node is None:
                    return None
            return node

        return walk
    star = steps.index(None)
    head = _chain(steps[:star]) if star else (lambda node: node)
    tail = _chain(steps[star + 1 :]) if star + 1 < len(steps) else (lambda node: node)

    def fan_out(node: Any) -> Any:
        items = head(node)
        if not isinstance(items, list):
            return None
        values: list[Any] = []
        for item in items:
            value = tail(item)
            if isinstance(value, list) and star + 1 < len(steps) and None in steps[star + 1 :]:
                values.extend(v for v in value if not is_empty(v))
            elif not is_empty(value):
                values.append(value)
        return values

    return fan_out
