"""Compile a mapping spec (parsed YAML) into a `Mapper`: plain closures, checked at load."""

from __future__ import annotations

import difflib
import hashlib
import json
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from hub.canonical import Bundle
from hub.connector.base import SourceEvent
from hub.errors import Issue, MappingError
from hub.mapping import memo, transforms
from hub.mapping.conditions import Predicate, compile_condition
from hub.mapping.paths import Getter, PathSyntaxError, compile_path, is_empty
from hub.mapping.shared import Sharing
from hub.mapping.targets import OBJECTS, Target, line_item_fields, resolve_target, suggest_target

__all__ = ["Directive", "Mapper", "SpecSource", "compile_spec"]

ValueFn = Callable[[Any, Any], Any]
_SOURCES = ("path", "coalesce", "value", "template")
_DIRECTIVE_KEYS = (*_SOURCES, "transforms", "when", "on_error")
_TOP_KEYS = ("event", "description", "region_from", "objects", "fields")


@dataclass(frozen=True)
class Directive:
    """One target's directive and where it was written."""

    target: str
    spec: Any
    file: str
    line: int | None


@dataclass(frozen=True)
class SpecSource:
    """A spec ready to compile: its events, defaults and directives (after overrides)."""

    file: str
    events: tuple[str, ...]
    directives: tuple[Directive, ...]
    region_from: str | None = None
    objects: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    line: int | None = None
    #: Shape problems found while parsing, reported together with compile problems.
    issues: tuple[Issue, ...] = ()

    def fingerprint(self) -> str:
        """A short hash of everything that changes the output: the mapping version."""
        payload = {
            "events": self.events,
            "region_from": self.region_from,
            "objects": self.objects,
            "fields": [(d.target, d.spec) for d in self.directives],
        }
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class _FieldPlan:
    target: Target
    value: ValueFn
    adds: bool
    #: A plain field (neither a set nor `+`) is set directly at parents..key, not `_assign`ed.
    plain: bool = field(init=False)
    parents: tuple[str, ...] = field(init=False)
    key: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "plain", self.target.kind != "set" and not self.adds)
        object.__setattr__(self, "parents", self.target.path[:-1])
        object.__setattr__(self, "key", self.target.path[-1])


class _Collector:
    def __init__(self, file: str) -> None:
        self.file = file
        self.issues: list[Issue] = []

    def add(
        self,
        message: str,
        *,
        line: int | None,
        key: str | None,
        suggestion: str | None = None,
        file: str | None = None,
    ) -> None:
        self.issues.append(Issue(message, file=file or self.file, line=line, key=key, suggestion=suggestion))


class Mapper:
    """A compiled mapping: `mapper.map(event, connector=...)` -> `Bundle`."""

    def __init__(
        self, source: SpecSource, plans: dict[str, list[_FieldPlan]], object_when: dict[str, Predicate]
    ) -> None:
        self.source = source
        self.events = source.events
        self.version = source.fingerprint()
        self._plans = plans
        self._object_when = object_when

    def __repr__(self) -> str:
        return f"<Mapper {self.source.file} events={list(self.events)} version={self.version}>"

    def map(self, event: SourceEvent, *, connector: str) -> Bundle:
        """Map one event's data; raise `MappingError` naming each field that failed."""
        token = memo.open_scope()
        try:
            built = self._build(event.data)
        finally:
            memo.close(token)
        objects = self._validate(built)
        return Bundle(
            connector=connector,
            event_type=event.type,
            event_id=event.id,
            mapping_version=self.version,
            contacts=objects.get("contact", ()),
            companies=objects.get("company", ()),
            deals=objects.get("deal", ()),
            activities=objects.get("activity", ()),
        )

    def _build(self, root: Any) -> dict[str, dict[str, Any]]:
        """Each object's field values, read from `root`; `MappingError` if a field failed."""
        issues: list[Issue] = []
        built: dict[str, Any] = {}
        for obj, plans in self._plans.items():
            when = self._object_when.get(obj)
            if when is not None and not when(root, root):
                continue
            values = self._fill(plans, root, issues)
            if values:
                built[obj] = values
        if issues:
            raise MappingError(issues)
        return built

    @staticmethod
    def _validate(built: dict[str, dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
        """The canonical models of the built values; `MappingError` if any is invalid."""
        issues: list[Issue] = []
        objects: dict[str, tuple[Any, ...]] = {}
        for obj, values in built.items():
            try:
                objects[obj] = (OBJECTS[obj].model_validate(values),)
            except ValidationError as exc:
                issues.extend(_validation_issues(obj, exc))
        if issues:
            raise MappingError(issues)
        return objects

    @staticmethod
    def _fill(plans: list[_FieldPlan], root: Any, issues: list[Issue]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for plan in plans:
            try:
                value = plan.value(root, root)
            except MappingError as exc:
                issues.extend(Issue(i.message, key=plan.target.name) for i in exc.issues)
                continue
            # is_empty(value), its commonest cases first: the loop runs for every field.
            if value is None or (not value.strip() if isinstance(value, str) else is_empty(value)):
                continue
            if plan.plain:
                node = values
                for part in plan.parents:
                    node = node.setdefault(part, {})
                node[plan.key] = value
            else:
                _assign(values, plan.target, value, plan.adds)
        return values


def _assign(values: dict[str, Any], target: Target, value: Any, adds: bool) -> None:
    node = values
    for part in target.path[:-1]:
        node = node.setdefault(part, {})
    last = target.path[-1]
    if target.kind == "set" or (adds and isinstance(node.get(last), list)):
        items = value if isinstance(value, list | tuple | set | frozenset) else [value]
        existing = node.get(last) if adds else None
        node[last] = [*(existing or []), *items]
    else:
        node[last] = value


def _validation_issues(obj: str, exc: ValidationError) -> list[Issue]:
    issues = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in error["loc"])
        key = f"{obj}.{loc}" if loc else obj
        message = str(error["msg"]).removeprefix("Value error, ")
        issues.append(Issue(message, key=key))
    return issues


# --- compiling -------------------------------------------------------------------------


def _compile_transform(item: Any, ctx: transforms.CompileContext) -> transforms.CompiledStep:
    if isinstance(item, str):
        name, arg = item, None
    elif isinstance(item, dict) and len(item) == 1:
        ((name, arg),) = item.items()
    else:
        raise ValueError("a transform is a name or a one-key map {name: argument}")
    if name not in transforms.REGISTRY:
        close = difflib.get_close_matches(str(name), list(transforms.REGISTRY), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown transform {name!r}{hint}")
    try:
        return transforms.compile_step(name, arg, ctx)
    except PathSyntaxError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _format(value: Any, spec: str) -> str:
    """`format(value, spec)`; a value of the wrong type for the spec is a MappingError."""
    try:
        return format(value, spec)
    except (TypeError, ValueError) as exc:
        raise MappingError(
            f"template: cannot format a {type(value).__name__} with {{:{spec}}} ({exc})"
        ) from None


def _template_fn(text: str) -> ValueFn:
    parts: list[tuple[str, Getter | None, str]] = []
    for literal, field_name, spec, conversion in string.Formatter().parse(text):
        if conversion:
            raise ValueError("templates take no !conversions")
        getter = None
        if field_name is not None:
            if not field_name.strip():
                raise ValueError("a template field needs a source path, e.g. {customer.email}")
            getter = compile_path(field_name)
        parts.append((literal, getter, spec or ""))

    def render(node: Any, root: Any) -> Any:
        out: list[str] = []
        found = False
        for literal, getter, spec in parts:
            out.append(literal)
            if getter is not None:
                value = getter(node, root)
                if not is_empty(value):
                    found = True
                    out.append(_format(value, spec) if spec else str(value))
        if not found and any(g is not None for _, g, _ in parts):
            return None
        return "".join(out).strip() or None

    return render


def _source_fn(spec: dict[str, Any], ctx: transforms.CompileContext) -> ValueFn:
    sources = [k for k in _SOURCES if k in spec]
    if len(sources) != 1:
        raise ValueError("give exactly one of path, coalesce, value or template")
    (kind,) = sources
    arg = spec[kind]
    if kind == "path":
        if not isinstance(arg, str):
            raise ValueError("path takes a string")
        getter = compile_path(arg)
        return getter
    if kind == "coalesce":
        if not isinstance(arg, list) or not arg:
            raise ValueError("coalesce takes a list of paths (or directives)")
        getters = [compile_value(p, ctx) for p in arg]

        def coalesce(node: Any, root: Any) -> Any:
            for getter in getters:
                value = getter(node, root)
                if value is not None and not is_empty(value):
                    return value
            return None

        return coalesce
    if kind == "template":
        if not isinstance(arg, str):
            raise ValueError("template takes a string")
        return _template_fn(arg)
    literal = arg
    return lambda node, root: literal


def compile_value(spec: Any, ctx: transforms.CompileContext) -> ValueFn:
    """Compile a directive (without `each`) into `fn(node, root)`; ValueError if malformed."""
    if isinstance(spec, str):
        return compile_path(spec)
    if not isinstance(spec, dict):
        raise ValueError("a directive is a source path, or a map with path/coalesce/value/template")
    unknown = set(spec) - set(_DIRECTIVE_KEYS)
    if unknown:
        key = sorted(unknown)[0]
        close = difflib.get_close_matches(key, _DIRECTIVE_KEYS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown directive key {key!r}{hint}")
    source = _source_fn(spec, ctx)
    steps = spec.get("transforms") or []
    if not isinstance(steps, list):
        raise ValueError("transforms takes a list")
    chain = transforms.chain([_compile_transform(item, ctx) for item in steps]) if steps else None
    when = compile_condition(spec["when"]) if "when" in spec else None
    on_error = spec.get("on_error", "fail")
    if on_error not in ("fail", "skip"):
        raise ValueError("on_error takes fail (the event fails) or skip (the field is left empty)")
    value = _guarded(source, chain, when)
    if on_error == "skip":

        def lenient(node: Any, root: Any) -> Any:
            try:
                return value(node, root)
            except MappingError:
                return None

        return lenient
    return value


def _guarded(source: ValueFn, chain: transforms.TransformFn | None, when: Predicate | None) -> ValueFn:
    """`source`, then the transform chain, only when `when` holds: the fewest calls needed."""
    if when is None:
        if chain is None:
            return source

        def transformed(node: Any, root: Any) -> Any:
            return chain(source(node, root), node, root)

        return transformed

    def guarded(node: Any, root: Any) -> Any:
        if not when(node, root):
            return None
        result = source(node, root)
        return result if chain is None else chain(result, node, root)

    return guarded


def _items_fn(
    spec: Any, ctx: transforms.CompileContext, collector: _Collector, directive: Directive
) -> ValueFn:
    if not isinstance(spec, dict) or set(spec) - {"each", "fields", "when"} or "each" not in spec:
        raise ValueError("a list target takes {each: <path to a list>, fields: {...}}")
    each = compile_path(str(spec["each"]))
    sub_specs = spec.get("fields") or {}
    if not isinstance(sub_specs, dict) or not sub_specs:
        raise ValueError("a list target needs fields: {...}")
    allowed = line_item_fields()
    subs: list[tuple[str, ValueFn]] = []
    for name, sub in sub_specs.items():
        line = sub_specs.line_of(name) if hasattr(sub_specs, "line_of") else directive.line
        if name not in allowed:
            close = difflib.get_close_matches(name, allowed, n=1)
            collector.add(
                f"unknown line item field {name!r}",
                line=line,
                key=f"{directive.target}.{name}",
                suggestion=close[0] if close else None,
                file=directive.file,
            )
            continue
        try:
            subs.append((name, compile_value(sub, ctx)))
        except (ValueError, PathSyntaxError) as exc:
            collector.add(str(exc), line=line, key=f"{directive.target}.{name}", file=directive.file)
    when = compile_condition(spec["when"]) if "when" in spec else None

    def items(node: Any, root: Any) -> Any:
        if when is not None and not when(node, root):
            return None
        elements = each(node, root)
        if not isinstance(elements, list):
            return None
        out = []
        for element in elements:
            item = {}
            for name, fn in subs:
                value = fn(element, root)
                if not is_empty(value):
                    item[name] = value
            if item:
                out.append(item)
        return out

    return items


def compile_spec(source: SpecSource, *, default_region: str | None = None) -> Mapper:
    """Compile every directive of a spec; raise `MappingError` listing every problem."""
    try:
        return _compile_spec(source, default_region=default_region)
    except RecursionError:
        raise MappingError([Issue("the spec is nested too deeply", file=source.file)]) from None


def _compile_spec(source: SpecSource, *, default_region: str | None = None) -> Mapper:
    collector = _Collector(source.file)
    collector.issues.extend(source.issues)
    ctx = transforms.CompileContext(region_from=source.region_from, default_region=default_region)
    if source.region_from:
        try:
            compile_path(source.region_from)
        except PathSyntaxError as exc:
            collector.add(str(exc), line=source.line, key="region_from")
    if default_region:
        try:
            transforms.build("country", None, ctx)(default_region, None, None)
        except MappingError as exc:
            collector.add(f"default region: {exc}", line=None, key="default_region")
    sharing = Sharing(
        [("value", d.spec) for d in source.directives]
        + [("when", o.get("when")) for o in source.objects.values() if isinstance(o, dict)]
    )
    plans: dict[str, list[_FieldPlan]] = {obj: [] for obj in OBJECTS}
    for directive in source.directives:
        name = directive.target
        adds = name.endswith("+")
        try:
            target = resolve_target(name.removesuffix("+"))
        except ValueError as exc:
            collector.add(
                str(exc),
                line=directive.line,
                key=name,
                file=directive.file,
                suggestion=suggest_target(name.removesuffix("+")),
            )
            continue
        if (
            adds
            and target.kind == "scalar"
            and target.path[0] not in ("custom_fields", "external_ids", "metadata")
        ):
            collector.add(
                "'+' adds to a list or set target only", line=directive.line, key=name, file=directive.file
            )
            continue
        try:
            if target.kind == "items":
                fn = _items_fn(directive.spec, ctx, collector, directive)
            else:
                fn = sharing.share("value", directive.spec, compile_value(directive.spec, ctx))
                _check_literal(directive.spec, target)
        except (ValueError, PathSyntaxError) as exc:
            collector.add(str(exc), line=directive.line, key=name, file=directive.file)
            continue
        plans[target.obj].append(_FieldPlan(target, fn, adds))
    object_when: dict[str, Predicate] = {}
    for obj, options in source.objects.items():
        line = source.objects.line_of(obj) if hasattr(source.objects, "line_of") else source.line
        if obj not in OBJECTS:
            close = difflib.get_close_matches(str(obj), list(OBJECTS), n=1)
            collector.add(
                f"unknown object {obj!r}",
                line=line,
                key=f"objects.{obj}",
                suggestion=close[0] if close else None,
            )
            continue
        if not isinstance(options, dict) or set(options) != {"when"}:
            collector.add("an object takes {when: <condition>}", line=line, key=f"objects.{obj}")
            continue
        try:
            object_when[obj] = sharing.share("when", options["when"], compile_condition(options["when"]))
        except (ValueError, PathSyntaxError) as exc:
            collector.add(str(exc), line=line, key=f"objects.{obj}.when")
    if collector.issues:
        raise MappingError(collector.issues)
    return Mapper(source, {k: v for k, v in plans.items() if v}, object_when)


def _check_literal(spec: Any, target: Target) -> None:
    if isinstance(spec, dict) and "value" in spec and target.choices and not spec.get("transforms"):
        if str(spec["value"]) not in target.choices:
            close = difflib.get_close_matches(str(spec["value"]), target.choices, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{spec['value']!r} is not one of {', '.join(target.choices)}{hint}")


def parse_spec(raw: Any, *, file: str) -> SpecSource:
    """Check a parsed YAML spec's shape and turn it into a `SpecSource`."""
    collector = _Collector(file)
    if not isinstance(raw, dict):
        raise MappingError([Issue("a mapping spec is a YAML map with event and fields", file=file)])
    line_of = raw.line_of if hasattr(raw, "line_of") else (lambda key: None)
    for key in raw:
        if key not in _TOP_KEYS:
            close = difflib.get_close_matches(str(key), _TOP_KEYS, n=1)
            collector.add(
                f"unknown key {key!r}",
                line=line_of(key),
                key=str(key),
                suggestion=close[0] if close else None,
            )
    events_raw = raw.get("event")
    events: tuple[str, ...] = ()
    if isinstance(events_raw, str) and events_raw.strip():
        events = (events_raw.strip(),)
    elif isinstance(events_raw, list) and events_raw and all(isinstance(e, str) for e in events_raw):
        events = tuple(e.strip() for e in events_raw)
    else:
        collector.add("event must be an event type or a list of them", line=line_of("event"), key="event")
    fields_raw = raw.get("fields")
    directives: list[Directive] = []
    if not isinstance(fields_raw, dict) or not fields_raw:
        collector.add("fields must map canonical targets to directives", line=line_of("fields"), key="fields")
    else:
        for target, spec in fields_raw.items():
            line = fields_raw.line_of(target) if hasattr(fields_raw, "line_of") else None
            if spec is None:
                collector.add("empty directive", line=line, key=target)
                continue
            directives.append(Directive(target, spec, file, line))
    objects = raw.get("objects") or {}
    if not isinstance(objects, dict):
        collector.add("objects must be a map", line=line_of("objects"), key="objects")
        objects = {}
    region_from = raw.get("region_from")
    if region_from is not None and not isinstance(region_from, str):
        collector.add("region_from takes a source path", line=line_of("region_from"), key="region_from")
        region_from = None
    return SpecSource(
        file=file,
        events=events,
        directives=tuple(directives),
        region_from=region_from,
        objects=objects,
        description=str(raw.get("description") or ""),
        line=getattr(raw, "line", None),
        issues=tuple(collector.issues),
    )
