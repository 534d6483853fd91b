"""Fuzz the mapping engine: random specs, random overrides, random data.

Properties (security issue: nothing but the hub's own errors escapes):

- `compile_spec(parse_spec(raw))` on a random YAML-like spec, built from the real target
  catalogue (`all_target_names`) and the real transform registry with random arguments,
  returns a `Mapper` or raises `MappingError`; so does the same spec as YAML text through
  `load_spec_text`, and an admin override through `apply_overrides`;
- a compiled spec mapping random JSON data returns a `Bundle` that serialises to JSON and
  validates back, or raises `MappingError`.

Deterministic (`derandomize=True`, no example database). `CRMHUB_FUZZ_EXAMPLES` raises
the budget for a deeper run. The `test_finding_*` cases at the end are minimal
reproducers of what the fuzzing found; each fails until its bug is fixed.
"""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, assume, given, note, settings
from hypothesis import strategies as st

from hub.canonical import Bundle
from hub.connector.base import SourceEvent
from hub.errors import MappingError
from hub.mapping import TRANSFORMS, Mapper, apply_overrides, compile_spec, load_spec_text, parse_spec
from hub.mapping.targets import all_target_names, line_item_fields
from hub.plugins import load_transform_plugins

EXAMPLES = int(os.environ.get("CRMHUB_FUZZ_EXAMPLES", "200"))

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=EXAMPLES,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

load_transform_plugins()  # plugin transforms are fuzzed too
TARGETS = all_target_names()
TRANSFORM_NAMES = sorted(TRANSFORMS)
LINE_ITEM_FIELDS = list(line_item_fields())

# --- values ---------------------------------------------------------------------------------

#: Keys shared by generated paths and generated data, so paths find something.
KEYS = [
    "a",
    "b",
    "id",
    "name",
    "email",
    "phone",
    "items",
    "created_at",
    "amount",
    "currency",
    "country",
    "tags",
    "url",
    "when",
    "q",
]

ODD_TIMES = [
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "0001-01-01",
    "9999-12-31",
    "2024-06-01T12:00:00+09:00",
    "2024-02-30",
    "/Date(99999999999999999999)/",
    "/Date(1718931339902+0900)/",
    "1718931339",
    "100000000000000000000",
    "-62135596801",
    "1e20",
]
ODD_STRINGS = [
    "",
    " ",
    "\x00",
    "null",
    "0",
    "-0",
    "1e309",
    "NaN",
    "Infinity",
    "1,250.00",
    "１２３",
    "9" * 40,
    "ann@example.com",
    "a@",
    "@",
    "+44 7700 900123",
    "+",
    "03-1234-5678",
    "GB",
    "gb",
    "United Kingdom",
    "XX",
    "jpy",
    "EUR",
    "KWD",
    "ZZZ",
    "yes",
    "no",
    "checked",
    "山田 太郎",
    "Ann",
    " Ann Lee ",
    "\u202e\u200b",
    "http://[::1",
    "https://acme.io/?utm_campaign=x&utm_source=%ff",
    "?a=b",
    "{",
    "{}",
    "{0}",
    "%s",
    "a" * 300,
    *ODD_TIMES,
]
ODD_NUMBERS: list[Any] = [
    0,
    -1,
    1,
    True,
    False,
    2**63,
    10**20,
    10**40,
    0.5,
    -0.0,
    1e-320,
    1e308,
    1.5e300,
    math.inf,
    -math.inf,
    math.nan,
    1718931339,
    1718931339902,
    99999999999999999999,
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(ODD_STRINGS),
    st.sampled_from(ODD_NUMBERS),
)
data_keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=6))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(data_keys, inner, max_size=5)),
    max_leaves=25,
)
event_data = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=8)

# --- paths, conditions, directives ---------------------------------------------------------------

segment = st.one_of(
    st.sampled_from(KEYS).map(lambda k: f".{k}"),
    st.sampled_from(
        [
            "[0]",
            "[-1]",
            "[1]",
            "[99999999999999999999]",
            "[*]",
            '["a.b"]',
            "[id=1]",
            "[name=]",
            "[a.b=x]",
            "[]",
            "[",
            "]",
            "..",
            ".",
            "[=x]",
            "[*][*]",
            "[-0]",
        ]
    ),
    st.text(max_size=4),
)
paths = st.one_of(
    st.builds(lambda head, rest: head + "".join(rest), st.sampled_from(KEYS), st.lists(segment, max_size=4)),
    st.builds(lambda rest: "$." + "".join(rest).lstrip("."), st.lists(segment, min_size=1, max_size=3)),
    st.sampled_from(
        ["$", "$.", "", " ", "a..b", "a.", ".a", "a[*]", "items[*].name", "items[*].items[*].id"]
    ),
    st.text(max_size=12),
)
format_specs = st.sampled_from(
    [
        "",
        ".16",
        ">10",
        "<5",
        "^99",
        "d",
        ",",
        ".2f",
        "x",
        "%",
        "e",
        "s",
        "0>99999999",
        ".99999999",
        "=+8",
        "#x",
        "_",
        "c",
        "n",
        "!r",
        "!s",
    ]
)
templates = st.one_of(
    st.lists(
        st.one_of(
            st.text(max_size=6).map(lambda t: t.replace("{", "{{").replace("}", "}}")),
            st.builds(lambda p, spec: "{" + p + (":" + spec if spec else "") + "}", paths, format_specs),
        ),
        max_size=4,
    ).map("".join),
    st.sampled_from(
        ["{", "}", "{}", "{0}", "{a!r}", "{a!}", "{a:{b}}", "{a[0]}", "{ }", "{{a}}", "{a.b:.16}"]
    ),
    st.text(max_size=20),
)

junk = json_values


def conditions() -> st.SearchStrategy[Any]:
    leaf = st.one_of(
        st.builds(lambda p: {"exists": p}, paths),
        st.builds(lambda p: {"blank": p}, paths),
        st.builds(lambda p, v: {"path": p, "equals": v}, paths, scalars),
        st.builds(
            lambda p, v: {"path": p, "in": v}, paths, st.one_of(st.lists(scalars, max_size=3), scalars)
        ),
        junk,
    )
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.builds(lambda xs: {"all": xs}, st.lists(inner, max_size=3)),
            st.builds(lambda xs: {"any": xs}, st.lists(inner, max_size=3)),
            st.builds(lambda x: {"not": x}, inner),
            st.dictionaries(
                st.sampled_from(["all", "any", "not", "exists", "path", "equals", "in"]), inner, max_size=3
            ),
        ),
        max_leaves=6,
    )


TIME_FORMATS = [
    "%d/%m/%Y",
    "%Y-%m-%d %H:%M",
    "%Y",
    "%H:%M",
    "%z",
    "%%",
    "%Q",
    "",
    "%",
    "%s",
    "%d/%m/%Y %H:%M",
]
TIME_ZONES = [
    "Europe/London",
    "Asia/Tokyo",
    "UTC",
    "Nope/Nowhere",
    "",
    "../../etc/passwd",
    "\x00",
    "Etc/GMT+14",
]
REGIONS = ["GB", "US", "JP", "gb", "United Kingdom", "XX", "", "ZZZ", 44, None]


def transform_arg(name: str) -> st.SearchStrategy[Any]:
    """Arguments the transform documents, in valid and broken shapes, or junk."""
    plausible: dict[str, st.SearchStrategy[Any]] = {
        "split_name": st.sampled_from(["first", "last", "middle", None]),
        "e164": st.one_of(
            st.sampled_from(REGIONS),
            st.fixed_dictionaries(
                {}, optional={"region": st.sampled_from(REGIONS), "region_from": st.one_of(paths, scalars)}
            ),
        ),
        "cents_to_decimal": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {},
                optional={
                    "currency": st.one_of(st.sampled_from(["JPY", "KWD", "EUR", "ZZZ"]), scalars),
                    "currency_from": st.one_of(paths, scalars),
                },
            ),
        ),
        "to_utc": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {},
                optional={
                    "format": st.one_of(st.sampled_from(TIME_FORMATS), scalars),
                    "tz": st.one_of(st.sampled_from(TIME_ZONES), scalars),
                },
            ),
        ),
        "to_date": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {},
                optional={
                    "format": st.one_of(st.sampled_from(TIME_FORMATS), scalars),
                    "tz": st.one_of(st.sampled_from(TIME_ZONES), scalars),
                },
            ),
        ),
        "lookup": st.fixed_dictionaries(
            {
                "table": st.dictionaries(
                    st.one_of(st.text(max_size=5), st.sampled_from(ODD_STRINGS)), json_values, max_size=4
                )
            },
            optional={"default": json_values},
        ),
        "default": json_values,
        "join": st.one_of(st.none(), st.sampled_from([", ", "\n", "", "{}", "%s"]), scalars),
        "split": st.one_of(st.none(), st.sampled_from([",", " ", "", "\x00", "{}"]), scalars),
        "url_param": st.one_of(st.sampled_from(["utm_source", "utm_campaign", "", "a"]), scalars),
        "prefix": st.one_of(st.sampled_from(["bought-", "", "{x}", "%s"]), scalars),
    }
    return st.one_of(plausible.get(name, st.none()), junk)


@st.composite
def transform_items(draw: st.DrawFn) -> Any:
    name = draw(
        st.one_of(
            st.sampled_from(TRANSFORM_NAMES), st.sampled_from(["to_utcc", "", "Trim"]), st.text(max_size=6)
        )
    )
    shape = draw(st.sampled_from(["bare", "arg", "arg", "junk"]))
    if shape == "bare":
        return name
    if shape == "arg":
        return {name: draw(transform_arg(name))}
    return draw(junk)


def directives(target: str) -> st.SearchStrategy[Any]:
    sources = st.fixed_dictionaries(
        {},
        optional={
            "path": st.one_of(paths, scalars),
            "coalesce": st.one_of(
                st.lists(st.one_of(paths, st.builds(lambda p: {"path": p}, paths)), max_size=3), scalars
            ),
            "value": json_values,
            "template": st.one_of(templates, scalars),
            "transforms": st.one_of(st.lists(transform_items(), max_size=4), scalars),
            "when": conditions(),
            "on_error": st.sampled_from(["fail", "skip", "ignore", None]),
            "each": st.one_of(paths, scalars),
            "pathh": scalars,
        },
    )
    plain = st.one_of(paths, sources, junk)
    if not target.endswith("[]"):
        return plain
    items = st.fixed_dictionaries(
        {"each": st.one_of(paths, scalars)},
        optional={
            "fields": st.one_of(
                st.dictionaries(
                    st.one_of(st.sampled_from(LINE_ITEM_FIELDS), st.text(max_size=5)), plain, max_size=4
                ),
                junk,
            ),
            "when": conditions(),
        },
    )
    return st.one_of(items, plain)


@st.composite
def target_names(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(TARGETS))
    if name.endswith(".<key>"):
        name = name.removesuffix("<key>") + draw(
            st.one_of(st.sampled_from(KEYS), st.sampled_from(["", "a.b", "[]"]), st.text(max_size=5))
        )
    mutation = draw(
        st.sampled_from(["none", "none", "none", "plus", "drop_items", "add_items", "typo", "junk"])
    )
    if mutation == "plus":
        name += "+"
    elif mutation == "drop_items":
        name = name.removesuffix("[]")
    elif mutation == "add_items":
        name += "[]"
    elif mutation == "typo":
        name = name.replace(".", draw(st.sampled_from(["..", "_", " . ", ""])), 1)
    elif mutation == "junk":
        name = draw(st.text(max_size=12))
    return name


@st.composite
def spec_fields(draw: st.DrawFn) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for target in draw(st.lists(target_names(), min_size=1, max_size=6, unique=True)):
        fields[target] = draw(directives(target))
    return fields


@st.composite
def raw_specs(draw: st.DrawFn) -> dict[str, Any]:
    """A parsed-YAML spec: string keys, YAML-able values, shaped like the shipped ones."""
    spec: dict[str, Any] = {
        "event": draw(st.one_of(st.just("fuzz/event"), st.lists(st.text(max_size=6), max_size=3), scalars)),
        "fields": draw(st.one_of(spec_fields(), spec_fields(), spec_fields(), junk)),
    }
    optional = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "region_from": st.one_of(paths, scalars),
                "objects": st.one_of(
                    st.dictionaries(
                        st.one_of(
                            st.sampled_from(["contact", "company", "deal", "activity", "lead"]),
                            st.text(max_size=5),
                        ),
                        st.one_of(st.builds(lambda c: {"when": c}, conditions()), junk),
                        max_size=3,
                    ),
                    junk,
                ),
                "description": scalars,
                "evnt": scalars,
            },
        )
    )
    spec.update(optional)
    if draw(st.integers(0, 9)) == 0:
        spec.pop(draw(st.sampled_from(sorted(spec))))
    return spec


# --- specs that compile by construction: the data decides what happens ---------------------------

key_paths = st.builds(
    lambda root, head, rest: root + head + "".join(rest),
    st.sampled_from(["", "", "", "$."]),
    st.sampled_from(KEYS),
    st.lists(
        st.one_of(
            st.sampled_from(KEYS).map(lambda k: f".{k}"),
            st.sampled_from(["[0]", "[-1]", "[*]", "[id=1]", "[name=Ann]", '["a.b"]']),
        ),
        max_size=3,
    ),
)
valid_paths = st.one_of(key_paths, st.just("$"))
valid_templates = st.lists(
    st.one_of(
        st.sampled_from(["Order ", " - ", ": ", "", "{{", "}}"]),
        st.builds(
            lambda p, spec: "{" + p + (":" + spec if spec else "") + "}",
            key_paths,
            st.sampled_from(["", "", "", ".16", ">10", "d", ".2f", ",", "s", "x"]),
        ),
    ),
    min_size=1,
    max_size=4,
).map("".join)


def valid_conditions() -> st.SearchStrategy[Any]:
    leaf = st.one_of(
        st.builds(lambda p: {"exists": p}, valid_paths),
        st.builds(lambda p: {"blank": p}, valid_paths),
        st.builds(lambda p, v: {"path": p, "equals": v}, valid_paths, scalars),
        st.builds(lambda p, v: {"path": p, "in": v}, valid_paths, st.lists(scalars, max_size=3)),
    )
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.builds(lambda xs: {"all": xs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda xs: {"any": xs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda x: {"not": x}, inner),
        ),
        max_leaves=4,
    )


VALID_ARGS: dict[str, st.SearchStrategy[Any]] = {
    "split_name": st.sampled_from(["first", "last"]),
    "e164": st.one_of(
        st.none(),
        st.sampled_from(["GB", "US", "JP"]),
        st.fixed_dictionaries(
            {}, optional={"region": st.sampled_from(["GB", "JP"]), "region_from": valid_paths}
        ),
    ),
    "cents_to_decimal": st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {}, optional={"currency": st.sampled_from(["JPY", "KWD", "EUR"]), "currency_from": valid_paths}
        ),
    ),
    "to_utc": st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {},
            optional={
                "format": st.sampled_from(TIME_FORMATS),
                "tz": st.sampled_from(["Europe/London", "Asia/Tokyo"]),
            },
        ),
    ),
    "to_date": st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {},
            optional={
                "format": st.sampled_from(TIME_FORMATS),
                "tz": st.sampled_from(["Europe/London", "UTC"]),
            },
        ),
    ),
    "lookup": st.fixed_dictionaries(
        {
            "table": st.dictionaries(
                st.text(max_size=5),
                st.one_of(scalars, st.sampled_from(["won", "lost", "open", "opted_in", "lead", "customer"])),
                max_size=4,
            )
        },
        optional={"default": scalars},
    ),
    "default": st.one_of(scalars, st.lists(scalars, max_size=2)),
    "join": st.one_of(st.none(), st.sampled_from([", ", "\n", ""])),
    "split": st.one_of(st.none(), st.sampled_from([",", " ", ";"])),
    "url_param": st.sampled_from(["utm_source", "utm_campaign", "a"]),
    "prefix": st.sampled_from(["bought-", "", "x"]),
}


@st.composite
def valid_transform_items(draw: st.DrawFn) -> Any:
    name = draw(st.sampled_from(TRANSFORM_NAMES))
    if name in VALID_ARGS:
        return {name: draw(VALID_ARGS[name])}
    return name  # a transform without an argument (or a plugin's: no argument tried)


def valid_directives(target: str) -> st.SearchStrategy[Any]:
    source = st.one_of(
        st.builds(lambda p: {"path": p}, valid_paths),
        st.builds(lambda ps: {"coalesce": ps}, st.lists(valid_paths, min_size=1, max_size=3)),
        st.builds(lambda v: {"value": v}, scalars),
        st.builds(lambda t: {"template": t}, valid_templates),
    )
    extras = st.fixed_dictionaries(
        {},
        optional={
            "transforms": st.lists(valid_transform_items(), max_size=3),
            "when": valid_conditions(),
            "on_error": st.sampled_from(["fail", "skip"]),
        },
    )
    directive = st.one_of(valid_paths, st.builds(lambda a, b: {**a, **b}, source, extras))
    if target.endswith("[]"):
        return st.builds(
            lambda each, fields: {"each": each, "fields": fields},
            valid_paths,
            st.dictionaries(st.sampled_from(LINE_ITEM_FIELDS), directive, min_size=1, max_size=4),
        )
    return directive


@st.composite
def valid_specs(draw: st.DrawFn) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for target in draw(st.lists(st.sampled_from(TARGETS), min_size=1, max_size=8, unique=True)):
        if target.endswith(".<key>"):
            target = target.removesuffix("<key>") + draw(st.sampled_from(KEYS))
        fields[target] = draw(valid_directives(target))
    spec: dict[str, Any] = {"event": "fuzz/event", "fields": fields}
    if draw(st.booleans()):
        spec["region_from"] = draw(valid_paths)
    if draw(st.booleans()):
        objs = draw(
            st.lists(st.sampled_from(["contact", "company", "deal", "activity"]), max_size=2, unique=True)
        )
        spec["objects"] = {obj: {"when": draw(valid_conditions())} for obj in objs}
    return spec


# --- properties ------------------------------------------------------------------------------------


def compile_only_mapping_errors(raw: Any, *, via: str) -> Mapper | None:
    try:
        if via == "yaml":
            text = yaml.safe_dump(raw, allow_unicode=True, sort_keys=False)
            return compile_spec(load_spec_text(text, file="fuzz.yaml"))
        return compile_spec(parse_spec(raw, file="fuzz.yaml"))
    except MappingError:
        return None
    except Exception as exc:
        raise AssertionError(
            f"FINDING: compiling a spec ({via}) raised {type(exc).__name__} (only MappingError may escape): "
            f"{exc!s:.300}\n  spec: {raw!r:.600}"
        ) from exc


def map_only_mapping_errors(mapper: Mapper, data: Any) -> Bundle | None:
    event = SourceEvent("fuzz/event", "fuzz-1", datetime(2024, 6, 1, tzinfo=UTC), data)
    try:
        bundle = mapper.map(event, connector="fuzz")
    except MappingError:
        return None
    except Exception as exc:
        raise AssertionError(
            f"FINDING: Mapper.map raised {type(exc).__name__} (only MappingError may escape): {exc!s:.300}\n"
            f"  spec fields: {[(d.target, d.spec) for d in mapper.source.directives]!r:.600}\n"
            f"  data: {data!r:.600}"
        ) from exc
    assert isinstance(bundle, Bundle)
    try:
        Bundle.model_validate_json(bundle.model_dump_json())
    except Exception as exc:
        raise AssertionError(
            f"FINDING: a mapped Bundle does not survive JSON: {type(exc).__name__}: {exc!s:.300}\n"
            f"  data: {data!r:.600}"
        ) from exc
    return bundle


@FUZZ
@given(raw=raw_specs(), via=st.sampled_from(["dict", "yaml"]))
def test_random_specs_compile_or_raise_mapping_error(raw: dict[str, Any], via: str) -> None:
    compile_only_mapping_errors(raw, via=via)


@FUZZ
@given(raw=valid_specs(), data=st.lists(event_data, min_size=1, max_size=3))
def test_compiled_random_specs_map_random_data(raw: dict[str, Any], data: list[dict[str, Any]]) -> None:
    mapper = compile_only_mapping_errors(raw, via="dict")
    assume(mapper is not None)  # a literal `value` may still be refused (enum targets)
    note(f"compiled: {mapper!r}")
    for item in data:
        map_only_mapping_errors(mapper, item)


@FUZZ
@given(
    fields=st.dictionaries(
        st.sampled_from(TARGETS).map(lambda t: t.replace("<key>", "k")),
        st.sampled_from(KEYS),
        min_size=1,
        max_size=8,
    ),
    steps=st.lists(transform_items(), max_size=3),
    data=event_data,
)
def test_valid_paths_with_random_transforms_map_random_data(
    fields: dict[str, str], steps: list[Any], data: dict[str, Any]
) -> None:
    """Mostly-valid specs (every field a plain path, the same transform chain on each), so
    many compile and the data, not the spec, decides what happens."""
    spec_fields_: dict[str, Any] = {}
    for target, path in fields.items():
        if target.endswith("[]"):
            spec_fields_[target] = {
                "each": f"{path}[*]",
                "fields": {
                    "name": {"path": "name", "transforms": steps},
                    "quantity": "q",
                    "unit_price": "amount",
                },
            }
        else:
            spec_fields_[target] = {"path": path, "transforms": steps}
    mapper = compile_only_mapping_errors({"event": "fuzz/event", "fields": spec_fields_}, via="dict")
    assume(mapper is not None)
    map_only_mapping_errors(mapper, data)


SHIPPED_SPEC = {
    "event": "fuzz/event",
    "region_from": "country",
    "objects": {"company": {"when": {"exists": "b"}}},
    "fields": {
        "contact.email": {"path": "email", "transforms": ["trim", "lower"]},
        "contact.phone": {"path": "phone", "transforms": ["e164"]},
    },
}


@FUZZ
@given(
    override=st.one_of(
        st.fixed_dictionaries(
            {},
            optional={
                "fields": st.one_of(spec_fields().map(lambda f: {**f, "contact.phone": None}), junk),
                "objects": st.one_of(
                    st.dictionaries(
                        st.sampled_from(["contact", "company", "lead"]),
                        st.one_of(st.builds(lambda c: {"when": c}, conditions()), junk),
                        max_size=2,
                    ),
                    junk,
                ),
                "region_from": st.one_of(paths, scalars),
                "field": scalars,
            },
        ),
        junk,
    )
)
def test_random_overrides_apply_or_raise_mapping_error(override: Any) -> None:
    """An admin's `mappings:` override from crmhub.yaml, merged over a shipped spec."""
    source = parse_spec(SHIPPED_SPEC, file="shipped.yaml")
    try:
        compile_spec(apply_overrides(source, override, file="crmhub.yaml"))
    except MappingError:
        return
    except Exception as exc:
        raise AssertionError(
            f"FINDING: apply_overrides/compile_spec raised {type(exc).__name__} "
            "(only MappingError may escape): "
            f"{exc!s:.300}\n  override: {override!r:.600}"
        ) from exc


@FUZZ
@given(
    text=st.one_of(
        st.text(max_size=200),
        st.sampled_from(
            [
                "[" * 5000,
                "{a: " * 3000,
                "- " * 5000 + "x",
                "&a [*a]",
                "!!python/object:os.system x",
                "a: !!binary ZZZ",
                "event: [\n",
                "\t",
                "%YAML 9.9\n---\na: 1",
                "a: *nope",
                "? [a]\n: b",
            ]
        ),
    )
)
def test_random_yaml_text_loads_or_raises_mapping_error(text: str) -> None:
    try:
        compile_spec(load_spec_text(text, file="fuzz.yaml"))
    except MappingError:
        return
    except Exception as exc:
        raise AssertionError(
            f"FINDING: load_spec_text raised {type(exc).__name__} (only MappingError may escape): "
            f"{exc!s:.200}\n"
            f"  text: {text!r:.200}"
        ) from exc


# --- findings: minimal reproducers, one per bug (each fails until the bug is fixed) -------------------

FINDINGS = [
    pytest.param(
        {"activity.kind": {"value": "note"}, "activity.subject": {"template": "at {t:.16}"}},
        {"t": 1718931339},
        id="template-format-spec-on-int-ValueError",
    ),
    pytest.param(
        {"activity.kind": {"value": "note"}, "activity.subject": {"template": "at {t:.16}"}},
        {"t": ["2024-06-01"]},
        id="template-format-spec-on-list-TypeError",
    ),
    pytest.param(
        {"activity.kind": {"value": "note"}, "activity.occurred_at": {"path": "t", "transforms": ["to_utc"]}},
        {"t": 10**20},
        id="to_utc-epoch-1e20-OSError",
    ),
    pytest.param(
        {"activity.kind": {"value": "note"}, "activity.occurred_at": "t"},
        {"t": "0001-01-01T00:00:00+01:00"},
        id="occurred_at-without-to_utc-OverflowError",
    ),
]


@pytest.mark.parametrize(("fields", "data"), FINDINGS)
def test_finding_map_raises_only_mapping_error(fields: dict[str, Any], data: dict[str, Any]) -> None:
    mapper = compile_spec(parse_spec({"event": "fuzz/event", "fields": fields}, file="finding.yaml"))
    map_only_mapping_errors(mapper, data)


SPEC_FINDINGS = [
    pytest.param(
        {
            "event": "e",
            "fields": {"contact.phone": {"path": "p", "transforms": [{"e164": {"region_from": 5}}]}},
        },
        id="e164-region_from-not-a-string-AttributeError",
    ),
    pytest.param(
        {"event": "e", "fields": {"contact.email": "email"}, "objects": {"company": {}}},
        id="object-options-without-when-KeyError",
    ),
]


@pytest.mark.parametrize("raw", SPEC_FINDINGS)
def test_finding_compile_raises_only_mapping_error(raw: dict[str, Any]) -> None:
    compile_only_mapping_errors(raw, via="dict")


OVERRIDE_FINDINGS = [
    pytest.param({"region_from": 1.0}, id="override-region_from-not-a-string-AttributeError"),
    pytest.param({"objects": [1, 2]}, id="override-objects-a-list-TypeError"),
    pytest.param({"objects": "company"}, id="override-objects-a-string-ValueError"),
]


@pytest.mark.parametrize("override", OVERRIDE_FINDINGS)
def test_finding_override_raises_only_mapping_error(override: dict[str, Any]) -> None:
    source = parse_spec(SHIPPED_SPEC, file="shipped.yaml")
    try:
        compile_spec(apply_overrides(source, override, file="crmhub.yaml"))
    except MappingError:
        return
    except Exception as exc:
        raise AssertionError(
            f"FINDING: apply_overrides/compile_spec raised {type(exc).__name__} "
            "(only MappingError may escape): "
            f"{exc!s:.300}\n  override: {override!r}"
        ) from exc


def test_finding_deeply_nested_yaml_raises_only_mapping_error() -> None:
    text = "[" * 2000
    try:
        load_spec_text(text, file="deep.yaml")
    except MappingError:
        return
    except Exception as exc:
        raise AssertionError(
            f"FINDING: load_spec_text raised {type(exc).__name__} on 2000 nested '[' (only MappingError may "
            f"escape): {exc!s:.200}"
        ) from exc


@pytest.mark.parametrize("number", [math.inf, -math.inf, math.nan], ids=["inf", "-inf", "nan"])
def test_finding_non_finite_number_in_custom_field_survives_json(number: float) -> None:
    """JSON bodies may carry `Infinity`/`NaN` (Python's json accepts them). Copied into a
    custom field, it must be refused (MappingError) or survive the Bundle's JSON form; a
    Bundle whose JSON silently turns it into null is the finding."""
    mapper = compile_spec(
        parse_spec(
            {
                "event": "fuzz/event",
                "fields": {"contact.email": "email", "contact.custom_fields.score": "score"},
            },
            file="finding.yaml",
        )
    )
    bundle = map_only_mapping_errors(mapper, {"email": "ann@example.com", "score": number})
    if bundle is None:
        return  # refused with a MappingError: fine
    again = Bundle.model_validate_json(bundle.model_dump_json())
    assert again.contacts[0].custom_fields == bundle.contacts[0].custom_fields, (
        f"FINDING (data integrity, low): custom field {number!r} becomes "
        f"{again.contacts[0].custom_fields.get('score')!r} once the Bundle is serialised to JSON"
    )
