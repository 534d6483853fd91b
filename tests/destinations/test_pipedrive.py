"""PipedriveDestination against FakePipedrive (the documented API's behaviour, in memory)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from hub.canonical import Activity, Company, Contact, Deal
from hub.destination import ContactWrite, DealWrite, Written
from hub.destinations.pipedrive import PipedriveDestination, PipedriveSettings
from hub.destinations.pipedrive.errors import NotFoundError, classify
from hub.destinations.pipedrive.fake import FakePipedrive
from hub.errors import AuthDeliveryError, PermanentDeliveryError, TransientDeliveryError

BASE = "https://acme.pipedrive.com"
TOKEN = "test-token"


@dataclass
class Env:
    fake: FakePipedrive
    crm: PipedriveDestination
    codes: dict[str, str]

    def search_calls(self) -> int:
        return sum(n for route, n in self.fake.calls.items() if route.endswith("/search"))


def _codes(fake: FakePipedrive) -> dict[str, str]:
    return {
        "deal_ext": fake.add_field("deal", "Source ID"),
        "person_ext": fake.add_field("person", "Source ID"),
        "lifecycle": fake.add_field("person", "Lifecycle", "enum", ["lead", "mql", "customer"]),
        "tags": fake.add_field("person", "Tags", "text"),
        "campaign": fake.add_field("person", "Campaign"),
        "provider": fake.add_field("deal", "Payment provider"),
    }


def _settings(fake: FakePipedrive, codes: dict[str, str], **overrides: object) -> PipedriveSettings:
    values: dict[str, object] = {
        "api_token": TOKEN,
        "base_url": BASE,
        "pipeline_id": 1,
        "stage_id": 1,
        "stages": {"paid": 4},
        "pipelines": {"sales": 1},
        "deal_external_id_field": codes["deal_ext"],
        "person_external_id_field": codes["person_ext"],
        "lifecycle_field": codes["lifecycle"],
        "lifecycle_options": {
            stage: fake.option_id("person", codes["lifecycle"], stage)
            for stage in ("lead", "mql", "customer")
        },
        "tag_labels": {"vip": 1},  # "Customer", one of Pipedrive's default person labels
        "tags_field": codes["tags"],
        "properties": {
            "lead_source.campaign": codes["campaign"],
            "deal.custom_fields.payment_provider": codes["provider"],
            "company.address": "address",
        },
    }
    values.update(overrides)
    return PipedriveSettings.model_validate(values)


def _env(fake: FakePipedrive | None = None, **overrides: object) -> Env:
    fake = fake or FakePipedrive(burst=None, search_burst=None)
    codes = _codes(fake)
    client = httpx.Client(transport=httpx.MockTransport(fake), base_url=BASE)
    crm = PipedriveDestination(_settings(fake, codes, **overrides), client=client)
    return Env(fake, crm, codes)


def _with(settings: PipedriveSettings, changes: dict[str, object]) -> PipedriveSettings:
    """Validated settings with `changes` (model_copy would skip validation)."""
    return PipedriveSettings.model_validate({**settings.model_dump(), **changes})


@pytest.fixture
def env() -> Env:
    return _env()


def _person(env: Env, person_id: str) -> dict:
    return next(p for p in env.fake.contacts if p["id"] == int(person_id))


def _deal(env: Env, deal_id: str) -> dict:
    return next(d for d in env.fake.deals if d["id"] == int(deal_id))


# -- contacts -------------------------------------------------------------------------------


def test_contact_create_then_update_follows_the_merge_rules(env: Env) -> None:
    first = Contact(
        email="ada@example.com",
        first_name="Ada",
        tags={"vip", "newsletter"},
        lifecycle_stage="lead",
        lead_source={"campaign": "spring"},
    )
    person_id = env.crm.upsert_contact(first)
    person = _person(env, person_id)
    assert person["name"] == "Ada"
    assert person["emails"] == [{"value": "ada@example.com", "primary": True, "label": "work"}]
    assert person["label_ids"] == [1]
    custom = person["custom_fields"]
    assert custom[env.codes["tags"]] == "newsletter"
    assert custom[env.codes["campaign"]] == "spring"
    assert custom[env.codes["lifecycle"]] == env.crm.settings.lifecycle_options["lead"]

    second = Contact(
        email="ada@example.com",
        phone="+14155550100",
        last_name="Lovelace",
        tags={"beta"},
        lifecycle_stage="customer",
        lead_source={"campaign": "autumn"},
    )
    assert env.crm.upsert_contact(second) == person_id
    person = _person(env, person_id)
    assert person["name"] == "Ada"  # a real name is only replaced when `name` is in overwrite
    assert person["phones"] == [{"value": "+14155550100", "primary": True, "label": "work"}]
    assert person["emails"][0]["value"] == "ada@example.com"  # empty first_name erased nothing
    assert person["label_ids"] == [1]  # labels are a union
    custom = person["custom_fields"]
    assert custom[env.codes["tags"]] == "beta, newsletter"  # unmapped tags: a union too
    assert custom[env.codes["campaign"]] == "spring"  # filled once, not overwritten
    assert custom[env.codes["lifecycle"]] == env.crm.settings.lifecycle_options["customer"]

    env.crm.upsert_contact(Contact(email="ada@example.com", lifecycle_stage="lead"))
    assert (
        _person(env, person_id)["custom_fields"][env.codes["lifecycle"]]
        == (env.crm.settings.lifecycle_options["customer"])
    )  # lifecycle only moves forward
    assert len(env.fake.contacts) == 1


def test_placeholder_name_is_replaced_by_a_real_one(env: Env) -> None:
    person_id = env.crm.upsert_contact(Contact(email="bob@example.com"))
    assert _person(env, person_id)["name"] == "bob@example.com"
    env.crm.upsert_contact(Contact(email="bob@example.com", first_name="Bob", last_name="Ross"))
    assert _person(env, person_id)["name"] == "Bob Ross"


def test_emails_are_a_union_and_the_stored_primary_stays(env: Env) -> None:
    seeded = env.fake.seed(
        "persons",
        name="Grace",
        emails=[{"value": "grace@old.example", "primary": True, "label": "home"}],
        custom_fields={env.codes["person_ext"]: "shopify:c1"},
    )
    person_id = env.crm.upsert_contact(Contact(email="grace@new.example", external_ids={"shopify": "c1"}))
    assert person_id == str(seeded)
    assert _person(env, person_id)["emails"] == [
        {"value": "grace@old.example", "primary": True, "label": "home"},
        {"value": "grace@new.example", "primary": False, "label": "work"},
    ]


def test_phone_is_only_a_candidate(env: Env) -> None:
    other = env.fake.seed(
        "persons",
        name="Someone else",
        emails=[{"value": "other@example.com", "primary": True, "label": "work"}],
        phones=[{"value": "+14155550199", "primary": True, "label": "work"}],
    )
    new_id = env.crm.upsert_contact(Contact(email="new@example.com", phone="+1 415 555 0199"))
    assert new_id != str(other)  # a different email: never merged on the phone alone
    assert env.crm.upsert_contact(Contact(phone="+14155550199")) == str(other)  # no email: a match


def test_company_name_links_an_organization_found_by_exact_name(env: Env) -> None:
    first = env.crm.upsert_contact(Contact(email="a@acme.example", company="Acme"))
    second = env.crm.upsert_contact(Contact(email="b@acme.example", company="ACME"))
    orgs = env.fake.organizations
    assert len(orgs) == 1
    assert _person(env, first)["org_id"] == _person(env, second)["org_id"] == orgs[0]["id"]
    assert env.crm.upsert_company(Company(name="acme")) == str(orgs[0]["id"])


def test_company_upsert_and_link(env: Env) -> None:
    company_id = env.crm.upsert_company(
        Company(name="Globex", address={"city": "Springfield", "country": "US"})
    )
    org = next(o for o in env.fake.organizations if o["id"] == int(company_id))
    assert org["address"] == {"value": "Springfield, US"}
    person_id = env.crm.upsert_contact(Contact(email="hank@globex.example"))
    env.crm.link_contact_company(person_id, company_id)
    assert _person(env, person_id)["org_id"] == int(company_id)


def test_add_tags_is_a_union_of_labels_and_the_tags_field(env: Env) -> None:
    person_id = env.crm.upsert_contact(Contact(email="t@example.com", tags={"alpha"}))
    env.fake.seed("persons", name="x")  # noise
    env.crm.add_tags(person_id, ["vip", "beta", " "])
    person = _person(env, person_id)
    assert person["label_ids"] == [1]
    assert person["custom_fields"][env.codes["tags"]] == "alpha, beta"


# -- known_id -------------------------------------------------------------------------------


def test_known_id_updates_directly_without_a_lookup(env: Env) -> None:
    person_id = env.crm.upsert_contact(Contact(email="k@example.com"))
    env.fake.calls.clear()
    same = env.crm.upsert_contact(Contact(email="k@example.com", phone="+14155550123"), known_id=person_id)
    assert same == person_id
    assert env.search_calls() == 0
    assert _person(env, person_id)["phones"][0]["value"] == "+14155550123"


def test_known_id_404_falls_back_to_the_lookup(env: Env) -> None:
    gone = env.crm.upsert_contact(Contact(email="gone@example.com"))
    env.fake.delete("persons", int(gone))
    kept = env.fake.seed("persons", name="Kept", emails=[{"value": "gone@example.com", "primary": True}])
    assert env.crm.upsert_contact(Contact(email="gone@example.com"), known_id=gone) == str(kept)

    deal_id = env.crm.upsert_deal(
        Deal(title="Order", external_ids={"shopify": "9"}), contact_id=None, company_id=None
    )
    env.fake.delete("deals", int(deal_id))
    new_id = env.crm.upsert_deal(
        Deal(title="Order", external_ids={"shopify": "9"}), contact_id=None, company_id=None, known_id=deal_id
    )
    assert new_id != deal_id and len(env.fake.deals) == 1


# -- deals ----------------------------------------------------------------------------------


def _order(**fields: object) -> Deal:
    values: dict[str, object] = {
        "title": "Order #1001",
        "amount": Decimal("129.90"),
        "currency": "EUR",
        "stage": "paid",
        "external_ids": {"shopify": "1001"},
        "custom_fields": {"payment_provider": "stripe"},
    }
    values.update(fields)
    return Deal.model_validate(values)


def test_deal_is_created_in_the_mapped_stage_with_value_and_source_id(env: Env) -> None:
    person_id = env.crm.upsert_contact(Contact(email="buyer@example.com"))
    deal_id = env.crm.upsert_deal(_order(), contact_id=person_id, company_id=None)
    deal = _deal(env, deal_id)
    assert (deal["value"], deal["currency"], deal["status"]) == (129.9, "EUR", "open")
    assert (deal["pipeline_id"], deal["stage_id"], deal["person_id"]) == (1, 4, int(person_id))
    assert deal["custom_fields"] == {env.codes["deal_ext"]: "shopify:1001", env.codes["provider"]: "stripe"}


def test_deal_is_deduplicated_across_a_retry_after_commit_then_fail(env: Env) -> None:
    env.fake.commit_then_fail_rate = 1.0
    with pytest.raises(TransientDeliveryError):
        env.crm.upsert_deal(_order(), contact_id=None, company_id=None)
    assert len(env.fake.deals) == 1  # the create committed before the connection "died"
    env.fake.commit_then_fail_rate = 0.0
    deal_id = env.crm.upsert_deal(_order(), contact_id=None, company_id=None)
    assert [d["id"] for d in env.fake.deals] == [int(deal_id)]
    assert env.crm.upsert_deal(_order(amount=Decimal("150")), contact_id=None, company_id=None) == deal_id
    assert _deal(env, deal_id)["value"] == 150  # deal.amount is in the default overwrite list


def test_contact_is_deduplicated_across_a_retry_after_commit_then_fail(env: Env) -> None:
    env.fake.commit_then_fail_rate = 1.0
    with pytest.raises(TransientDeliveryError):
        env.crm.upsert_contact(Contact(email="retry@example.com"))
    env.fake.commit_then_fail_rate = 0.0
    env.crm.upsert_contact(Contact(email="retry@example.com"))
    assert len(env.fake.contacts) == 1


def test_won_deal_is_never_reopened(env: Env) -> None:
    deal_id = env.crm.upsert_deal(_order(status="won"), contact_id=None, company_id=None)
    env.crm.upsert_deal(_order(status="open"), contact_id=None, company_id=None)
    assert _deal(env, deal_id)["status"] == "won"
    env.crm.upsert_deal(_order(status="lost"), contact_id=None, company_id=None)
    assert _deal(env, deal_id)["status"] == "lost"


def test_unmapped_stage_uses_the_default_and_a_mapped_stage_brings_its_pipeline(env: Env) -> None:
    deal_id = env.crm.upsert_deal(_order(stage="mystery"), contact_id=None, company_id=None)
    assert (_deal(env, deal_id)["pipeline_id"], _deal(env, deal_id)["stage_id"]) == (1, 1)

    renewals = env.fake.add_pipeline("Renewals")
    due = env.fake.add_stage(renewals, "Due")
    crm = PipedriveDestination(_with(env.crm.settings, {"stages": {"due": due}}), client=env.crm.client)
    other = crm.upsert_deal(
        _order(stage="due", external_ids={"shopify": "2"}), contact_id=None, company_id=None
    )
    assert (_deal(env, other)["pipeline_id"], _deal(env, other)["stage_id"]) == (renewals, due)


def test_deal_without_source_id_is_matched_by_title_and_person(env: Env) -> None:
    person_id = env.crm.upsert_contact(Contact(email="p@example.com"))
    deal = Deal(title="Consulting")
    first = env.crm.upsert_deal(deal, contact_id=person_id, company_id=None)
    assert env.crm.upsert_deal(deal, contact_id=person_id, company_id=None) == first
    assert len(env.fake.deals) == 1


# -- notes and activities -------------------------------------------------------------------


def _paid(**fields: object) -> Activity:
    values: dict[str, object] = {
        "kind": "order_paid",
        "occurred_at": "2026-11-20T10:00:00Z",
        "subject": "Order #1001 paid",
        "body": "2 items\n<b>gift</b>",
        "external_ids": {"shopify": "1001"},
    }
    values.update(fields)
    return Activity.model_validate(values)


def test_note_is_written_once_even_after_commit_then_fail(env: Env) -> None:
    person_id = env.crm.upsert_contact(Contact(email="n@example.com"))
    deal_id = env.crm.upsert_deal(_order(), contact_id=person_id, company_id=None)
    env.fake.commit_then_fail_rate = 1.0
    with pytest.raises(TransientDeliveryError):
        env.crm.add_activity(_paid(), contact_id=person_id, deal_id=deal_id)
    env.fake.commit_then_fail_rate = 0.0
    note_id = env.crm.add_activity(_paid(), contact_id=person_id, deal_id=deal_id)
    assert env.crm.add_activity(_paid(), contact_id=person_id, deal_id=deal_id) == note_id
    [note] = env.fake.notes
    assert (note["person_id"], note["deal_id"]) == (int(person_id), int(deal_id))
    assert "Order #1001 paid" in note["content"] and "&lt;b&gt;gift&lt;/b&gt;" in note["content"]
    assert "[crmhub:shopify:1001:order_paid]" in note["content"]
    other = env.crm.add_activity(_paid(kind="order_placed"), contact_id=person_id, deal_id=deal_id)
    assert other != note_id  # same order, another kind: another note


def test_note_needs_a_person_or_a_deal(env: Env) -> None:
    with pytest.raises(PermanentDeliveryError, match="needs a person or a deal"):
        env.crm.add_activity(_paid(), contact_id=None, deal_id=None)


def test_booking_becomes_a_meeting_activity_written_once(env: Env) -> None:
    person_id = env.crm.upsert_contact(Contact(email="m@example.com"))
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    booking = Activity(
        kind="appointment_booked",
        occurred_at=datetime.now(UTC),
        subject="Booked: Intro call",
        metadata={"start_time": start.isoformat(), "end_time": (start + timedelta(minutes=45)).isoformat()},
        external_ids={"calendly": "inv-1"},
    )
    env.fake.commit_then_fail_rate = 1.0
    with pytest.raises(TransientDeliveryError):
        env.crm.add_activity(booking, contact_id=person_id, deal_id=None)
    env.fake.commit_then_fail_rate = 0.0
    activity_id = env.crm.add_activity(booking, contact_id=person_id, deal_id=None)
    [activity] = env.fake.activities
    assert activity["id"] == int(activity_id)
    assert (activity["type"], activity["done"], activity["duration"]) == ("meeting", False, "00:45")
    assert activity["due_date"] == start.date().isoformat()
    assert activity["participants"] == [{"person_id": int(person_id), "primary": True}]
    assert env.fake.calls["POST /api/v2/activities"] == 1


# -- bulk -----------------------------------------------------------------------------------


def test_no_bulk_endpoint_each_contact_is_its_own_result(env: Env) -> None:
    assert PipedriveDestination.batch_limits == {}  # Pipedrive has no bulk person/deal writes
    writes = [ContactWrite(Contact(email=f"user{i}@example.com")) for i in range(100)]
    writes[42] = ContactWrite(Contact(email="bad@example.com", lead_source={"campaign": "x" * 300}))
    results = env.crm.upsert_contacts(writes)
    assert len(results) == 100
    assert all(isinstance(r, Written) for i, r in enumerate(results) if i != 42)
    bad = results[42]
    assert isinstance(bad, PermanentDeliveryError)
    assert "Invalid value for custom field" in str(bad) and TOKEN not in str(bad)
    assert env.fake.calls["POST /api/v2/persons"] == 100  # one request per record, in order
    assert len(env.fake.contacts) == 99
    assert [r.id for r in results[:3] if isinstance(r, Written)] == ["1", "2", "3"]


def test_deal_batch_returns_one_result_per_input(env: Env) -> None:
    results = env.crm.upsert_deals(
        [DealWrite(_order(external_ids={"shopify": str(i)})) for i in range(3)]
        + [DealWrite(_order(), contact_id="abc")]
    )
    assert [type(r) for r in results] == [Written, Written, Written, PermanentDeliveryError]


# -- errors ---------------------------------------------------------------------------------


def _json_response(status: int, body: dict, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("response", "expected", "retry_after"),
    [
        pytest.param(
            _json_response(429, {"success": False, "error": "Request over limit"}, **{"Retry-After": "7"}),
            TransientDeliveryError,
            7.0,
            id="429-retry-after",
        ),
        pytest.param(
            _json_response(
                429,
                {"success": False, "error": "daily request budget exceeded"},
                **{"x-ratelimit-reset": "2"},
            ),
            TransientDeliveryError,
            2.0,
            id="429-ratelimit-reset",
        ),
        pytest.param(
            _json_response(401, {"success": False, "error": "unauthorized access", "errorCode": 401}),
            AuthDeliveryError,
            None,
            id="401",
        ),
        pytest.param(
            _json_response(402, {"success": False, "error": "Company account is not open"}),
            AuthDeliveryError,
            None,
            id="402",
        ),
        pytest.param(
            _json_response(
                403,
                {
                    "success": False,
                    "error": "Couldn't add the deal. Open deals limit reached.",
                    "code": "feature_capping_deals_limit",
                },
            ),
            AuthDeliveryError,
            None,
            id="403-json",
        ),
        pytest.param(
            httpx.Response(
                403, text="<!DOCTYPE html><html>Cloudflare 1015</html>", headers={"content-type": "text/html"}
            ),
            TransientDeliveryError,
            60.0,
            id="403-cloudflare-html",
        ),
        pytest.param(
            _json_response(404, {"success": False, "error": "Person not found"}),
            NotFoundError,
            None,
            id="404",
        ),
        pytest.param(_json_response(410, {"success": False, "error": "Gone"}), NotFoundError, None, id="410"),
        pytest.param(
            _json_response(400, {"success": False, "error": f"Name must be given. token={TOKEN}"}),
            PermanentDeliveryError,
            None,
            id="400",
        ),
        pytest.param(
            _json_response(422, {"success": False, "error": "Unprocessable"}),
            PermanentDeliveryError,
            None,
            id="422",
        ),
        pytest.param(
            _json_response(500, {"success": False, "error": "Internal"}),
            TransientDeliveryError,
            None,
            id="500",
        ),
        pytest.param(
            _json_response(501, {"success": False, "error": "Not implemented"}),
            PermanentDeliveryError,
            None,
            id="501",
        ),
        pytest.param(
            httpx.Response(503, text="upstream down", headers={"Retry-After": "30"}),
            TransientDeliveryError,
            30.0,
            id="503",
        ),
    ],
)
def test_every_error_class_through_the_adapter(
    response: httpx.Response, expected: type[Exception], retry_after: float | None
) -> None:
    client = httpx.Client(transport=httpx.MockTransport(lambda request: response), base_url=BASE)
    crm = PipedriveDestination(PipedriveSettings(api_token=TOKEN, base_url=BASE), client=client)
    with pytest.raises(expected) as caught:
        crm.upsert_contact(Contact(email="e@example.com"))
    assert type(caught.value) is expected
    assert TOKEN not in str(caught.value)
    assert f"HTTP {response.status_code}" in str(caught.value)
    if isinstance(caught.value, TransientDeliveryError):
        assert caught.value.retry_after == retry_after
    if response.status_code == 400:
        assert "Name must be given." in str(caught.value)  # Pipedrive's own message


def test_timeouts_are_transient() -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    client = httpx.Client(transport=httpx.MockTransport(timeout), base_url=BASE)
    crm = PipedriveDestination(PipedriveSettings(api_token=TOKEN, base_url=BASE), client=client)
    with pytest.raises(TransientDeliveryError, match="ReadTimeout"):
        crm.upsert_contact(Contact(email="e@example.com"))


def test_fake_validation_errors_are_permanent_with_pipedrive_message(env: Env) -> None:
    with pytest.raises(PermanentDeliveryError, match="Stage with id 999 does not exist") as caught:
        PipedriveDestination(
            _with(env.crm.settings, {"stage_id": 999, "pipeline_id": None}), client=env.crm.client
        ).upsert_deal(_order(stage=None), contact_id=None, company_id=None)
    assert TOKEN not in str(caught.value)


def test_fake_auth_down_and_failures_map_to_their_classes(env: Env) -> None:
    wrong = PipedriveDestination(_with(env.crm.settings, {"api_token": "nope"}), client=env.crm.client)
    with pytest.raises(AuthDeliveryError, match="unauthorized access"):
        wrong.upsert_contact(Contact(email="a@example.com"))
    env.fake.down = True
    with pytest.raises(TransientDeliveryError, match="HTTP 503"):
        env.crm.upsert_contact(Contact(email="a@example.com"))
    env.fake.down, env.fake.fail_rate = False, 1.0
    with pytest.raises(TransientDeliveryError, match="HTTP 500"):
        env.crm.upsert_contact(Contact(email="a@example.com"))


def test_classify_reads_an_epoch_reset_header() -> None:
    response = httpx.Response(
        429, json={"success": False, "error": "x"}, headers={"x-ratelimit-reset": "9999999999"}
    )
    error = classify(response, "search persons")
    assert isinstance(error, TransientDeliveryError) and error.retry_after and error.retry_after > 1e6


# -- the fake's rate limit ------------------------------------------------------------------


def test_fake_rate_limit_answers_the_real_429() -> None:
    now = [100.0]
    fake = FakePipedrive(burst=(3, 2.0), search_burst=None, clock=lambda: now[0])
    client = httpx.Client(transport=httpx.MockTransport(fake), base_url=BASE)
    headers = {"x-api-token": TOKEN}
    for _ in range(3):
        ok = client.get("/api/v2/pipelines", headers=headers)
        assert ok.status_code == 200 and "x-ratelimit-remaining" in ok.headers
    limited = client.get("/api/v2/pipelines", headers=headers)
    assert limited.status_code == 429
    assert limited.json()["success"] is False and limited.json()["errorCode"] == 429
    assert limited.headers["x-ratelimit-limit"] == "3"
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert limited.headers["x-ratelimit-reset"] == "2"
    assert fake.rate_limited == 1

    crm = PipedriveDestination(PipedriveSettings(api_token=TOKEN, base_url=BASE), client=client)
    with pytest.raises(TransientDeliveryError) as caught:
        crm.upsert_contact(Contact(email="r@example.com"))
    assert caught.value.retry_after == 2.0
    now[0] += 2.0
    assert crm.upsert_contact(Contact(email="r@example.com")) == "1"


def test_fake_search_has_its_own_limit() -> None:
    now = [0.0]
    fake = FakePipedrive(burst=None, search_burst=(2, 2.0), clock=lambda: now[0])
    client = httpx.Client(transport=httpx.MockTransport(fake), base_url=BASE)
    crm = PipedriveDestination(PipedriveSettings(api_token=TOKEN, base_url=BASE), client=client)
    crm.upsert_contact(Contact(email="a@example.com"))
    crm.upsert_contact(Contact(email="b@example.com"))
    with pytest.raises(TransientDeliveryError):
        crm.upsert_contact(Contact(email="c@example.com"))
    assert fake.rate_limited == 1


def test_fake_rejects_what_v2_rejects() -> None:
    fake = FakePipedrive(burst=None, search_burst=None)
    client = httpx.Client(transport=httpx.MockTransport(fake), base_url=BASE, headers={"x-api-token": TOKEN})
    assert client.post("/api/v2/persons", json={"emails": []}).json()["error"] == "Name must be given."
    assert client.post("/api/v2/deals", json={"title": "x", "value": "12"}).status_code == 400  # no coercion
    assert client.post("/api/v2/persons", json={"name": "x", "job_title": "CEO"}).status_code == 403
    assert client.post("/api/v2/persons", json={"name": "x", "nickname": "y"}).status_code == 400
    assert client.post("/api/v2/activities", json={"subject": "x", "person_id": 1}).status_code == 400
    assert client.get("/api/v2/persons/search", params={"term": "a"}).status_code == 400
    assert client.get("/api/v2/persons/search", params={"term": "a", "exact_match": "1"}).status_code == 400
    assert client.post("/api/v1/notes", json={"content": "hi"}).status_code == 400
    assert client.get("/api/v2/persons/77").status_code == 404


# -- check ----------------------------------------------------------------------------------


def test_check_passes_for_a_good_configuration(env: Env) -> None:
    assert env.crm.check() == []


def test_check_reports_every_missing_pipeline_stage_field_option_label_and_type(env: Env) -> None:
    crm = PipedriveDestination(
        _with(
            env.crm.settings,
            {
                "pipeline_id": 99,
                "stages": {"paid": 77},
                "deal_external_id_field": "f" * 40,
                "properties": {"custom_fields.size": "0" * 40, "company.address": "address"},
                "activity_types": {"appointment_booked": "zoom"},
                "tag_labels": {"vip": 42},
                "lifecycle_options": {"lead": 555},
                "tags_field": env.codes["lifecycle"],  # an enum, not text
            },
        ),
        client=env.crm.client,
    )
    problems = crm.check()
    text = "\n".join(problems)
    for expected in (
        "pipeline_id: pipeline 99",
        "stages.paid: stage 77",
        "stage_id: stage 1 belongs to pipeline 1, not 99",
        f"deal_external_id_field: no deal field {'f' * 40!r}",
        f"properties.custom_fields.size: no person field {'0' * 40!r}",
        "activity_types.appointment_booked: no active activity type 'zoom'",
        "tag_labels.vip: person label 42",
        "lifecycle_options.lead: option 555",
        "tags_field: person field",
    ):
        assert expected in text, expected
    assert len(problems) == 9


def test_check_reports_bad_credentials(env: Env) -> None:
    crm = PipedriveDestination(_with(env.crm.settings, {"api_token": "nope"}), client=env.crm.client)
    [problem] = crm.check()
    assert "refused the API token" in problem and "nope" not in problem


# -- settings -------------------------------------------------------------------------------


def test_settings_validate_base_url_and_paths() -> None:
    with pytest.raises(ValueError, match="https"):
        PipedriveSettings(api_token=TOKEN, base_url="http://acme.pipedrive.com")
    with pytest.raises(ValueError, match="without a path"):
        PipedriveSettings(api_token=TOKEN, base_url="https://acme.pipedrive.com/api/v2")
    with pytest.raises(ValueError, match="unknown canonical field"):
        PipedriveSettings(api_token=TOKEN, base_url=BASE, properties={"favourite_colour": "abc"})
    with pytest.raises(ValueError, match="overwrite"):
        PipedriveSettings(api_token=TOKEN, base_url=BASE, overwrite=frozenset({"everything"}))
    local = PipedriveSettings(api_token=TOKEN, base_url="http://127.0.0.1:8765")  # a FakeServer
    assert local.base_url == "http://127.0.0.1:8765"
    settings = PipedriveSettings(api_token=TOKEN, base_url="https://acme.pipedrive.com/", burst_per_2s=100)
    crm = PipedriveDestination(settings)
    assert crm.base_url() == BASE
    assert crm.request_budget() == (100, 2.0)
    assert PipedriveDestination.rate_limit == (20, 2.0)
    assert TOKEN not in crm.account_key() and crm.account_key().startswith("pipedrive:")


def test_known_id_of_a_note_is_reused_only_when_it_carries_our_marker(env: Env) -> None:
    person_id = env.crm.upsert_contact(Contact(email="kn@example.com"))
    note_id = env.crm.add_activity(_paid(), contact_id=person_id, deal_id=None)
    env.fake.calls.clear()
    assert env.crm.add_activity(_paid(), contact_id=person_id, deal_id=None, known_id=note_id) == note_id
    assert env.fake.calls["GET /api/v1/notes"] == 0  # no lookup, no write: it is there
    foreign = env.fake.seed("notes", content="<p>someone's own note</p>", person_id=int(person_id))
    other = env.crm.add_activity(
        _paid(kind="order_placed"), contact_id=person_id, deal_id=None, known_id=str(foreign)
    )
    assert other != str(foreign)
    assert next(n for n in env.fake.notes if n["id"] == foreign)["content"] == "<p>someone's own note</p>"


def test_known_id_of_an_activity_updates_it(env: Env) -> None:
    person_id = env.crm.upsert_contact(Contact(email="ka@example.com"))
    booking = Activity(
        kind="appointment_booked",
        occurred_at="2026-11-20T10:00:00Z",
        subject="Intro",
        external_ids={"calendly": "i2"},
    )
    activity_id = env.crm.add_activity(booking, contact_id=person_id, deal_id=None)
    moved = booking.model_copy(update={"subject": "Intro (moved)"})
    assert (
        env.crm.add_activity(moved, contact_id=person_id, deal_id=None, known_id=activity_id) == activity_id
    )
    [activity] = env.fake.activities
    assert activity["subject"] == "Intro (moved)" and activity["done"] is True


def test_company_with_a_mapped_domain_field_is_not_merged_by_name_across_domains() -> None:
    fake = FakePipedrive(burst=None, search_burst=None)
    domain = fake.add_field("organization", "Domain")
    env = _env(fake, properties={"company.domain": domain})
    inc = env.crm.upsert_company(Company(name="Acme", domain="acme.com"))
    assert env.crm.upsert_company(Company(name="Acme", domain="acme.com")) == inc
    assert env.crm.upsert_company(Company(name="Acme Inc.", domain="acme.com")) == inc  # found by domain
    gmbh = env.crm.upsert_company(Company(name="Acme", domain="acme.de"))
    assert gmbh != inc and len(env.fake.organizations) == 2


def test_fake_is_thread_safe() -> None:
    import threading

    fake = FakePipedrive(burst=None, search_burst=None)
    client = httpx.Client(transport=httpx.MockTransport(fake), base_url=BASE, headers={"x-api-token": TOKEN})

    def create(n: int) -> None:
        for i in range(20):
            assert client.post("/api/v2/persons", json={"name": f"p{n}-{i}"}).status_code == 200

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(p["id"] for p in fake.contacts) == list(range(1, 161))
