"""`when:` conditions compiled to predicates: exists / blank / equals / in / all / any / not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hub.mapping.paths import compile_path, is_empty

__all__ = ["Predicate", "compile_condition"]

Predicate = Callable[[Any, Any], bool]
"""`predicate(node, root) -> bool`."""

_FORMS = "{exists: p}, {blank: p}, {path: p, equals: v}, {path: p, in: [..]}, {all|any: [..]}, {not: ..}"


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def compile_condition(spec: Any) -> Predicate:
    """Compile a condition; raise ValueError naming the accepted forms if malformed."""
    if not isinstance(spec, dict) or not spec:
        raise ValueError(f"a condition is a map: {_FORMS}")
    keys = set(spec)
    if keys == {"exists"}:
        getter = compile_path(str(spec["exists"]))

        def exists(node: Any, root: Any) -> bool:
            value = getter(node, root)
            return value is not None and not is_empty(value)

        return exists
    if keys == {"blank"}:
        getter = compile_path(str(spec["blank"]))

        def blank(node: Any, root: Any) -> bool:
            value = getter(node, root)
            return value is None or is_empty(value)

        return blank
    if keys == {"path", "equals"}:
        getter = compile_path(str(spec["path"]))
        expected = _as_text(spec["equals"])

        def equals(node: Any, root: Any) -> bool:
            value = getter(node, root)
            return value is not None and _as_text(value) == expected

        return equals
    if keys == {"path", "in"}:
        if not isinstance(spec["in"], list):
            raise ValueError("`in` takes a list of values")
        getter = compile_path(str(spec["path"]))
        allowed = frozenset(_as_text(v) for v in spec["in"])

        def within(node: Any, root: Any) -> bool:
            value = getter(node, root)
            return value is not None and _as_text(value) in allowed

        return within
    if keys in ({"all"}, {"any"}):
        (key,) = keys
        parts = spec[key]
        if not isinstance(parts, list) or not parts:
            raise ValueError(f"`{key}` takes a non-empty list of conditions")
        predicates = [compile_condition(p) for p in parts]
        return _all(predicates) if key == "all" else _any(predicates)
    if keys == {"not"}:
        inner = compile_condition(spec["not"])
        return lambda node, root: not inner(node, root)
    raise ValueError(f"unknown condition keys {sorted(keys)}: use {_FORMS}")


def _all(predicates: list[Predicate]) -> Predicate:
    def every(node: Any, root: Any) -> bool:
        for predicate in predicates:
            if not predicate(node, root):
                return False
        return True

    return every


def _any(predicates: list[Predicate]) -> Predicate:
    def some(node: Any, root: Any) -> bool:
        for predicate in predicates:
            if predicate(node, root):
                return True
        return False

    return some
