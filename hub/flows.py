"""Flows: Zapier-style `when <connector>.<event> [if <condition>] do <actions> to <destination>`.

```yaml
flows:
  - name: shopify orders become won deals
    when: shop.orders/create        # <connector instance id>.<event type>; * wildcards
    if: {field: deal.amount, op: gte, value: 100}
    do: [upsert_contact, upsert_deal, add_activity]
    to: crm
    tags: [shopify-buyer]
```
"""

from __future__ import annotations

import difflib
import fnmatch
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from hub.canonical import Bundle
from hub.errors import Issue
from hub.mapping.targets import resolve_target

__all__ = ["ACTIONS", "Flow", "load_flows", "matching_flows"]

#: Every action a flow may run, in the order they are applied to a destination.
ACTIONS = ("upsert_contact", "upsert_company", "upsert_deal", "add_activity", "add_tags")
_FLOW_KEYS = ("name", "when", "if", "do", "to", "tags", "pipeline", "stage")
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
_UNARY = ("exists", "blank")
_ALL_OPS = (*_OPS, "in", "contains", *_UNARY)
_FIRST = {"contact": "contacts", "company": "companies", "deal": "deals", "activity": "activities"}

Condition = Callable[[Bundle], bool]


@dataclass(frozen=True)
class Flow:
    """A validated flow."""

    name: str
    when: tuple[str, ...]
    actions: tuple[str, ...]
    to: str
    tags: frozenset[str] = frozenset()
    pipeline: str | None = None
    stage: str | None = None
    condition: Condition | None = None
    line: int | None = None

    def triggered_by(self, connector_id: str, event_type: str) -> bool:
        key = f"{connector_id}.{event_type}"
        return any(fnmatch.fnmatchcase(key, pattern) for pattern in self.when)

    def accepts(self, bundle: Bundle) -> bool:
        return self.condition is None or self.condition(bundle)


def matching_flows(flows: tuple[Flow, ...], connector_id: str, event_type: str) -> list[Flow]:
    """The flows whose trigger matches this event."""
    return [f for f in flows if f.triggered_by(connector_id, event_type)]


def _read_field(path: tuple[str, ...], obj: str) -> Callable[[Bundle], Any]:
    def read(bundle: Bundle) -> Any:
        items = getattr(bundle, _FIRST[obj])
        if not items:
            return None
        node: Any = items[0]
        for part in path:
            if node is None:
                return None
            node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
        return node

    return read


def _coerce(value: Any, like: Any) -> Any:
    if isinstance(like, Decimal) and not isinstance(value, Decimal):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return value
    return value


def compile_flow_condition(spec: Any) -> Condition:
    """Compile `{field, op, value}` (or `{all: [...]}` / `{any: [...]}`); ValueError if bad."""
    if isinstance(spec, dict) and set(spec) in ({"all"}, {"any"}):
        (key,) = spec
        parts = [compile_flow_condition(p) for p in spec[key] or []]
        if not parts:
            raise ValueError(f"`{key}` takes a non-empty list of conditions")
        combine = all if key == "all" else any
        return lambda bundle: combine(p(bundle) for p in parts)
    if not isinstance(spec, dict) or "field" not in spec or "op" not in spec:
        raise ValueError("a condition is {field: <canonical path>, op: <op>, value: <value>}")
    unknown = set(spec) - {"field", "op", "value"}
    if unknown:
        raise ValueError(f"unknown condition keys {sorted(unknown)}")
    target = resolve_target(str(spec["field"]))
    op = str(spec["op"])
    if op not in _ALL_OPS:
        close = difflib.get_close_matches(op, _ALL_OPS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown op {op!r}{hint}; use {', '.join(_ALL_OPS)}")
    read = _read_field(target.path, target.obj)
    if op in _UNARY:
        want_present = op == "exists"
        return lambda bundle: (read(bundle) not in (None, "", (), frozenset(), {})) == want_present
    if "value" not in spec:
        raise ValueError(f"op {op!r} needs a value")
    expected = spec["value"]
    if op == "in":
        if not isinstance(expected, list):
            raise ValueError("op 'in' takes a list value")
        allowed = {str(v) for v in expected}
        return lambda bundle: read(bundle) is not None and str(read(bundle)) in allowed
    if op == "contains":
        return lambda bundle: _contains(read(bundle), expected)
    compare = _OPS[op]

    def check(bundle: Bundle) -> bool:
        value = read(bundle)
        if value is None:
            return False
        try:
            return bool(compare(value, _coerce(expected, value)))
        except TypeError:
            return bool(compare(str(value), str(expected)))

    return check


def _contains(value: Any, expected: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return str(expected).lower() in value.lower()
    if isinstance(value, frozenset | set | tuple | list):
        return str(expected) in {str(v) for v in value}
    return False


def load_flows(
    raw: Any,
    *,
    file: str,
    connectors: Mapping[str, Any],
    destinations: Mapping[str, Any],
    issues: list[Issue],
    line: int | None = None,
) -> tuple[Flow, ...]:
    """Validate the `flows:` list against the configured connectors and destinations."""
    if not isinstance(raw, list):
        issues.append(Issue("flows is a list of flows", file=file, line=line, key="flows"))
        return ()
    flows: list[Flow] = []
    for index, item in enumerate(raw):
        key = f"flows[{index}]"
        item_line = getattr(item, "line", line)
        if not isinstance(item, dict):
            issues.append(
                Issue("a flow is a map with name, when, do, to", file=file, line=item_line, key=key)
            )
            continue
        before = len(issues)

        def problem(
            message: str, field: str, suggestion: str | None = None, item: Any = item, key: str = key
        ) -> None:
            line = item.line_of(field) if hasattr(item, "line_of") else getattr(item, "line", None)
            issues.append(
                Issue(message, file=file, line=line, key=f"{key}.{field}", suggestion=suggestion)
            )

        for field in item:
            if field not in _FLOW_KEYS:
                close = difflib.get_close_matches(str(field), _FLOW_KEYS, n=1)
                problem(f"unknown flow key {field!r}", str(field), close[0] if close else None)
        for required in ("when", "do", "to"):
            if required not in item:
                problem(f"a flow needs `{required}:`", required)
        name = str(item.get("name") or f"flow {index + 1}")
        when_raw = item.get("when", [])
        when = tuple(when_raw if isinstance(when_raw, list) else [when_raw])
        for pattern in when:
            if not isinstance(pattern, str) or "." not in pattern:
                problem("when is <connector id>.<event type> (wildcards allowed)", "when")
                continue
            instance = pattern.split(".", 1)[0]
            if not any(fnmatch.fnmatchcase(cid, instance) for cid in connectors):
                close = difflib.get_close_matches(instance, list(connectors), n=1)
                problem(f"no configured connector matches {instance!r}", "when", close[0] if close else None)
        actions_raw = item.get("do", [])
        actions = tuple(actions_raw if isinstance(actions_raw, list) else [actions_raw])
        for action in actions:
            if action not in ACTIONS:
                close = difflib.get_close_matches(str(action), ACTIONS, n=1)
                problem(f"unknown action {action!r}", "do", close[0] if close else None)
        to = str(item.get("to", ""))
        if "to" in item and to not in destinations:
            close = difflib.get_close_matches(to, list(destinations), n=1)
            problem(f"unknown destination {to!r}", "to", close[0] if close else None)
        condition = None
        if item.get("if") is not None:
            try:
                condition = compile_flow_condition(item["if"])
            except ValueError as exc:
                problem(str(exc), "if")
        tags_raw = item.get("tags") or []
        tags = frozenset(str(t) for t in (tags_raw if isinstance(tags_raw, list) else [tags_raw]))
        if len(issues) > before:
            continue
        flows.append(
            Flow(
                name=name,
                when=when,
                actions=actions,
                to=to,
                tags=tags,
                pipeline=item.get("pipeline"),
                stage=item.get("stage"),
                condition=condition,
                line=item_line,
            )
        )
    return tuple(flows)
