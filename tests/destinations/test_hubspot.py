"""HubSpot destination against `FakeHubSpot`: merge rules, idempotency, batching, errors, check()."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from hub.canonical import Activity, Company, Contact, Deal
from hub.delivery.writer import split_on_permanent
from hub.destination import ActivityWrite, ContactWrite, DealWrite, Written
from hub.destinations.hubspot import HubSpotDestination, HubSpotSettings
from hub.destinations.hubspot.errors import ConflictError
from hub.destinations.hubspot.fake import DEFAULT_TOKEN, FakeHubSpot
from hub.errors import AuthDeliveryError, PermanentDeliveryError, TransientDeliveryError

BASE = "https://api.hubapi.com"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake() -> FakeHubSpot:
    # A budget no single test reaches: the rate-limit tests build their own fake.
    return FakeHubSpot(requests_per_10s=100_000, search_per_second=100_000)


def crm(fake: Callable[[httpx.Request], httpx.Response], **settings: Any) -> HubSpotDestination:
    client = httpx.Client(transport=httpx.MockTransport(fake), base_url=BASE)
    settings.setdefault("access_token", DEFAULT_TOKEN)
    return HubSpotDestination(HubSpotSettings(**settings), client=client)


def posted(fake: FakeHubSpot, endpoint: str) -> list[Any]:
    return [r.body for r in fake.requests if r.endpoint == endpoint]


def order(n: int = 1, **fields: Any) -> Deal:
    return Deal(
        **{
            "title": f"Order #{n}",
            "amount": "129.90",
            "currency": "EUR",
            "external_ids": {"shopify": str(n)},
            **fields,
        }
    )


def note(n: int = 1, **fields: Any) -> Activity:
    return Activity(
        **{
            "kind": "order_paid",
            "occurred_at": datetime(2026, 11, 23, 10, tzinfo=UTC),
            "subject": f"Paid order {n}",
            "external_ids": {"shopify": str(n)},
            **fields,
        }
    )


# -- contacts: create, then merge --------------------------------------------------------------


def test_contact_create_then_update_follows_the_merge_rules(fake: FakeHubSpot) -> None:
    hub = crm(fake)
    first = hub.upsert_contact(
        Contact(
            email="ada@example.com",
            first_name="Ada",
            phone="+442071234567",
            tags={"vip"},
            lifecycle_stage="lead",
        )
    )
    again = hub.upsert_contact(
        Contact(
            email="ADA@example.com",
            first_name="Adaline",
            last_name="Lovelace",
            tags={"newsletter"},
            lifecycle_stage="subscriber",
        )
    )
    assert again == first
    (stored,) = fake.contacts
    assert stored["firstname"] == "Ada"  # filled before: not overwritten by default
    assert stored["lastname"] == "Lovelace"  # empty before: filled
    assert stored["phone"] == "+442071234567"  # absent from the update: never cleared
    assert stored["crmhub_tags"] == "newsletter;vip"  # a union
    assert stored["lifecyclestage"] == "lead"  # never backwards
    hub.upsert_contact(Contact(email="ada@example.com", lifecycle_stage="customer"))
    assert fake.contacts[0]["lifecyclestage"] == "customer"  # forwards
    hub.upsert_contact(Contact(email="ada@example.com", lifecycle_stage="other"))
    assert fake.contacts[0]["lifecyclestage"] == "customer"  # `other` never replaces a known stage
    for body in posted(fake, "POST /crm/v3/objects/contacts/batch/update"):
        for entry in body["inputs"]:
            assert "" not in entry["properties"].values()  # "" would clear a HubSpot property


def test_overwrite_lists_the_fields_the_hub_owns(fake: FakeHubSpot) -> None:
    hub = crm(fake, overwrite=["first_name"])
    hub.upsert_contact(Contact(email="ada@example.com", first_name="Ada", job_title="Engineer"))
    hub.upsert_contact(Contact(email="ada@example.com", first_name="Adaline", job_title="CTO"))
    assert fake.contacts[0]["firstname"] == "Adaline"
    assert fake.contacts[0]["jobtitle"] == "Engineer"


def test_an_unchanged_contact_costs_one_read_and_no_write(fake: FakeHubSpot) -> None:
    hub = crm(fake)
    contact = Contact(email="ada@example.com", first_name="Ada", tags={"vip"})
    hub.upsert_contact(contact)
    fake.calls.clear()
    hub.upsert_contact(contact)
    assert dict(fake.calls) == {"POST /crm/v3/objects/contacts/batch/read": 1}


def test_custom_fields_and_lead_source_go_to_mapped_properties_only(fake: FakeHubSpot) -> None:
    fake.properties["contacts"]["plan_tier"] = dict(fake.properties["contacts"]["city"], name="plan_tier")
    hub = crm(fake, properties={"custom_fields.plan": "plan_tier", "lead_source.campaign": None})
    hub.upsert_contact(
        Contact(
            email="ada@example.com",
            custom_fields={"plan": "pro", "unmapped": 1},
            lead_source={"campaign": "spring"},
        )
    )
    stored = fake.contacts[0]
    assert stored["plan_tier"] == "pro"
    assert "unmapped" not in json.dumps(stored)


def test_the_fake_itself_keeps_lifecyclestage_forward(fake: FakeHubSpot) -> None:
    contact_id = fake.add_record("contacts", email="ada@example.com", lifecyclestage="customer")
    client = httpx.Client(transport=httpx.MockTransport(fake), base_url=BASE)
    answer = client.patch(
        f"/crm/v3/objects/contacts/{contact_id}",
        json={"properties": {"lifecyclestage": "lead"}},
        headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"},
    )
    assert answer.status_code == 200
    assert fake.contacts[0]["lifecyclestage"] == "customer"


def test_contacts_without_email_use_the_external_id_and_never_merge_on_phone(fake: FakeHubSpot) -> None:
    hub = crm(fake)
    keyed = Contact(phone="+442071234567", first_name="Ada", external_ids={"typeform": "r1"})
    assert hub.upsert_contact(keyed) == hub.upsert_contact(keyed)
    assert len(fake.contacts) == 1
    hub.upsert_contact(Contact(phone="+442071234567", first_name="Bob", external_ids={"typeform": "r2"}))
    assert len(fake.contacts) == 2  # the same phone is a candidate only: a second contact


def test_the_same_email_twice_in_one_batch_is_one_contact(fake: FakeHubSpot) -> None:
    hub = crm(fake)
    results = hub.upsert_contacts(
        [
            ContactWrite(Contact(email="ada@example.com", tags={"a"})),
            ContactWrite(Contact(email="ada@example.com", tags={"b"})),
        ]
    )
    assert results[0] == results[1]
    assert fake.contacts[0]["crmhub_tags"] == "a;b"


def test_add_tags_is_a_union_and_adds_checkbox_options(fake: FakeHubSpot) -> None:
    hub = crm(fake)
    contact_id = hub.upsert_contact(Contact(email="ada@example.com", tags={"vip"}))
    hub.add_tags(contact_id, ["b2b", "vip", "semi;colon"])
    assert fake.contacts[0]["crmhub_tags"] == "b2b;semi colon;vip"
    options = {o["value"] for o in fake.properties["contacts"]["crmhub_tags"]["options"]}
    assert options == {"b2b", "semi colon", "vip"}
    with pytest.raises(PermanentDeliveryError, match="no contact"):
        hub.add_tags("999", ["x"])


# -- batching --------------------------------------------------------------------------------


def test_a_batch_of_100_contacts_is_one_upsert_request(fake: FakeHubSpot) -> None:
    hub = crm(fake)
    writes = [ContactWrite(Contact(email=f"p{n}@example.com", first_name=f"P{n}")) for n in range(100)]
    results = hub.upsert_contacts(writes)
    assert all(isinstance(r, Written) for r in results)
    assert len({r.id for r in results if isinstance(r, Written)}) == 100
    # One read (the merge rules need HubSpot's values) and one write for the 100.
    assert dict(fake.calls) == {
        "POST /crm/v3/objects/contacts/batch/read": 1,
        "POST /crm/v3/objects/contacts/batch/upsert": 1,
    }
    assert [c["email"] for c in fake.contacts] == [f"p{n}@example.com" for n in range(100)]


def test_when_the_hub_owns_every_field_a_batch_is_one_upsert_and_no_read(fake: FakeHubSpot) -> None:
    hub = crm(fake, overwrite=["*"])
    people = [
        Contact(email=f"p{n}@example.com", first_name=f"P{n}", phone="+442071234567") for n in range(100)
    ]
    first = hub.upsert_contacts([ContactWrite(c) for c in people])
    assert dict(fake.calls) == {"POST /crm/v3/objects/contacts/batch/upsert": 1}
    fake.calls.clear()
    renamed = [c.model_copy(update={"first_name": "Renamed"}) for c in people]
    again = hub.upsert_contacts([ContactWrite(c, known_id=r.id) for c, r in zip(renamed, first, strict=True)])
    assert [r.id for r in again] == [r.id for r in first]  # same records, by email
    assert dict(fake.calls) == {"POST /crm/v3/objects/contacts/batch/upsert": 1}
    assert {c["firstname"] for c in fake.contacts} == {"Renamed"} and len(fake.contacts) == 100
    fake.calls.clear()
    # Tags are a union and a stage only moves forward: those still read HubSpot first.
    hub.upsert_contacts([ContactWrite(people[0].model_copy(update={"tags": {"vip"}}))])
    assert fake.calls["POST /crm/v3/objects/contacts/batch/read"] == 1


def test_a_batch_over_the_maximum_is_split_in_requests_of_100(fake: FakeHubSpot) -> None:
    hub = crm(fake)
    results = hub.upsert_contacts([ContactWrite(Contact(email=f"p{n}@example.com")) for n in range(250)])
    assert len(results) == 250 and all(isinstance(r, Written) for r in results)
    sizes = [len(b["inputs"]) for b in posted(fake, "POST /crm/v3/objects/contacts/batch/upsert")]
    assert sizes == [100, 100, 50]
    assert len(fake.contacts) == 250


def test_the_fake_refuses_more_than_100_inputs(fake: FakeHubSpot) -> None:
    client = httpx.Client(transport=httpx.MockTransport(fake), base_url=BASE)
    inputs = [{"id": f"p{n}@example.com", "idProperty": "email", "properties": {}} for n in range(101)]
    answer = client.post(
        "/crm/v3/objects/contacts/batch/upsert",
        json={"inputs": inputs},
        headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"},
    )
    assert answer.status_code == 400
    assert answer.json()["category"] == "VALIDATION_ERROR"


def test_one_bad_record_fails_the_batch_and_the_hub_splits_it_down(fake: FakeHubSpot) -> None:
    fake.properties["contacts"]["plan_tier"] = dict(
        fake.properties["contacts"]["lifecyclestage"], name="plan_tier"
    )
    hub = crm(fake, properties={"custom_fields.plan": "plan_tier"})
    writes = [ContactWrite(Contact(email=f"p{n}@example.com")) for n in range(7)]
    writes[4] = ContactWrite(Contact(email="bad@example.com", custom_fields={"plan": "not-an-option"}))
    with pytest.raises(PermanentDeliveryError, match="not-an-option was not one of the allowed options"):
        hub.upsert_contacts(writes)
    assert fake.contacts == []  # HubSpot refused the whole batch
    results = split_on_permanent(hub.upsert_contacts, writes)  # what the delivery layer does
    assert [isinstance(r, Written) for r in results] == [True] * 4 + [False] + [True] * 2
    assert "INVALID_OPTION" in str(results[4])
    assert len(fake.contacts) == 6


def test_per_item_errors_come_back_per_item(fake: FakeHubSpot) -> None:
    hub = crm(fake)
    contact_id = hub.upsert_contact(Contact(email="ada@example.com"))
    writes = [ActivityWrite(note(n), contact_id=contact_id) for n in range(3)]
    writes[1] = ActivityWrite(note(1), contact_id=contact_id, deal_id="424242")  # no such deal
    results = hub.add_activities(writes)
    assert isinstance(results[0], Written) and isinstance(results[2], Written)
    assert isinstance(results[1], PermanentDeliveryError) and "424242" in str(results[1])
    assert len(fake.notes) == 2
    deals = hub.upsert_deals(
        [DealWrite(order(1), contact_id=contact_id), DealWrite(order(2), contact_id="999")]
    )
    assert isinstance(deals[0], Written)
    assert isinstance(deals[1], PermanentDeliveryError) and "999" in str(deals[1])


# -- deals -----------------------------------------------------------------------------------


def test_a_deal_retried_after_commit_then_fail_is_one_deal(fake: FakeHubSpot) -> None:
    hub = crm(fake)
    contact_id = hub.upsert_contact(Contact(email="ada@example.com"))
    fake.commit_then_fail_rate = 1.0
    with pytest.raises(TransientDeliveryError):
        hub.upsert_deal(order(1001), contact_id=contact_id, company_id=None)
    assert len(fake.deals) == 1  # the write committed; the answer was lost
    fake.commit_then_fail_rate = 0.0
    deal_id = hub.upsert_deal(order(1001), contact_id=contact_id, company_id=None)
    assert [d["id"] for d in fake.deals] == [deal_id]
    assert fake.deals[0]["crmhub_external_id"] == "shopify:1001"
    assert fake.associated("deals", deal_id, "contacts") == {contact_id}


def test_deal_stage_amount_and_closed_status(fake: FakeHubSpot) -> None:
    hub = crm(fake, deal_stages={"paid": "contractsent"})
    deal_id = hub.upsert_deal(order(1, stage="paid"), contact_id=None, company_id=None)
    assert fake.deals[0]["id"] == deal_id
    assert (fake.deals[0]["dealstage"], fake.deals[0]["amount"]) == ("contractsent", "129.90")
    hub.upsert_deal(order(1, status="won", amount="99"), contact_id=None, company_id=None)
    assert (fake.deals[0]["dealstage"], fake.deals[0]["amount"]) == ("closedwon", "99")
    hub.upsert_deal(order(1, stage="paid"), contact_id=None, company_id=None)  # late, out of order
    assert fake.deals[0]["dealstage"] == "closedwon"  # `open` never reopens a closed deal
    with pytest.raises(PermanentDeliveryError, match="deal_stages"):
        hub.upsert_deal(order(2, stage="refunded"), contact_id=None, company_id=None)


def test_deals_in_one_batch_are_one_upsert_and_repeats_share_an_id(fake: FakeHubSpot) -> None:
    hub = crm(fake)
    results = hub.upsert_deals([DealWrite(order(n % 3)) for n in range(6)])
    assert len(fake.deals) == 3
    assert results[0] == results[3]
    # Repeats go in a second round, which reads them back unchanged: no second write.
    assert fake.calls["POST /crm/v3/objects/deals/batch/upsert"] == 1
    assert fake.calls["POST /crm/v3/objects/deals/batch/read"] == 2


# -- known ids -------------------------------------------------------------------------------


def test_known_id_updates_that_record_without_a_lookup(fake: FakeHubSpot) -> None:
    contact_id = fake.add_record("contacts", email="old@example.com")
    hub = crm(fake)
    assert (
        hub.upsert_contact(Contact(email="new@example.com", first_name="Ada"), known_id=contact_id)
        == contact_id
    )
    reads = posted(fake, "POST /crm/v3/objects/contacts/batch/read")
    assert len(reads) == 1 and "idProperty" not in reads[0]  # by id, not by email
    assert fake.contacts == [{"id": contact_id, "email": "old@example.com", "firstname": "Ada"}]


def test_a_known_id_that_is_gone_falls_back_to_the_lookup(fake: FakeHubSpot) -> None:
    existing = fake.add_record("contacts", email="ada@example.com")
    hub = crm(fake)
    assert hub.upsert_contact(Contact(email="ada@example.com"), known_id="999999") == existing
    deal_id = hub.upsert_deal(order(7), contact_id=None, company_id=None)
    assert hub.upsert_deal(order(7), contact_id=None, company_id=None, known_id="999999") == deal_id
    company_id = hub.upsert_company(Company(name="Acme", domain="acme.io"))
    assert hub.upsert_company(Company(name="Acme", domain="acme.io"), known_id="999999") == company_id
    note_id = hub.add_activity(note(), contact_id=existing, deal_id=None)
    assert hub.add_activity(note(), contact_id=existing, deal_id=None, known_id="999999") == note_id
    assert (len(fake.contacts), len(fake.deals), len(fake.companies), len(fake.notes)) == (1, 1, 1, 1)


# -- companies ------------------------------------------------------------------------------


def test_companies_are_found_by_domain_and_created_through_their_key(fake: FakeHubSpot) -> None:
    hub = crm(fake)
    seeded = fake.add_record("companies", name="Acme Inc", domain="acme.io")
    assert hub.upsert_company(Company(name="Acme", domain="https://www.acme.io/about")) == seeded
    assert fake.companies[0]["name"] == "Acme Inc"
    fake.commit_then_fail_rate = 1.0
    with pytest.raises(TransientDeliveryError):
        hub.upsert_company(Company(name="Globex", domain="globex.com", external_ids={"quickbooks": "9"}))
    fake.commit_then_fail_rate = 0.0
    fake.search_lag = 60.0  # search has not caught up: the key still finds it
    hub.upsert_company(Company(name="Globex", domain="globex.com", external_ids={"quickbooks": "9"}))
    assert sorted(c["name"] for c in fake.companies) == ["Acme Inc", "Globex"]


def test_link_contact_company(fake: FakeHubSpot) -> None:
    hub = crm(fake)
    contact_id = hub.upsert_contact(Contact(email="ada@example.com"))
    company_id = hub.upsert_company(Company(domain="acme.io"))
    hub.link_contact_company(contact_id, company_id)
    hub.link_contact_company(contact_id, company_id)  # repeat-safe
    assert fake.associated("contacts", contact_id, "companies") == {company_id}
    with pytest.raises(PermanentDeliveryError):
        hub.link_contact_company(contact_id, "999")


# -- notes ----------------------------------------------------------------------------------


def test_a_note_retried_after_commit_then_fail_is_one_note(fake: FakeHubSpot) -> None:
    hub = crm(fake)
    contact_id = hub.upsert_contact(Contact(email="ada@example.com"))
    deal_id = hub.upsert_deal(order(1), contact_id=contact_id, company_id=None)
    fake.commit_then_fail_rate = 1.0
    with pytest.raises(TransientDeliveryError):
        hub.add_activity(note(1), contact_id=contact_id, deal_id=deal_id)
    fake.commit_then_fail_rate = 0.0
    note_id = hub.add_activity(note(1), contact_id=contact_id, deal_id=deal_id)
    assert [n["id"] for n in fake.notes] == [note_id]
    assert fake.associated("notes", note_id, "contacts") == {contact_id}
    assert fake.associated("notes", note_id, "deals") == {deal_id}
    assert "Paid order 1" in fake.notes[0]["hs_note_body"]
    # A different kind for the same order is a different note.
    hub.add_activity(note(1, kind="order_placed"), contact_id=contact_id, deal_id=deal_id)
    assert len(fake.notes) == 2


@pytest.mark.parametrize(
    ("dedupe", "unique", "notes_after_retry"),
    [
        pytest.param("search", False, 2, id="search-plain-property-duplicates"),
        pytest.param("search", True, 1, id="search-unique-property-resolves-409"),
        pytest.param("upsert", True, 1, id="upsert"),
    ],
)
def test_search_lag_is_what_search_mode_cannot_cover(
    fake: FakeHubSpot, dedupe: str, unique: bool, notes_after_retry: int
) -> None:
    fake.properties["notes"]["crmhub_external_id"]["hasUniqueValue"] = unique
    hub = crm(fake, note_dedupe=dedupe)
    contact_id = hub.upsert_contact(Contact(email="ada@example.com"))
    fake.search_lag = 60.0  # the retry's search cannot see the note yet
    fake.commit_then_fail_rate = 1.0
    with pytest.raises(TransientDeliveryError):
        hub.add_activity(note(1), contact_id=contact_id, deal_id=None)
    fake.commit_then_fail_rate = 0.0
    note_id = hub.add_activity(note(1), contact_id=contact_id, deal_id=None)
    assert len(fake.notes) == notes_after_retry
    assert note_id == fake.notes[-1 if notes_after_retry == 2 else 0]["id"]


def test_notes_without_external_ids_are_keyed_by_their_content(fake: FakeHubSpot) -> None:
    hub = crm(fake)
    contact_id = hub.upsert_contact(Contact(email="ada@example.com"))
    activity = note(1, external_ids={})
    results = hub.add_activities([ActivityWrite(activity, contact_id=contact_id)] * 2)
    assert results[0] == results[1]
    assert hub.add_activity(activity, contact_id=contact_id, deal_id=None) == results[0].id  # type: ignore[union-attr]
    assert len(fake.notes) == 1


# -- errors ---------------------------------------------------------------------------------


def canned(
    status: int, body: Any = None, headers: dict[str, str] | None = None, text: str | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        if text is not None:
            return httpx.Response(status, text=text, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return answer


def hubspot_error(message: str, category: str, **extra: Any) -> dict[str, Any]:
    return {
        "status": "error",
        "message": message,
        "correlationId": "aeb5f871-7f07-4993-9211-075dc63e7cbf",
        "category": category,
        **extra,
    }


TEN_SECONDLY = hubspot_error(
    "You have reached your ten_secondly_rolling limit.",
    "RATE_LIMITS",
    errorType="RATE_LIMIT",
    policyName="TEN_SECONDLY_ROLLING",
)


@pytest.mark.parametrize(
    ("handler", "error", "retry_after"),
    [
        pytest.param(
            canned(429, TEN_SECONDLY, {"Retry-After": "7"}), TransientDeliveryError, 7.0, id="429-retry-after"
        ),
        pytest.param(
            canned(429, TEN_SECONDLY, {"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}),
            TransientDeliveryError,
            10.0,
            id="429-ten-secondly",
        ),
        pytest.param(
            canned(429, hubspot_error("You have reached your secondly limit.", "RATE_LIMITS")),
            TransientDeliveryError,
            1.0,
            id="429-search-secondly",
        ),
        pytest.param(canned(423, hubspot_error("locked", "LOCKED")), TransientDeliveryError, 2.0, id="423"),
        pytest.param(
            canned(477, hubspot_error("migrating", "MIGRATION"), {"Retry-After": "3600"}),
            TransientDeliveryError,
            3600.0,
            id="477",
        ),
        pytest.param(
            canned(500, hubspot_error("internal error", "INTERNAL_ERROR")),
            TransientDeliveryError,
            None,
            id="500",
        ),
        pytest.param(canned(502, text="<html>Bad Gateway</html>"), TransientDeliveryError, None, id="502"),
        pytest.param(canned(503, text="Service Unavailable"), TransientDeliveryError, None, id="503"),
        pytest.param(canned(504, text="Gateway Timeout"), TransientDeliveryError, None, id="504"),
        pytest.param(canned(524, text="timeout"), TransientDeliveryError, None, id="524"),
        pytest.param(canned(526, text="invalid certificate"), TransientDeliveryError, None, id="526"),
        pytest.param(
            canned(401, hubspot_error("Authentication credentials not found.", "INVALID_AUTHENTICATION")),
            AuthDeliveryError,
            None,
            id="401",
        ),
        pytest.param(
            canned(403, hubspot_error("This app hasn't been granted all required scopes", "MISSING_SCOPES")),
            AuthDeliveryError,
            None,
            id="403",
        ),
        pytest.param(canned(414, text="URI Too Long"), PermanentDeliveryError, None, id="414"),
    ],
)
def test_error_classes(
    handler: Callable[[httpx.Request], httpx.Response], error: type[Exception], retry_after: float | None
) -> None:
    with pytest.raises(error) as caught:
        crm(handler).upsert_company(Company(domain="acme.io"))
    assert type(caught.value) is error
    if isinstance(caught.value, TransientDeliveryError):
        assert caught.value.retry_after == retry_after


def test_a_daily_limit_waits_until_the_reset() -> None:
    handler = canned(
        429, hubspot_error("You have reached your daily limit.", "RATE_LIMITS", policyName="DAILY")
    )
    with pytest.raises(TransientDeliveryError) as caught:
        crm(handler).upsert_company(Company(domain="acme.io"))
    assert caught.value.retry_after is not None and 0 < caught.value.retry_after <= 86400


def test_a_validation_error_keeps_hubspot_words_and_never_the_token() -> None:
    body = hubspot_error(
        f"Property values were not valid (token {DEFAULT_TOKEN})",
        "VALIDATION_ERROR",
        errors=[{"message": 'Property "x" does not exist', "code": "PROPERTY_DOESNT_EXIST"}],
    )
    with pytest.raises(PermanentDeliveryError) as caught:
        crm(canned(400, body)).upsert_company(Company(domain="acme.io"))
    message = str(caught.value)
    assert "VALIDATION_ERROR" in message and "PROPERTY_DOESNT_EXIST" in message
    assert "aeb5f871" in message  # the correlation id, for HubSpot support
    assert DEFAULT_TOKEN not in message


def test_a_conflict_carries_the_existing_id_and_is_resolved(fake: FakeHubSpot) -> None:
    hub = crm(fake)
    with pytest.raises(ConflictError) as caught:
        for _ in range(2):
            hub.api.create("contacts", {"email": "ada@example.com"})
    assert caught.value.existing_id == fake.contacts[0]["id"]
    company_id = fake.add_record("companies", name="Initech")
    answer = canned(409, hubspot_error(f"Company already exists. Existing ID: {company_id}", "CONFLICT"))
    assert crm(answer).upsert_company(Company(name="Initech")) == company_id


def test_timeouts_and_outages_are_transient(fake: FakeHubSpot) -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(TransientDeliveryError, match="no answer"):
        crm(timeout).upsert_contact(Contact(email="ada@example.com"))
    fake.down = True
    with pytest.raises(TransientDeliveryError, match="503"):
        crm(fake).upsert_contact(Contact(email="ada@example.com"))
    fake.down = False
    fake.fail_rate = 1.0
    with pytest.raises(TransientDeliveryError, match="internal error"):
        crm(fake).upsert_contact(Contact(email="ada@example.com"))


def test_a_wrong_token_is_an_auth_error_from_the_fake(fake: FakeHubSpot) -> None:
    with pytest.raises(AuthDeliveryError, match="INVALID_AUTHENTICATION"):
        crm(fake, access_token="pat-na1-wrong").upsert_contact(Contact(email="ada@example.com"))


# -- rate limit -----------------------------------------------------------------------------


def test_the_fake_enforces_a_rolling_10s_window_with_the_real_429() -> None:
    clock = Clock()
    fake = FakeHubSpot(clock=clock)
    client = httpx.Client(
        transport=httpx.MockTransport(fake),
        base_url=BASE,
        headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"},
    )
    for n in range(100):
        clock.now = 1000.0 + n * 0.05
        assert client.get("/crm/v3/properties/contacts").status_code == 200, n
    answer = client.get("/crm/v3/properties/contacts")
    assert answer.status_code == 429
    assert answer.json()["policyName"] == "TEN_SECONDLY_ROLLING"
    assert answer.json()["errorType"] == "RATE_LIMIT"
    assert answer.json()["message"] == "You have reached your ten_secondly_rolling limit."
    assert answer.headers["X-HubSpot-RateLimit-Max"] == "100"
    assert answer.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert answer.headers["Retry-After"] == "6"  # the first request leaves the window in 5.05 s
    assert fake.rate_limited == 1
    clock.now = 1010.0  # rolling: the first request (t=1000) has left the window
    assert client.get("/crm/v3/properties/contacts").status_code == 200
    with pytest.raises(TransientDeliveryError, match="ten_secondly_rolling") as caught:
        crm(fake).upsert_contact(Contact(email="ada@example.com"))
    assert caught.value.retry_after == 1.0  # Retry-After: the next request leaves the window at 1010.05
    assert fake.rate_limited == 2


def test_search_has_its_own_limit_of_5_per_second() -> None:
    clock = Clock()
    fake = FakeHubSpot(clock=clock)
    hub = crm(fake)
    for _ in range(5):
        hub.upsert_company(Company(domain="acme.io"))
    with pytest.raises(TransientDeliveryError, match="secondly") as caught:
        hub.upsert_company(Company(domain="acme.io"))
    assert caught.value.retry_after == 1.0
    clock.now += 1.0
    hub.upsert_company(Company(domain="acme.io"))
    assert len(fake.companies) == 1


def test_budget_and_account_key(fake: FakeHubSpot) -> None:
    hub = crm(fake, requests_per_10s=190)
    assert hub.request_budget() == (190, 10.0)
    assert HubSpotDestination.rate_limit == (100, 10.0)
    assert HubSpotDestination.batch_limits["contact"] == 100
    assert DEFAULT_TOKEN not in hub.account_key()
    assert hub.account_key() != crm(fake, access_token="pat-na1-other").account_key()
    assert hub.base_url() == BASE


# -- check() and the one-time setup -------------------------------------------------------------


def test_check_is_clean_on_a_set_up_account(fake: FakeHubSpot) -> None:
    assert crm(fake).check() == []


def test_check_reports_missing_properties_pipelines_and_stages(fake: FakeHubSpot) -> None:
    fake.remove_property("deals", "crmhub_external_id")
    fake.remove_property("contacts", "crmhub_tags")
    hub = crm(
        fake,
        properties={"custom_fields.plan": "plan_tier"},
        deal_pipelines={"b2b": "enterprise"},
        deal_stages={"paid": "invoicepaid"},
        lifecycle_stages={"mql": "hot_lead"},
    )
    problems = "\n".join(hub.check())
    assert "deals property 'crmhub_external_id' is missing" in problems
    assert "ensure_properties()" in problems  # the one-time setup is explained
    assert "'crmhub_tags' (tags_property) is missing" in problems
    assert "'plan_tier' (mapped from 'custom_fields.plan') does not exist" in problems
    assert "pipeline 'enterprise'" in problems
    assert "stage 'invoicepaid' (deal_stages.paid)" in problems
    assert "'hot_lead' (from 'mql') is not a lifecyclestage option" in problems


def test_check_reports_a_bad_token(fake: FakeHubSpot) -> None:
    (problem,) = crm(fake, access_token="pat-na1-wrong").check()
    assert "refused the access token" in problem and "pat-na1-wrong" not in problem


def test_ensure_properties_does_the_one_time_setup() -> None:
    fake = FakeHubSpot(setup=False, requests_per_10s=100_000)
    hub = crm(fake)
    assert any("crmhub_external_id" in p for p in hub.check())
    created = hub.ensure_properties()
    assert "deals property crmhub_external_id" in created and "contacts property crmhub_tags" in created
    assert fake.properties["deals"]["crmhub_external_id"]["hasUniqueValue"] is True
    assert fake.properties["notes"]["crmhub_external_id"]["hasUniqueValue"] is True  # tried first
    assert hub.check() == []
    assert hub.ensure_properties() == []


def test_ensure_properties_falls_back_to_a_plain_note_property() -> None:
    fake = FakeHubSpot(setup=False, requests_per_10s=100_000, unique_note_properties=False)
    hub = crm(fake)
    assert "notes property crmhub_external_id" in hub.ensure_properties()
    assert fake.properties["notes"]["crmhub_external_id"]["hasUniqueValue"] is False
    assert hub.check() == []
    assert any(
        "notes property 'crmhub_external_id' exists without unique values" in p
        for p in crm(fake, note_dedupe="upsert").check()
    )


# -- date-based API paths -----------------------------------------------------------------------


def test_date_based_api_version_paths(fake: FakeHubSpot) -> None:
    hub = crm(fake, api_version="2026-03")
    contact_id = hub.upsert_contact(Contact(email="ada@example.com"))
    hub.upsert_deal(order(1), contact_id=contact_id, company_id=None)
    assert {r.path for r in fake.requests} >= {
        "/crm/objects/2026-03/contacts/batch/upsert",
        "/crm/associations/2026-03/deals/contacts/batch/associate/default",
    }


# -- request bodies against HubSpot's own models (hubspot-api-client) -----------------------------

_SDK_MODULES = {
    "contacts": "hubspot.crm.contacts.models",
    "companies": "hubspot.crm.companies.models",
    "deals": "hubspot.crm.deals.models",
    "notes": "hubspot.crm.objects.notes.models",
}
_SDK_MODELS = {
    "batch/upsert": "BatchInputSimplePublicObjectBatchInputUpsert",
    "batch/update": "BatchInputSimplePublicObjectBatchInput",
    "batch/create": "BatchInputSimplePublicObjectBatchInputForCreate",
    "batch/read": "BatchReadInputSimplePublicObjectId",
    "search": "PublicObjectSearchRequest",
    "": "SimplePublicObjectInputForCreate",
    "{id}": "SimplePublicObjectInput",
}


def _sdk_check(module: Any, model: type, data: Any) -> None:
    """Build the SDK model from the JSON body: unknown keys, wrong types and missing
    required fields fail (the SDK models validate in their setters)."""
    assert isinstance(data, dict), f"{model.__name__}: not an object"
    names = {json_key: attr for attr, json_key in model.attribute_map.items()}
    unknown = set(data) - set(names)
    assert not unknown, f"{model.__name__}: unknown keys {unknown}"
    model(**{names[k]: _sdk_value(module, model.openapi_types[names[k]], v) for k, v in data.items()})


def _sdk_value(module: Any, kind: str, value: Any) -> Any:
    if kind.startswith("list["):
        assert isinstance(value, list)
        return [_sdk_value(module, kind[5:-1], v) for v in value]
    if kind.startswith("dict["):
        assert isinstance(value, dict)
        return {k: _sdk_value(module, kind.split(",", 1)[1][:-1].strip(), v) for k, v in value.items()}
    scalars = {"str": str, "int": int, "bool": bool, "float": (int, float)}
    if kind in scalars:
        assert isinstance(value, scalars[kind]), f"{value!r} is not {kind}"
        return value
    if kind == "object":
        return value
    _sdk_check(module, getattr(module, kind), value)
    return value


def _sdk_requests(fake: FakeHubSpot) -> Iterator[tuple[Any, type, Any]]:
    for request in fake.requests:
        if request.method not in ("POST", "PATCH") or request.body is None:
            continue
        parts = request.endpoint.split(" ", 1)[1].split("/")
        if parts[1:3] == ["crm", "v3"] and parts[3] == "objects":
            module = importlib.import_module(_SDK_MODULES[parts[4]])
            rest = "/".join(parts[5:])
            yield module, getattr(module, _SDK_MODELS[rest]), request.body
        elif parts[1:3] == ["crm", "v4"]:
            module = importlib.import_module("hubspot.crm.associations.v4.models")
            yield module, module.BatchInputPublicDefaultAssociationMultiPost, request.body
        elif parts[3] == "properties":
            module = importlib.import_module("hubspot.crm.properties.models")
            model = {"POST": module.PropertyCreate, "PATCH": module.PropertyUpdate}[request.method]
            if parts[-1] == "groups":
                model = module.PropertyGroupCreate
            yield module, model, request.body


def test_request_bodies_match_hubspots_published_models() -> None:
    pytest.importorskip("hubspot", reason="hubspot-api-client (test extra) validates request bodies")
    fake = FakeHubSpot(setup=False, requests_per_10s=100_000, search_per_second=100_000)
    hub = crm(fake, note_dedupe="search")
    hub.ensure_properties()
    contact_id = hub.upsert_contact(Contact(email="ada@example.com", first_name="Ada", tags={"vip"}))
    hub.upsert_contacts(
        [
            ContactWrite(Contact(email="ada@example.com", last_name="L")),
            ContactWrite(Contact(phone="+442071234567", external_ids={"typeform": "1"})),
        ]
    )
    company_id = hub.upsert_company(Company(name="Acme", domain="acme.io", external_ids={"qb": "1"}))
    hub.upsert_company(Company(name="Acme", domain="acme.io", phone="+442071234567"))
    hub.link_contact_company(contact_id, company_id)
    deal_id = hub.upsert_deal(order(1), contact_id=contact_id, company_id=company_id)
    hub.upsert_deal(order(1, status="won"), contact_id=contact_id, company_id=company_id)
    hub.add_activity(note(1), contact_id=contact_id, deal_id=deal_id)
    crm(fake, note_dedupe="upsert").add_activity(note(2), contact_id=contact_id, deal_id=deal_id)
    hub.add_tags(contact_id, ["b2b"])
    checked = set()
    for module, model, body in _sdk_requests(fake):
        _sdk_check(module, model, body)
        checked.add(model.__name__)
    assert checked >= {
        "BatchInputSimplePublicObjectBatchInputUpsert",
        "BatchInputSimplePublicObjectBatchInput",
        "BatchInputSimplePublicObjectBatchInputForCreate",
        "BatchReadInputSimplePublicObjectId",
        "PublicObjectSearchRequest",
        "SimplePublicObjectInputForCreate",
        "SimplePublicObjectInput",
        "BatchInputPublicDefaultAssociationMultiPost",
        "PropertyCreate",
        "PropertyUpdate",
        "PropertyGroupCreate",
    }
