"""Transforms: examples per transform, and property tests that nothing but MappingError escapes."""

import unicodedata
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub import MappingError
from hub.mapping import transforms
from hub.mapping.names import split_full_name
from hub.mapping.transforms import CompileContext

CTX = CompileContext(region_from="country", default_region="US")

#: Every registered transform with a representative argument.
ARGS = {
    "trim": None,
    "lower": None,
    "upper": None,
    "title": None,
    "to_str": None,
    "currency": None,
    "country": None,
    "split_name": "first",
    "e164": None,
    "to_decimal": None,
    "cents_to_decimal": {"currency_from": "cur"},
    "to_utc": None,
    "to_date": None,
    "lookup": {"table": {"a": 1}, "default": 0},
    "default": "x",
    "join": ", ",
    "split": ",",
    "bool": None,
    "first": None,
    "url_param": "utm_source",
    "domain": None,
    "to_int": None,
    "prefix": "p-",
}


def run(name, value, arg=None, node=None):
    fn = transforms.build(name, arg if arg is not None else ARGS[name], CTX)
    return fn(value, node or {}, node or {})


def test_every_registered_transform_is_covered_and_documented():
    assert set(ARGS) == set(transforms.REGISTRY)
    for name, spec in transforms.REGISTRY.items():
        assert spec.factory.__doc__ and "transforms:" in spec.factory.__doc__, f"{name} docstring lacks YAML"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=40)
    | st.sampled_from(
        [
            "",
            " ",
            "1,250.00",
            "2024-13-45",
            "/Date(171893)/",
            "+44 20",
            "jpy",
            "1e999",
            "http://x/?utm_source=a",
            "a@b",
            "NaN",
            "-0",
            "１２３",
        ]
    ),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@pytest.mark.parametrize("name", sorted(ARGS))
@settings(max_examples=150, deadline=None)
@given(value=json_values, node=st.dictionaries(st.sampled_from(["country", "cur"]), json_values, max_size=2))
def test_transforms_raise_only_mapping_error(name, value, node):
    try:
        run(name, value, node=node)
    except MappingError:
        pass


@pytest.mark.parametrize(
    ("name", "value", "arg", "expected"),
    [
        ("trim", ["  a ", " "], None, ["a"]),
        ("lower", "Ann@X.IO", None, "ann@x.io"),
        ("title", "ann lee", None, "Ann Lee"),
        ("e164", "020 7946 0018", {"region": "GB"}, "+442079460018"),
        ("e164", "(415) 555-0132", None, "+14155550132"),
        ("to_decimal", "1,250.50", None, Decimal("1250.50")),
        ("to_decimal", 12.1, None, Decimal("12.1")),
        ("cents_to_decimal", 125050, {"currency": "EUR"}, Decimal("1250.50")),
        ("cents_to_decimal", 1250, {"currency": "JPY"}, Decimal("1250")),
        ("cents_to_decimal", 1250, {"currency": "KWD"}, Decimal("1.250")),
        ("to_utc", "2024-06-01T12:00:00+09:00", None, datetime(2024, 6, 1, 3, tzinfo=UTC)),
        ("to_utc", 1718931339, None, datetime(2024, 6, 21, 0, 55, 39, tzinfo=UTC)),
        ("to_utc", "1718931339902", None, datetime(2024, 6, 21, 0, 55, 39, 902000, tzinfo=UTC)),
        ("to_utc", "/Date(1718931339902+0000)/", None, datetime(2024, 6, 21, 0, 55, 39, 902000, tzinfo=UTC)),
        ("to_utc", "2025-01-15T10:20:30+0000", None, datetime(2025, 1, 15, 10, 20, 30, tzinfo=UTC)),
        (
            "to_utc",
            "01/06/2024 09:00",
            {"format": "%d/%m/%Y %H:%M", "tz": "Asia/Tokyo"},
            datetime(2024, 6, 1, 0, tzinfo=UTC),
        ),
        ("to_date", "2024-06-30", None, date(2024, 6, 30)),
        ("currency", " eur ", None, "EUR"),
        ("country", "United Kingdom", None, "GB"),
        ("country", "DEU", None, "DE"),
        ("lookup", "PAID", {"table": {"paid": "won"}}, "won"),
        ("lookup", "other", {"table": {"paid": "won"}}, None),
        ("lookup", True, {"table": {"true": "opted_in"}}, "opted_in"),
        ("default", "", "lead", "lead"),
        ("default", None, "lead", "lead"),
        ("join", ["a", None, "b"], " | ", "a | b"),
        ("split", "vip, ,wholesale", ",", ["vip", "wholesale"]),
        ("bool", "Yes", None, True),
        ("bool", "0", None, False),
        ("first", [None, "", "x", "y"], None, "x"),
        ("url_param", "https://shop.example/?utm_source=ig&a=1", "utm_source", "ig"),
        ("domain", "Ann@Acme.IO", None, "acme.io"),
        ("domain", "https://www.acme.io/about", None, "acme.io"),
        ("to_int", "3", None, 3),
        ("prefix", "buyer", "shopify-", "shopify-buyer"),
    ],
)
def test_transform_examples(name, value, arg, expected):
    assert run(name, value, arg) == expected


def test_e164_takes_region_from_the_record():
    assert run("e164", "03-1234-5678", node={"country": "Japan"}) == "+81312345678"


def test_missing_values_pass_through_except_default():
    for name in ARGS:
        if name != "default":
            assert run(name, None) is None, name


@pytest.mark.parametrize(
    ("name", "arg"),
    [
        ("split_name", "middle"),
        ("lookup", 3),
        ("lookup", {"tabel": {}}),
        ("to_utc", {"tz": "Mars/Base"}),
        ("e164", {"regin": "GB"}),
        ("url_param", None),
        ("cents_to_decimal", {"currency": "XXQ"}),
        ("trim", "arg"),
    ],
)
def test_bad_arguments_fail_at_compile(name, arg):
    with pytest.raises((ValueError, MappingError)):
        transforms.build(name, arg, CTX)


@pytest.mark.parametrize(
    ("full", "expected"),
    [
        ("Ann Lee", ("Ann", "Lee")),
        ("  Mary  Ann   Smith ", ("Mary Ann", "Smith")),
        ("Ludwig van Beethoven", ("Ludwig", "van Beethoven")),
        ("Lee, Ann", ("Ann", "Lee")),
        ("Sukarno", ("Sukarno", None)),
        ("山田 太郎", ("太郎", "山田")),
        ("山田\u3000太郎", ("太郎", "山田")),
        ("山田太郎", ("山田太郎", None)),
        ("Dr. Zoë Ångström", ("Zoë", "Ångström")),
        ("", (None, None)),
    ],
)
def test_split_full_name(full, expected):
    assert split_full_name(full) == expected


@given(st.text(max_size=60))
def test_split_full_name_never_raises_and_keeps_words(full):
    first, last = split_full_name(full)
    source = unicodedata.normalize("NFC", full)
    for part in (first, last):
        assert part is None or (part == part.strip() and part)
        for word in (part or "").split():
            assert word in source
