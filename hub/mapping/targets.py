"""The catalogue of canonical target paths a mapping may write, derived from the models."""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel

from hub.canonical import Activity, Company, Contact, Deal, LineItem

__all__ = ["OBJECTS", "Target", "TargetKind", "resolve_target", "suggest_target"]

#: The objects a mapping fills, each one model, at most one per Bundle.
OBJECTS: dict[str, type[BaseModel]] = {
    "contact": Contact,
    "company": Company,
    "deal": Deal,
    "activity": Activity,
}

TargetKind = Literal["scalar", "set", "dict", "items"]


@dataclass(frozen=True)
class Target:
    """A resolved target: the object, the field path inside it, and what kind of value."""

    obj: str
    path: tuple[str, ...]
    kind: TargetKind
    choices: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return ".".join((self.obj, *self.path))


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    for arg in typing.get_args(annotation):
        found.extend(_models_in(arg))
    return found


def _enum_in(annotation: Any) -> tuple[str, ...]:
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return tuple(str(m.value) for m in annotation)
    for arg in typing.get_args(annotation):
        values = _enum_in(arg)
        if values:
            return values
    return ()


def _origin_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _origin_name(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        names = [_origin_name(a) for a in typing.get_args(annotation)]
        return next((n for n in names if n != "none"), "scalar")
    if origin in (frozenset, set):
        return "set"
    if origin is dict:
        return "dict"
    if origin is tuple or origin is list:
        return "items"
    if annotation is type(None):
        return "none"
    return "scalar"


def _catalogue(model: type[BaseModel], prefix: tuple[str, ...]) -> dict[tuple[str, ...], Target]:
    entries: dict[tuple[str, ...], Target] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        path = (*prefix, name)
        kind = _origin_name(annotation)
        nested = _models_in(annotation)
        if kind == "items" and nested == [LineItem]:
            entries[path] = Target("", path, "items")
        elif nested and kind not in ("items",):
            entries.update(_catalogue(nested[0], path))
        elif kind in ("set", "dict"):
            entries[path] = Target("", path, kind)  # type: ignore[arg-type]
        else:
            entries[path] = Target("", path, "scalar", _enum_in(annotation))
    return entries


_CATALOGUE: dict[str, dict[tuple[str, ...], Target]] = {
    obj: _catalogue(model, ()) for obj, model in OBJECTS.items()
}
_LINE_ITEM_FIELDS = tuple(LineItem.model_fields)
_PROVENANCE = {"connector", "event_type", "event_id", "mapping_version"}


def all_target_names() -> list[str]:
    """Every writable target, for suggestions and docs."""
    names = []
    for obj, entries in _CATALOGUE.items():
        for path, target in entries.items():
            suffix = "[]" if target.kind == "items" else ".<key>" if target.kind == "dict" else ""
            names.append(".".join((obj, *path)) + suffix)
    return sorted(names)


def resolve_target(name: str) -> Target:
    """Resolve `contact.address.city`, `deal.custom_fields.x`, `deal.line_items[]`.

    Raises ValueError with a message (and `suggest_target` gives a fix) if unknown.
    """
    obj, _, rest = name.partition(".")
    if obj not in _CATALOGUE:
        raise ValueError(f"unknown object {obj!r}: use contact, company, deal or activity")
    entries = _CATALOGUE[obj]
    if not rest:
        raise ValueError(f"{name!r} names an object, not a field")
    items = rest.endswith("[]")
    parts = tuple(rest.removesuffix("[]").split("."))
    if parts in entries:
        target = entries[parts]
        if target.kind == "items" and not items:
            raise ValueError(f"{name!r} is a list: write it as {name}[] with each/fields")
        if target.kind != "items" and items:
            raise ValueError(f"{name!r} is not a list target")
        if target.kind == "dict":
            raise ValueError(f"{name!r} is a map: write {name}.<key>")
        return Target(obj, parts, target.kind, target.choices)
    for size in range(len(parts) - 1, 0, -1):
        head = parts[:size]
        if head in entries and entries[head].kind == "dict":
            if len(parts) != size + 1 or not parts[-1]:
                raise ValueError(f"{name!r}: a map takes one key, e.g. {'.'.join((obj, *head))}.key")
            return Target(obj, parts, "scalar")
    raise ValueError(f"unknown target {name!r}")


def suggest_target(name: str) -> str | None:
    """The closest known target name, if any is close."""
    full = {n.removesuffix("[]").removesuffix(".<key>"): n for n in all_target_names()}
    matches = difflib.get_close_matches(name.removesuffix("[]"), list(full), n=1)
    if matches:
        return full[matches[0]].replace(".<key>", ".<key>")
    return None


def line_item_fields() -> tuple[str, ...]:
    return _LINE_ITEM_FIELDS
