"""The mapping engine: paths, directives, conditions, errors with file/line/key, overrides."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from hub import MappingError, SourceEvent
from hub.mapping import MappingSet, apply_overrides, compile_spec, load_spec_text
from hub.mapping.paths import PathSyntaxError, compile_path
from hub.mapping.yamlsource import parse_yaml

SPEC = """\
event: orders/create
region_from: billing.country_code
objects:
  company: {when: {exists: billing.company}}
fields:
  contact.email: {coalesce: [customer.email, email]}
  contact.phone: {coalesce: [customer.phone, billing.phone], transforms: [e164]}
  contact.first_name: {path: billing.name, transforms: [{split_name: first}]}
  contact.last_name: {path: billing.name, transforms: [{split_name: last}]}
  contact.tags: {path: customer.tags, transforms: [{split: ","}]}
  contact.external_ids.shop: customer.id
  contact.lead_source.campaign: {path: landing_site, transforms: [{url_param: utm_campaign}]}
  company.name: billing.company
  deal.title: {template: "Order {name} ({currency})"}
  deal.amount: {path: total, transforms: [to_decimal]}
  deal.currency: {path: currency, transforms: [currency]}
  deal.status:
    path: financial_status
    transforms: [{lookup: {table: {paid: won, refunded: lost}, default: open}}]
  deal.external_ids.shop: id
  deal.line_items[]:
    each: items[*]
    fields:
      sku: sku
      quantity: qty
      unit_price: {path: price, transforms: [to_decimal]}
  activity.kind: {value: order_placed}
  activity.occurred_at: {path: created_at, transforms: [to_utc]}
  activity.body: {value: "big order", when: {path: financial_status, in: [paid]}}
"""

ORDER = {
    "id": 1001,
    "name": "#1001",
    "email": "  Hiro@Example.JP ",
    "total": "12,500",
    "currency": "jpy",
    "financial_status": "paid",
    "created_at": "2024-06-01T12:00:00+09:00",
    "landing_site": "/?utm_campaign=summer&utm_source=ig",
    "customer": {"id": 7, "tags": "vip, ,wholesale"},
    "billing": {"name": "山田 太郎", "country_code": "JP", "phone": "03-1234-5678", "company": ""},
    "items": [{"sku": "T1", "qty": 2, "price": "6250"}, {"sku": None}],
}


def event(data, type_="orders/create"):
    return SourceEvent(type_, "evt-1", datetime.now(UTC), data)


def mapper(text=SPEC, **kw):
    return compile_spec(load_spec_text(text, file="mappings/shop/orders_create.yaml"), **kw)


def test_maps_an_order_into_a_clean_bundle():
    bundle = mapper().map(event(ORDER), connector="shop")
    (contact,) = bundle.contacts
    assert contact.email == "hiro@example.jp"
    assert contact.phone == "+81312345678"  # national number, region from billing country
    assert (contact.first_name, contact.last_name) == ("太郎", "山田")
    assert contact.tags == frozenset({"vip", "wholesale"})
    assert contact.lead_source is not None and contact.lead_source.campaign == "summer"
    assert bundle.companies == ()  # object condition: billing.company is blank
    (deal,) = bundle.deals
    assert deal.title == "Order #1001 (jpy)"
    assert (deal.amount, deal.currency, deal.status) == (Decimal("12500"), "JPY", "won")
    assert [(i.sku, i.quantity, i.unit_price) for i in deal.line_items] == [("T1", 2, Decimal("6250"))]
    (activity,) = bundle.activities
    assert activity.occurred_at == datetime(2024, 6, 1, 3, tzinfo=UTC)
    assert activity.body == "big order"
    assert (bundle.connector, bundle.event_id, bundle.mapping_version) == ("shop", "evt-1", mapper().version)


def test_field_condition_and_lookup_default():
    data = {**ORDER, "financial_status": "pending"}
    bundle = mapper().map(event(data), connector="shop")
    assert bundle.deals[0].status == "open" and bundle.activities[0].body is None


def test_runtime_errors_name_the_field_and_never_the_value():
    data = {**ORDER, "email": "not-an-email", "total": "lots"}
    with pytest.raises(MappingError) as info:
        mapper().map(event(data), connector="shop")
    text = str(info.value)
    assert "deal.amount" in text and "to_decimal" in text
    data = {**ORDER, "email": "not-an-email"}
    with pytest.raises(MappingError, match=r"contact\.email: not a valid email") as info:
        mapper().map(event(data), connector="shop")
    assert "not-an-email" not in str(info.value)


def test_load_errors_are_reported_together_with_file_line_key_and_suggestion():
    bad = (
        SPEC.replace("contact.email:", "contact.emial:")
        .replace("[e164]", "[e165]")
        .replace("split_name: first", "split_name: middle")
        + "  deal.stauts: {value: won}\nextra: 1\n"
    )
    with pytest.raises(MappingError) as info:
        mapper(bad)
    issues = info.value.issues
    by_key = {i.key: i for i in issues}
    assert by_key["contact.emial"].line == 6 and by_key["contact.emial"].suggestion == "contact.email"
    assert "e164" in by_key["contact.phone"].message and by_key["contact.phone"].line == 7
    assert "'first' or 'last'" in by_key["contact.first_name"].message
    assert by_key["deal.stauts"].suggestion == "deal.status"
    assert by_key["extra"].message == "unknown key 'extra'"
    assert all(i.file == "mappings/shop/orders_create.yaml" for i in issues)
    assert "mappings/shop/orders_create.yaml:6: contact.emial" in str(info.value)


def test_yaml_syntax_error_has_a_line():
    with pytest.raises(MappingError, match=r"x.yaml:4: invalid YAML"):
        load_spec_text("event: a\nfields:\n  a: [\n", file="x.yaml")


def test_literal_checked_against_enum_choices():
    with pytest.raises(MappingError, match="did you mean 'won'"):
        mapper("event: e\nfields:\n  deal.status: {value: wn}\n")


def test_overrides_replace_add_remove_and_extend():
    source = load_spec_text(SPEC, file="shipped.yaml")
    override = parse_yaml(
        "fields:\n"
        "  contact.custom_fields.budget: budget\n"
        "  contact.tags+: {value: [from-config]}\n"
        "  contact.last_name: null\n",
        source="crmhub.yaml",
    )
    merged = apply_overrides(source, override, file="crmhub.yaml")
    compiled = compile_spec(merged)
    assert compiled.version != mapper().version
    bundle = compiled.map(event({**ORDER, "budget": 5000}), connector="shop")
    contact = bundle.contacts[0]
    assert contact.custom_fields == {"budget": 5000}
    assert contact.tags == frozenset({"vip", "wholesale", "from-config"})
    assert contact.last_name is None


def test_mapping_set_reports_overrides_for_unknown_events(tmp_path):
    (tmp_path / "orders_create.yaml").write_text(SPEC)
    with pytest.raises(MappingError, match="no shipped mapping for event 'orders/creat'") as info:
        MappingSet.load(tmp_path, overrides={"orders/creat": {"fields": {}}})
    assert info.value.issues[0].suggestion == "orders/create"
    mappings = MappingSet.load(tmp_path)
    assert mappings.events == ["orders/create"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a.b[0].c", 1),
        ("a.b[-1].c", 2),
        ("a.b[*].c", [1, 2]),
        ("a.b[f.r=y].c", 2),
        ("a.b[f.r=z].c", None),
        ('a["dotted.key"]', "d"),
        ("a.missing.deeper", None),
        ("a.b.c", None),
    ],
)
def test_paths(path, expected):
    data = {"a": {"b": [{"c": 1, "f": {"r": "x"}}, {"c": 2, "f": {"r": "y"}}], "dotted.key": "d"}}
    assert compile_path(path)(data, data) == expected


@pytest.mark.parametrize("path", ["", "a..b", "a.", ".a", "a[", "a]b", "a[0"])
def test_bad_paths(path):
    with pytest.raises(PathSyntaxError):
        compile_path(path)


def test_each_reads_root_with_dollar():
    spec = (
        "event: e\nfields:\n  deal.external_ids.x: id\n  deal.line_items[]:\n    each: items[*]\n"
        "    fields:\n      name: {template: '{$.prefix}-{n}'}\n"
    )
    bundle = mapper(spec).map(
        event({"id": 1, "prefix": "P", "items": [{"n": "a"}, {"n": "b"}]}), connector="c"
    )
    assert [i.name for i in bundle.deals[0].line_items] == ["P-a", "P-b"]
