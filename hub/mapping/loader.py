"""Find, parse, override and compile the mapping specs of a connector."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import replace
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from hub.errors import Issue, MappingError
from hub.mapping.compiler import Directive, Mapper, SpecSource, compile_spec, parse_spec
from hub.mapping.yamlsource import YamlSyntaxError, parse_yaml

__all__ = ["MappingSet", "apply_overrides", "load_spec_file", "load_spec_text"]

_OVERRIDE_KEYS = ("fields", "objects", "region_from")


def load_spec_text(text: str, *, file: str) -> SpecSource:
    """Parse one spec's YAML text; `MappingError` (with file and line) if it is malformed."""
    try:
        raw = parse_yaml(text, source=file)
        return parse_spec(raw, file=file)
    except YamlSyntaxError as exc:
        raise MappingError([exc.issue]) from None
    except RecursionError:
        raise MappingError(
            [Issue("the spec is nested too deeply (or refers to itself)", file=file)]
        ) from None


def load_spec_file(path: Path | Traversable) -> SpecSource:
    """Parse one spec file."""
    return load_spec_text(path.read_text(encoding="utf-8"), file=str(path))


def apply_overrides(source: SpecSource, override: Any, *, file: str) -> SpecSource:
    """Merge an admin's override (from `crmhub.yaml`) over a shipped spec.

    `fields` entries replace or add a target's directive, `null` removes it and a target
    ending in `+` adds to the shipped values; `objects` and `region_from` replace.
    """
    line_of = override.line_of if hasattr(override, "line_of") else (lambda key: None)
    if not isinstance(override, dict):
        raise MappingError(
            [
                Issue(
                    "a mapping override is a map with fields/objects/region_from",
                    file=file,
                    line=getattr(override, "line", None),
                )
            ]
        )
    issues = []
    for key in override:
        if key not in _OVERRIDE_KEYS:
            close = difflib.get_close_matches(str(key), _OVERRIDE_KEYS, n=1)
            issues.append(
                Issue(
                    f"unknown override key {key!r}",
                    file=file,
                    line=line_of(key),
                    key=str(key),
                    suggestion=close[0] if close else None,
                )
            )
    if issues:
        raise MappingError(issues)
    if not isinstance(override.get("objects") or {}, dict):
        raise MappingError(
            [
                Issue(
                    "objects must be a map of object -> {when: ...}",
                    file=file,
                    line=line_of("objects"),
                    key="objects",
                )
            ]
        )
    region_from = override.get("region_from", source.region_from)
    if region_from is not None and not isinstance(region_from, str):
        raise MappingError(
            [
                Issue(
                    "region_from takes a source path",
                    file=file,
                    line=line_of("region_from"),
                    key="region_from",
                )
            ]
        )
    directives = {d.target: d for d in source.directives}
    fields = override.get("fields") or {}
    if not isinstance(fields, dict):
        raise MappingError([Issue("fields must be a map", file=file, line=line_of("fields"))])
    for target, spec in fields.items():
        line = fields.line_of(target) if hasattr(fields, "line_of") else None
        if spec is None:
            directives.pop(target, None)
        else:
            directives[target] = Directive(target, spec, file, line)
    objects = dict(source.objects)
    objects.update(override.get("objects") or {})
    return replace(
        source,
        directives=tuple(directives.values()),
        objects=objects,
        region_from=override.get("region_from", source.region_from),
    )


class MappingSet:
    """The compiled mappings of one connector instance, by event type."""

    def __init__(self, mappers: Mapping[str, Mapper]) -> None:
        self._mappers = dict(mappers)

    @classmethod
    def load(
        cls,
        directory: Path | Traversable,
        *,
        overrides: Mapping[str, Any] | None = None,
        overrides_file: str = "crmhub.yaml",
        default_region: str | None = None,
    ) -> MappingSet:
        """Load every `*.yaml` in `directory`, apply per-event overrides, compile; report all
        problems of all files together in one `MappingError`."""
        issues: list[Issue] = []
        sources: dict[str, SpecSource] = {}
        for path in _yaml_files(directory):
            try:
                source = load_spec_file(path)
            except MappingError as exc:
                issues.extend(exc.issues)
                continue
            for event in source.events:
                if event in sources:
                    issues.append(
                        Issue(
                            f"event {event!r} is also mapped in {sources[event].file}",
                            file=source.file,
                            key="event",
                        )
                    )
                sources[event] = source
        overrides = overrides or {}
        for event in overrides:
            if event not in sources:
                close = difflib.get_close_matches(event, list(sources), n=1)
                line = overrides.line_of(event) if hasattr(overrides, "line_of") else None
                issues.append(
                    Issue(
                        f"no shipped mapping for event {event!r}",
                        file=overrides_file,
                        line=line,
                        key=f"mappings.{event}",
                        suggestion=close[0] if close else None,
                    )
                )
        mappers: dict[str, Mapper] = {}
        compiled: dict[int, Mapper] = {}
        for event, source in sources.items():
            effective = source
            try:
                if event in overrides:
                    effective = apply_overrides(
                        replace(source, events=(event,)), overrides[event], file=overrides_file
                    )
                key = id(source) if effective is source else id(effective)
                if key not in compiled:
                    compiled[key] = compile_spec(effective, default_region=default_region)
                mappers[event] = compiled[key]
            except MappingError as exc:
                issues.extend(i for i in exc.issues if i not in issues)
        if issues:
            raise MappingError(issues)
        return cls(mappers)

    def get(self, event_type: str) -> Mapper | None:
        return self._mappers.get(event_type)

    @property
    def events(self) -> list[str]:
        return sorted(self._mappers)

    def __iter__(self) -> Any:
        return iter(self._mappers.items())


def _yaml_files(directory: Path | Traversable) -> Iterable[Path | Traversable]:
    if not directory.is_dir():
        return []
    return sorted(
        (p for p in directory.iterdir() if p.name.endswith((".yaml", ".yml"))), key=lambda p: p.name
    )
