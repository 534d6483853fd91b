"""YAML loading that remembers where each key was written, for errors with line numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hub.errors import Issue

__all__ = ["LineDict", "YamlSyntaxError", "load_yaml", "parse_yaml"]


class LineDict(dict[str, Any]):
    """A dict from YAML that knows its own line and the line of each key (1-based)."""

    line: int | None = None
    key_lines: dict[str, int]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_lines = {}

    def line_of(self, key: str) -> int | None:
        return self.key_lines.get(key, self.line)


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        key = "null" if key is None else str(key) if not isinstance(key, str) else key
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def parse_yaml(text: str, *, source: str) -> Any:
    """Parse YAML text; raise ValueError carrying an `Issue` with the line on a syntax error."""
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise YamlSyntaxError(Issue(f"invalid YAML: {exc.problem}", file=source, line=line)) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(Issue(f"invalid YAML: {exc}", file=source)) from None


def load_yaml(path: Path) -> Any:
    """Read and parse a YAML file with line information."""
    return parse_yaml(path.read_text(encoding="utf-8"), source=str(path))


class YamlSyntaxError(ValueError):
    """A YAML file could not be parsed; `issue` says where."""

    def __init__(self, issue: Issue) -> None:
        super().__init__(str(issue))
        self.issue = issue
