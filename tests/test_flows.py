"""Flows: triggers with wildcards, safe conditions on canonical fields, validation with lines."""

from decimal import Decimal

import pytest

from hub.canonical import Bundle, Contact, Deal
from hub.errors import Issue
from hub.flows import compile_flow_condition, load_flows, matching_flows
from hub.mapping.yamlsource import parse_yaml


def bundle(amount="150.00", tags=("vip",)):
    return Bundle(
        connector="shop",
        event_type="orders/create",
        event_id="1",
        mapping_version="v",
        contacts=(Contact(email="a@b.io", tags=list(tags)),),
        deals=(Deal(amount=amount, currency="EUR"),),
    )


FLOWS = """\
flows:
  - name: big orders
    when: shop.orders/create
    if: {field: deal.amount, op: gte, value: 100}
    do: [upsert_contact, upsert_deal]
    to: crm
    tags: [buyer]
  - name: every form
    when: ["forms.*", "*.form_response"]
    do: [upsert_contact, add_activity]
    to: crm
"""


def load(text, connectors=("shop", "forms"), destinations=("crm",)):
    issues: list[Issue] = []
    flows = load_flows(
        parse_yaml(text, source="c.yaml")["flows"],
        file="c.yaml",
        connectors=dict.fromkeys(connectors),
        destinations=dict.fromkeys(destinations),
        issues=issues,
    )
    return flows, issues


def test_triggers_and_conditions():
    flows, issues = load(FLOWS)
    assert issues == []
    big, forms = flows
    assert [f.name for f in matching_flows(flows, "shop", "orders/create")] == ["big orders"]
    assert matching_flows(flows, "shop", "orders/updated") == []
    assert forms.triggered_by("forms", "form_response") and forms.triggered_by("other", "form_response")
    assert big.accepts(bundle("150.00")) and not big.accepts(bundle("99.99"))
    assert big.tags == frozenset({"buyer"})


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"field": "deal.amount", "op": "lt", "value": "200"}, True),
        ({"field": "deal.currency", "op": "eq", "value": "EUR"}, True),
        ({"field": "deal.currency", "op": "in", "value": ["USD", "GBP"]}, False),
        ({"field": "contact.tags", "op": "contains", "value": "vip"}, True),
        ({"field": "contact.phone", "op": "exists"}, False),
        ({"field": "contact.phone", "op": "blank"}, True),
        (
            {
                "all": [
                    {"field": "deal.amount", "op": "gt", "value": 100},
                    {"field": "contact.email", "op": "contains", "value": "@b.io"},
                ]
            },
            True,
        ),
        (
            {
                "any": [
                    {"field": "deal.amount", "op": "gt", "value": 1000},
                    {"field": "deal.status", "op": "eq", "value": "won"},
                ]
            },
            False,
        ),
    ],
)
def test_condition_operators(condition, expected):
    assert compile_flow_condition(condition)(bundle()) is expected


def test_validation_reports_each_problem_with_line_and_suggestion():
    text = (
        FLOWS.replace("to: crm\n    tags", "to: cmr\n    tags")
        .replace("upsert_deal]", "upsert_dael]")
        .replace("op: gte", "op: gtee")
        .replace("shop.orders", "shp.orders")
    )
    flows, issues = load(text)
    assert flows[0].name == "every form" and len(flows) == 1
    by_key = {i.key: i for i in issues}
    assert by_key["flows[0].to"].suggestion == "crm" and by_key["flows[0].to"].line == 6
    assert by_key["flows[0].do"].suggestion == "upsert_deal"
    assert "did you mean 'gte'" in by_key["flows[0].if"].message
    assert by_key["flows[0].when"].suggestion == "shop"


def test_unknown_field_in_condition_is_an_error():
    with pytest.raises(ValueError, match=r"unknown target 'deal\.amout'"):
        compile_flow_condition({"field": "deal.amout", "op": "gt", "value": 1})
    assert compile_flow_condition({"field": "deal.amount", "op": "gt", "value": Decimal(1)})(bundle())
