"""The mapping benchmark compares equal work: for every fixture of the two benchmarked
events, the hand-written function (benchmarks/handwritten.py) builds the same Bundle as
the shipped YAML mapping."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.shopify.connector import ShopifyConnector
from connectors.typeform.connector import TypeformConnector
from hub import MappingError, SourceEvent
from hub.canonical import Bundle
from hub.mapping import Mapper, MappingSet

REPO = Path(__file__).resolve().parents[1]


def _load_handwritten() -> Any:
    spec = importlib.util.spec_from_file_location(
        "crmhub_bench_handwritten", REPO / "benchmarks" / "handwritten.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


handwritten = _load_handwritten()

CASES: dict[str, tuple[type, str, str, Callable[..., Bundle]]] = {
    # event: (connector, fixture folder, mapping event, hand-written function)
    "orders/create": (
        ShopifyConnector,
        "orders_create",
        "orders/create",
        handwritten.shopify_order_to_bundle,
    ),
    "form_response": (
        TypeformConnector,
        "form_response",
        "form_response",
        handwritten.typeform_response_to_bundle,
    ),
}


def _fixtures(event: str) -> list[Path]:
    connector, folder, _, _ = CASES[event]
    paths = sorted((connector.fixtures_dir() / folder).glob("*.json"))
    assert paths, f"no fixtures for {event}"
    return paths


@pytest.fixture(scope="module")
def mappers() -> dict[str, Mapper]:
    found = {}
    for event, (connector, _, mapped_event, _) in CASES.items():
        mapper = MappingSet.load(connector.mapping_dir()).get(mapped_event)
        assert mapper is not None, f"no shipped mapping for {event}"
        found[event] = mapper
    return found


def _both(mapper: Mapper, event: str, data: dict[str, Any]) -> tuple[Bundle, Bundle]:
    connector, _, mapped_event, hand = CASES[event]
    source = SourceEvent(mapped_event, "evt-bench-1", datetime(2026, 1, 1, tzinfo=UTC), data)
    mapped = mapper.map(source, connector=connector.name)
    written = hand(data, source.id, mapper.version)
    return mapped, written


def _assert_same(mapped: Bundle, written: Bundle) -> None:
    assert written == mapped
    # The JSON form also tells apart what == does not (Decimal("1.0") vs "1", 1 vs True).
    assert written.model_dump_json() == mapped.model_dump_json()


def _params() -> Iterator[Any]:
    for event in CASES:
        for path in _fixtures(event):
            yield pytest.param(event, path, id=f"{event}:{path.stem}")


@pytest.mark.parametrize(("event", "path"), list(_params()))
def test_handwritten_builds_the_mapped_bundle(mappers: dict[str, Mapper], event: str, path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    mapped, written = _both(mappers[event], event, data)
    _assert_same(mapped, written)


# Variants of the fixtures with parts missing, so the equality is not an accident of the
# fixtures' shape: (event, description, edit).
def _drop(*path: str) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        node = data
        for key in path[:-1]:
            node = node.get(key) or {}
        if isinstance(node, dict):
            node.pop(path[-1], None)

    return edit


def _set(value: Any, *path: str) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        node = data
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value

    return edit


VARIANTS: list[tuple[str, str, Callable[[dict[str, Any]], None]]] = [
    ("orders/create", "no-customer", _drop("customer")),
    ("orders/create", "no-billing", _drop("billing_address")),
    ("orders/create", "no-processed-at", _drop("processed_at")),
    ("orders/create", "no-financial-status", _drop("financial_status")),
    ("orders/create", "blank-name", _set("  ", "name")),
    ("orders/create", "tags-blank-parts", _set(" a, ,b ,", "customer", "tags")),
    (
        "orders/create",
        "consent-unsubscribed",
        _set({"state": "unsubscribed"}, "customer", "email_marketing_consent"),
    ),
    ("form_response", "no-hidden", _drop("form_response", "hidden")),
    ("form_response", "no-definition", _drop("form_response", "definition")),
    ("form_response", "no-answers", _drop("form_response", "answers")),
]


def _variant_params() -> Iterator[Any]:
    for event, name, edit in VARIANTS:
        for path in _fixtures(event):
            yield pytest.param(event, path, edit, id=f"{event}:{path.stem}:{name}")


@pytest.mark.parametrize(("event", "path", "edit"), list(_variant_params()))
def test_handwritten_matches_on_variants(
    mappers: dict[str, Mapper], event: str, path: Path, edit: Callable[[dict[str, Any]], None]
) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    try:
        mapped = _both(mappers[event], event, copy.deepcopy(data))[0]
    except MappingError:
        # The mapping rejects it (e.g. no identity, no time): so must the hand-written one.
        _, _, _, hand = CASES[event]
        with pytest.raises(ValueError):  # pydantic's ValidationError is a ValueError
            hand(data, "evt-bench-1", mappers[event].version)
        return
    _, _, _, hand = CASES[event]
    _assert_same(mapped, hand(data, "evt-bench-1", mappers[event].version))
