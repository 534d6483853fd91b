"""The mapping engine's speed-ups keep its semantics: per-record memo, filter index,
shared directives and conditions, fused transform chains."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from hub import MappingError, SourceEvent
from hub.mapping import compile_spec, load_spec_text, memo
from hub.mapping.paths import compile_path

SPEC = """\
event: form
objects:
  contact: {when: {any: [{exists: "answers[ref=email].email"}, {exists: "answers[ref=phone].text"}]}}
  activity: {when: {any: [{exists: "answers[ref=email].email"}, {exists: "answers[ref=phone].text"}]}}
fields:
  contact.email: "answers[ref=email].email"
  contact.first_name: {path: "answers[ref=name].text", transforms: [{split_name: first}]}
  contact.last_name: {path: "answers[ref=name].text", transforms: [{split_name: last}]}
  contact.address.country: {path: hidden.country, transforms: [country]}
  contact.lead_source.source: {path: landing, transforms: [{url_param: utm_source}]}
  contact.lead_source.medium: {path: landing, transforms: [{url_param: utm_medium}]}
  deal.currency: {coalesce: [hidden.currency, hidden.fallback], transforms: [trim, currency]}
  deal.title: {coalesce: [hidden.currency, hidden.fallback], transforms: [trim, currency]}
  activity.kind: {value: form_submitted}
  activity.occurred_at: {path: submitted_at, transforms: [to_utc]}
"""


def mapper():
    return compile_spec(load_spec_text(SPEC, file="form.yaml"))


def event(data):
    return SourceEvent("form", "e1", datetime(2024, 1, 1, tzinfo=UTC), data)


def payload(**hidden):
    return {
        "answers": [
            {"ref": "email", "email": "first@example.com"},
            {"ref": "name", "text": "Ann Lee"},
            {"ref": "email", "email": "second@example.com"},  # a duplicate ref: the first wins
            "not a dict",
            {"ref": 7, "text": "a number ref"},
        ],
        "hidden": {"country": "United Kingdom", "currency": " eur ", **hidden},
        "landing": "https://shop.example/?utm_source=ig&utm_medium=social",
        "submitted_at": "2024-06-01T12:00:00+09:00",
    }


def test_filters_shared_conditions_and_memoised_transforms_map_as_before():
    bundle = mapper().map(event(payload()), connector="forms")
    (contact,) = bundle.contacts
    assert contact.email == "first@example.com"
    assert (contact.first_name, contact.last_name) == ("Ann", "Lee")
    assert contact.address is not None and contact.address.country == "GB"
    assert contact.lead_source is not None
    assert (contact.lead_source.source, contact.lead_source.medium) == ("ig", "social")
    (deal,) = bundle.deals
    assert deal.currency == "EUR" and deal.title == "EUR"
    assert len(bundle.activities) == 1


def test_the_memo_does_not_outlive_a_call():
    m = mapper()
    data = payload()
    assert m.map(event(data), connector="forms").contacts[0].email == "first@example.com"
    data["answers"][0]["email"] = "changed@example.com"  # the same list object, changed
    data["landing"] = "/?utm_source=mail"
    contact = m.map(event(data), connector="forms").contacts[0]
    assert contact.email == "changed@example.com"
    assert contact.lead_source is not None and contact.lead_source.source == "mail"
    del data["answers"][0:3]  # no email answer left: contact and activity are skipped
    bundle = m.map(event(data), connector="forms")
    assert bundle.contacts == () and bundle.activities == ()


def test_a_shared_directive_that_fails_names_each_target():
    with pytest.raises(MappingError) as caught:
        mapper().map(event(payload(currency="ZZZ")), connector="forms")
    keys = {issue.key for issue in caught.value.issues}
    assert {"deal.currency", "deal.title"} <= keys


def test_a_filter_reads_the_first_match_inside_and_outside_a_mapping_call():
    getter = compile_path("answers[ref=email].email")
    numeric = compile_path("answers[ref=7].text")
    data = payload()
    assert getter(data, data) == "first@example.com"  # no memo: read afresh
    token = memo.open_scope()
    try:
        assert getter(data, data) == "first@example.com"
        assert numeric(data, data) == "a number ref"
        assert compile_path("answers[ref=none].text")(data, data) is None
        assert compile_path("hidden[ref=x]")(data, data) is None  # not a list
    finally:
        memo.close(token)


def test_concurrent_calls_keep_their_own_memo():
    m = mapper()
    results: dict[int, object] = {}

    def run(index: int) -> None:
        data = payload()
        data["answers"][0]["email"] = f"user{index}@example.com"
        try:
            for _ in range(50):
                results[index] = m.map(event(data), connector="forms").contacts[0].email
        except Exception as exc:  # reported by the assertion below
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {i: f"user{i}@example.com" for i in range(4)}


def test_a_transform_error_names_the_transform_in_a_fused_chain():
    with pytest.raises(MappingError) as caught:
        mapper().map(event(payload(currency={"code": "eur"})), connector="forms")
    assert any("trim:" in issue.message for issue in caught.value.issues)
