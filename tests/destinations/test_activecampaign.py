"""ActiveCampaign destination against `FakeActiveCampaign`: merge rules, dedupe, errors, check()."""

from datetime import UTC, datetime

import httpx
import pytest
from pydantic import ValidationError

from hub.canonical import Activity, Company, Contact, Deal
from hub.destination import ContactWrite, Destination, Written
from hub.destinations.activecampaign import ActiveCampaignDestination, ActiveCampaignSettings
from hub.destinations.activecampaign.errors import delivery_error
from hub.destinations.activecampaign.fake import FAKE_BASE_URL, FAKE_TOKEN, FakeActiveCampaign
from hub.errors import AuthDeliveryError, PermanentDeliveryError, TransientDeliveryError

WHEN = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def fake():
    return FakeActiveCampaign(budget=None)


def connect(fake, **settings) -> ActiveCampaignDestination:
    options = {
        "api_token": FAKE_TOKEN,
        "base_url": FAKE_BASE_URL,
        "deal_pipeline": "1",
        "deal_external_id_field": "1",
        **settings,
    }
    client = httpx.Client(transport=httpx.MockTransport(fake), base_url=FAKE_BASE_URL)
    return ActiveCampaignDestination(ActiveCampaignSettings(**options), client=client)


@pytest.fixture
def crm(fake):
    return connect(fake)


def only(items):
    (item,) = items
    return item


def order(number="1001", **fields):
    return Deal(
        **{
            "title": f"Order #{number}",
            "amount": "129.90",
            "currency": "USD",
            "external_ids": {"shopify": number},
            **fields,
        }
    )


# --- the plugin and its settings -------------------------------------------------------


def test_is_a_complete_destination_plugin(crm):
    assert issubclass(ActiveCampaignDestination, Destination)
    assert not ActiveCampaignDestination.__abstractmethods__
    assert ActiveCampaignDestination.name == "activecampaign"
    assert ActiveCampaignDestination.settings_model is ActiveCampaignSettings
    assert ActiveCampaignDestination.rate_limit == (5, 1.0)
    # contact/sync takes one contact; the bulk import is asynchronous, so nothing is batched.
    assert "contact" not in ActiveCampaignDestination.batch_limits
    assert crm.base_url() == FAKE_BASE_URL
    assert crm.request_budget() == (5, 1.0)


def test_settings_normalise_the_url_and_hide_the_token():
    settings = ActiveCampaignSettings(
        api_token="s3cret", base_url="https://acme.api-us1.com/", requests_per_second=3
    )
    assert settings.base_url == "https://acme.api-us1.com/api/3"
    assert "s3cret" not in repr(settings)
    crm = ActiveCampaignDestination(settings)
    assert crm.request_budget() == (3, 1.0)
    assert "s3cret" not in crm.account_key() and crm.account_key().startswith("activecampaign:")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("base_url", "ftp://acme.api-us1.com/api/3", id="not-https"),
        pytest.param("base_url", "https://acme.api-us1.com/api/2", id="wrong-path"),
        pytest.param("requests_per_second", 10, id="above-the-documented-budget"),
        pytest.param("properties", {"job_title": "Job Title"}, id="field-by-name-not-id"),
        pytest.param("properties", {"email": "5"}, id="email-must-stay-email"),
        pytest.param("deal_stages", {"paid": "won"}, id="stage-not-an-id"),
        pytest.param("colour", "blue", id="unknown-key"),
    ],
)
def test_settings_reject(field, value):
    with pytest.raises(ValidationError):
        ActiveCampaignSettings(**{"api_token": "t", "base_url": "https://acme.api-us1.com", field: value})


# --- contacts --------------------------------------------------------------------------


def test_contact_create_then_update_follows_the_merge_rules(fake):
    job, stage, plan = fake.add_field("Job title"), fake.add_field("Lifecycle"), fake.add_field("Plan")
    crm = connect(fake, properties={"job_title": job, "lifecycle_stage": stage, "custom_fields.plan": plan})

    first = crm.upsert_contact(
        Contact(
            email="Ada@Example.com",
            first_name="Ada",
            phone="+442071838750",
            job_title="CTO",
            lifecycle_stage="customer",
            tags={"vip"},
            custom_fields={"plan": "gold"},
        )
    )
    second = crm.upsert_contact(
        Contact(
            email="ada@example.com",
            first_name="Adele",
            last_name="Lovelace",
            lifecycle_stage="lead",
            tags={"newsletter"},
            custom_fields={"plan": "silver"},
        )
    )

    assert first == second
    stored = only(fake.contacts)
    assert stored["email"] == "ada@example.com"
    assert stored["firstName"] == "Ada"  # a stored value is not overwritten by default
    assert stored["lastName"] == "Lovelace"  # an empty one is filled
    assert stored["phone"] == "+442071838750"  # not erased by a contact without phone
    assert stored["fields"] == {job: "CTO", stage: "customer", plan: "gold"}  # lead never replaces customer
    assert stored["tags"] == ["newsletter", "vip"]  # a union


def test_sync_never_sends_empty_values(fake, crm):
    crm.upsert_contact(Contact(email="ada@example.com", first_name="Ada"))
    (body,) = [body for _, path, body in fake.requests if path.endswith("/contact/sync")]
    assert body == {"contact": {"email": "ada@example.com", "firstName": "Ada"}}


def test_listed_fields_are_overwritten(fake):
    plan = fake.add_field("Plan")
    crm = connect(
        fake, properties={"custom_fields.plan": plan}, overwrite={"first_name", "custom_fields.plan"}
    )
    crm.upsert_contact(Contact(email="ada@example.com", first_name="Ada", custom_fields={"plan": "gold"}))
    crm.upsert_contact(Contact(email="ada@example.com", first_name="Adele", custom_fields={"plan": "silver"}))
    stored = only(fake.contacts)
    assert (stored["firstName"], stored["fields"]) == ("Adele", {plan: "silver"})


@pytest.mark.parametrize(
    ("before", "after", "kept"),
    [
        ("lead", "customer", "customer"),
        ("customer", "lead", "customer"),
        ("lead", "other", "lead"),
        ("other", "mql", "mql"),
    ],
)
def test_lifecycle_stage_only_moves_forward(fake, before, after, kept):
    field = fake.add_field("Lifecycle")
    crm = connect(fake, properties={"lifecycle_stage": field}, lifecycle_stages={"customer": "Customer"})
    crm.upsert_contact(Contact(email="ada@example.com", lifecycle_stage=before))
    crm.upsert_contact(Contact(email="ada@example.com", lifecycle_stage=after))
    assert only(fake.contacts)["fields"][field] == {"customer": "Customer"}.get(kept, kept)


def test_an_unchanged_contact_costs_one_lookup_and_no_write(fake, crm):
    crm.upsert_contact(Contact(email="ada@example.com", first_name="Ada"))
    fake.calls.clear()
    crm.upsert_contact(Contact(email="ada@example.com", first_name="Ada"))
    assert dict(fake.calls) == {"GET /contacts": 1}


def test_known_id_updates_that_record_without_a_lookup(fake, crm):
    contact_id = crm.upsert_contact(Contact(email="ada@example.com"))
    fake.calls.clear()
    assert (
        crm.upsert_contact(Contact(email="ada@example.com", first_name="Ada"), known_id=contact_id)
        == contact_id
    )
    assert dict(fake.calls) == {"GET /contacts/{id}": 1, "PUT /contacts/{id}": 1}
    assert only(fake.contacts)["firstName"] == "Ada"


def test_known_id_that_no_longer_exists_falls_back_to_the_email(fake, crm):
    contact_id = crm.upsert_contact(Contact(email="ada@example.com"))
    assert crm.upsert_contact(Contact(email="ada@example.com", last_name="L"), known_id="999") == contact_id
    assert fake.calls["GET /contacts/{id}"] == 1 and fake.calls["POST /contact/sync"] == 2
    assert only(fake.contacts)["lastName"] == "L"


def test_phone_only_contact_is_found_again_on_a_retry(fake, crm):
    first = crm.upsert_contact(Contact(phone="+14155550100", first_name="Grace"))
    assert crm.upsert_contact(Contact(phone="+14155550100", last_name="Hopper")) == first
    stored = only(fake.contacts)
    assert (stored["email"], stored["firstName"], stored["lastName"]) == ("", "Grace", "Hopper")


def test_phone_is_only_a_candidate_key(fake, crm):
    first = crm.upsert_contact(Contact(phone="+14155550100", first_name="Grace"))
    other = crm.upsert_contact(Contact(phone="+14155550100", first_name="Alan"))  # another person's name
    with_email = crm.upsert_contact(Contact(email="g@example.com", phone="+14155550100"))
    assert len({first, other, with_email}) == 3


def test_a_contact_without_email_or_phone_is_refused(crm):
    with pytest.raises(PermanentDeliveryError, match="email"):
        crm.upsert_contact(Contact(external_ids={"shopify": "42"}))


def test_bulk_returns_one_result_per_contact_in_order(fake, crm):
    fake.phone_only_contacts = False  # the account does not allow contacts without email
    results = crm.upsert_contacts(
        [
            ContactWrite(Contact(email="a@example.com")),
            ContactWrite(Contact(phone="+14155550100")),
            ContactWrite(Contact(email="b@example.com")),
        ]
    )
    assert isinstance(results[0], Written) and isinstance(results[2], Written)
    assert isinstance(results[1], PermanentDeliveryError)
    assert "Email address is required" in str(results[1]) and FAKE_TOKEN not in str(results[1])
    assert fake.calls["POST /contact/sync"] == 2  # one request per contact: no bulk endpoint


# --- tags ------------------------------------------------------------------------------


def test_tags_are_found_by_exact_name_created_once_and_reapplied_safely(fake, crm):
    contact_id = crm.upsert_contact(Contact(email="ada@example.com"))
    crm.add_tags(contact_id, ["VIP"])
    other = connect(fake)  # a second worker: its own tag cache
    other.add_tags(contact_id, ["vip", " VIP ", "VIP-2024"])
    crm.add_tags(contact_id, ["VIP"])
    assert fake.tags == ["VIP", "VIP-2024"]
    assert only(fake.contacts)["tags"] == ["VIP", "VIP-2024"]
    assert fake.calls["POST /tags"] == 2


def test_a_tag_deleted_in_activecampaign_is_looked_up_again(fake, crm):
    crm.upsert_contact(Contact(email="ada@example.com", tags={"vip"}))
    fake.delete("tag", "1")
    crm.upsert_contact(Contact(email="ada@example.com", tags={"vip"}))
    assert fake.tags == ["vip"] and only(fake.contacts)["tags"] == ["vip"]


def test_tagging_a_missing_contact_is_permanent(crm):
    with pytest.raises(PermanentDeliveryError, match="Contact not found"):
        crm.add_tags("999", ["vip"])


# --- accounts --------------------------------------------------------------------------


def test_company_is_an_account_found_again_by_name(fake, crm):
    first = crm.upsert_company(Company(name="Acme"))
    assert crm.upsert_company(Company(name="ACME", domain="acme.io")) == first
    assert crm.upsert_company(Company(name="Acme"), known_id=first) == first
    assert only(fake.accounts)["accountUrl"] == "https://acme.io"  # an empty URL filled in
    assert crm.upsert_company(Company(name="Other"), known_id="999") != first


def test_linking_twice_is_fine_but_another_account_is_refused(fake, crm):
    contact_id = crm.upsert_contact(Contact(email="ada@example.com"))
    acme, other = crm.upsert_company(Company(name="Acme")), crm.upsert_company(Company(name="Other"))
    crm.link_contact_company(contact_id, acme)
    crm.link_contact_company(contact_id, acme)
    with pytest.raises(PermanentDeliveryError, match="already associated"):
        crm.link_contact_company(contact_id, other)


# --- deals -----------------------------------------------------------------------------


def test_deal_is_written_in_cents_lower_case_and_linked_to_its_contact(fake, crm):
    contact_id = crm.upsert_contact(Contact(email="ada@example.com"))
    crm.upsert_deal(order(), contact_id=contact_id, company_id=None)
    deal = only(fake.deals)
    assert (deal["value"], deal["currency"], deal["status"]) == (12990, "usd", 0)
    assert (deal["contact"], deal["group"], deal["stage"]) == (contact_id, "1", "1")
    assert deal["fields"] == {"1": "shopify:1001"}


def test_deal_retry_after_an_ambiguous_failure_makes_one_deal(fake, crm):
    contact_id = crm.upsert_contact(Contact(email="ada@example.com"))
    fake.commit_then_fail_rate = 1.0  # the deal is created, then the answer is lost
    with pytest.raises(TransientDeliveryError):
        crm.upsert_deal(order(), contact_id=contact_id, company_id=None)
    fake.commit_then_fail_rate = 0.0
    deal_id = crm.upsert_deal(order(), contact_id=contact_id, company_id=None)
    assert crm.upsert_deal(order(status="won"), contact_id=contact_id, company_id=None) == deal_id
    deal = only(fake.deals)
    assert (deal["id"], deal["status"]) == (deal_id, 1)


def test_a_late_open_never_reopens_a_won_deal_and_amounts_follow_the_source(fake, crm):
    contact_id = crm.upsert_contact(Contact(email="ada@example.com"))
    deal_id = crm.upsert_deal(order(status="won"), contact_id=contact_id, company_id=None)
    crm.upsert_deal(
        order(status="open", amount="99.50", title="Renamed"),
        contact_id=contact_id,
        company_id=None,
        known_id=deal_id,
    )
    deal = only(fake.deals)
    assert (deal["status"], deal["value"], deal["title"]) == (1, 9950, "Order #1001")


def test_deal_known_id_is_used_directly_and_a_404_falls_back(fake, crm):
    contact_id = crm.upsert_contact(Contact(email="ada@example.com"))
    deal_id = crm.upsert_deal(order(), contact_id=contact_id, company_id=None)
    fake.calls.clear()
    assert (
        crm.upsert_deal(order(status="lost"), contact_id=contact_id, company_id=None, known_id=deal_id)
        == deal_id
    )
    assert fake.calls["GET /contacts/{id}/deals"] == 0 and fake.calls["PUT /deals/{id}"] == 1
    assert crm.upsert_deal(order(), contact_id=contact_id, company_id=None, known_id="999") == deal_id
    assert fake.calls["GET /deals/{id}"] == 2 and fake.calls["GET /contacts/{id}/deals"] == 1
    assert len(fake.deals) == 1


def test_deals_of_one_contact_are_told_apart_by_external_id(fake, crm):
    contact_id = crm.upsert_contact(Contact(email="ada@example.com"))
    ids = {crm.upsert_deal(order(n), contact_id=contact_id, company_id=None) for n in ("1", "2", "1", "2")}
    assert len(ids) == 2 and len(fake.deals) == 2


def test_without_an_external_id_field_the_title_dedupes(fake):
    crm = connect(fake, deal_external_id_field=None)
    contact_id = crm.upsert_contact(Contact(email="ada@example.com"))
    first = crm.upsert_deal(order(), contact_id=contact_id, company_id=None)
    assert crm.upsert_deal(order(), contact_id=contact_id, company_id=None) == first
    assert only(fake.deals)["fields"] == {}


def test_stages_map_by_name(fake):
    group, stages = fake.add_pipeline("Online", ["New", "Paid"])
    crm = connect(fake, deal_pipelines={"online": group}, deal_stages={"paid": stages[1]})
    contact_id = crm.upsert_contact(Contact(email="ada@example.com"))
    crm.upsert_deal(order(pipeline="online", stage="paid"), contact_id=contact_id, company_id=None)
    assert (only(fake.deals)["group"], only(fake.deals)["stage"]) == (group, stages[1])
    with pytest.raises(PermanentDeliveryError, match="'refunded' is not in deal_stages"):
        crm.upsert_deal(order("2", stage="refunded"), contact_id=contact_id, company_id=None)


@pytest.mark.parametrize(
    ("deal", "message"),
    [
        pytest.param(order(currency="JPY", amount="1500"), "zero-decimal", id="zero-decimal-currency"),
        pytest.param(order(amount="-1"), "zero or more", id="negative"),
        pytest.param(order(amount="30000000"), "largest deal value", id="above-int32-cents"),
    ],
)
def test_deal_amounts_activecampaign_cannot_hold_are_refused_before_sending(fake, crm, deal, message):
    contact_id = crm.upsert_contact(Contact(email="ada@example.com"))
    with pytest.raises(PermanentDeliveryError, match=message):
        crm.upsert_deal(deal, contact_id=contact_id, company_id=None)
    assert fake.calls["POST /deals"] == 0


def test_three_decimal_currencies_use_their_exponent(fake, crm):
    contact_id = crm.upsert_contact(Contact(email="ada@example.com"))
    crm.upsert_deal(order(currency="KWD", amount="1.234"), contact_id=contact_id, company_id=None)
    assert (only(fake.deals)["value"], only(fake.deals)["currency"]) == (1234, "kwd")


def test_a_deal_needs_a_contact_or_an_account(crm):
    with pytest.raises(PermanentDeliveryError, match="contact or an account"):
        crm.upsert_deal(order(), contact_id=None, company_id=None)


def test_a_deal_on_an_account_only(fake, crm):
    account = crm.upsert_company(Company(name="Acme"))
    crm.upsert_deal(order(), contact_id=None, company_id=account)
    assert only(fake.deals)["account"] == account


# --- notes -----------------------------------------------------------------------------


def call(**fields):
    return Activity(
        **{
            "kind": "call_logged",
            "occurred_at": WHEN,
            "subject": "Intro call",
            "body": "Went well",
            "external_ids": {"calendly": "ev1"},
            **fields,
        }
    )


def test_activity_is_a_note_on_the_contact(fake, crm):
    contact_id = crm.upsert_contact(Contact(email="ada@example.com"))
    note_id = crm.add_activity(call(), contact_id=contact_id, deal_id=None)
    note = only(fake.notes)
    assert (note["id"], note["reltype"], note["relid"]) == (note_id, "Subscriber", contact_id)
    assert note["note"].startswith("Call logged: Intro call\n\nWent well")
    assert "2024-05-01 09:30 UTC · calendly:ev1" in note["note"]


def test_a_known_note_is_not_written_again_and_a_deleted_one_is(fake, crm):
    contact_id = crm.upsert_contact(Contact(email="ada@example.com"))
    note_id = crm.add_activity(call(), contact_id=contact_id, deal_id=None)
    assert crm.add_activity(call(), contact_id=contact_id, deal_id=None, known_id=note_id) == note_id
    assert len(fake.notes) == 1
    assert crm.add_activity(call(), contact_id=contact_id, deal_id=None, known_id="999") != note_id
    assert len(fake.notes) == 2


def test_without_known_id_a_note_retry_is_not_recognised(fake, crm):
    # Documented limitation: notes have no key ActiveCampaign can search (only known_id dedupes).
    contact_id = crm.upsert_contact(Contact(email="ada@example.com"))
    crm.add_activity(call(), contact_id=contact_id, deal_id=None)
    crm.add_activity(call(), contact_id=contact_id, deal_id=None)
    assert len(fake.notes) == 2


def test_activity_with_only_a_deal_is_a_deal_note(fake, crm):
    contact_id = crm.upsert_contact(Contact(email="ada@example.com"))
    deal_id = crm.upsert_deal(order(), contact_id=contact_id, company_id=None)
    crm.add_activity(call(), contact_id=None, deal_id=deal_id)
    assert (only(fake.notes)["reltype"], only(fake.notes)["relid"]) == ("Deal", deal_id)


# --- errors ----------------------------------------------------------------------------


def answer(status, body=None, headers=None):
    request = httpx.Request("POST", f"{FAKE_BASE_URL}/deals")
    return httpx.Response(status, json=body if body is not None else {}, headers=headers, request=request)


@pytest.mark.parametrize(
    ("response", "kind", "text"),
    [
        pytest.param(
            answer(429, {"message": "Too Many Requests"}, {"Retry-After": "7"}),
            TransientDeliveryError,
            "Too Many Requests",
            id="429",
        ),
        pytest.param(answer(401, {"message": "Unauthorized"}), AuthDeliveryError, "Unauthorized", id="401"),
        pytest.param(answer(403, {"message": "Forbidden"}), AuthDeliveryError, "Forbidden", id="403"),
        pytest.param(
            answer(
                422,
                {
                    "errors": [
                        {
                            "title": "Email address already exists in the system",
                            "detail": "",
                            "code": "duplicate",
                        }
                    ]
                },
            ),
            PermanentDeliveryError,
            "Email address already exists",
            id="422",
        ),
        pytest.param(answer(400), PermanentDeliveryError, "Bad Request", id="400-empty-body"),
        pytest.param(
            answer(404, {"message": "No Result found for Deal with id 9"}),
            PermanentDeliveryError,
            "No Result found",
            id="404",
        ),
        pytest.param(answer(500, {"message": "oops"}), TransientDeliveryError, "oops", id="500"),
        pytest.param(answer(503), TransientDeliveryError, "Service Unavailable", id="503"),
    ],
)
def test_classification_table(response, kind, text):
    error = delivery_error(response, "POST /deals")
    assert type(error) is kind and text in str(error)
    if response.status_code == 429:
        assert error.retry_after == 7.0


def test_a_wrong_token_is_an_auth_error_that_does_not_show_the_token(fake):
    crm = connect(fake, api_token="wrong-token")
    with pytest.raises(AuthDeliveryError) as raised:
        crm.upsert_contact(Contact(email="ada@example.com"))
    assert "Forbidden" in str(raised.value) and "wrong-token" not in str(raised.value)


def test_an_email_never_appears_in_an_error(fake, crm):
    fake.down = True
    with pytest.raises(TransientDeliveryError) as raised:
        crm.upsert_contact(Contact(email="ada@example.com", first_name="Ada"))
    assert "ada@example.com" not in str(raised.value) and "503" in str(raised.value)


def test_timeouts_and_injected_failures_are_transient_and_write_nothing(fake, crm):
    def timeout(request):
        raise httpx.ReadTimeout("timed out", request=request)

    stalled = ActiveCampaignDestination(
        crm.settings, client=httpx.Client(transport=httpx.MockTransport(timeout), base_url=FAKE_BASE_URL)
    )
    with pytest.raises(TransientDeliveryError, match="ReadTimeout"):
        stalled.upsert_contact(Contact(email="ada@example.com"))
    fake.fail_rate = 1.0
    with pytest.raises(TransientDeliveryError, match="HTTP 500"):
        crm.upsert_contact(Contact(email="ada@example.com"))
    assert fake.contacts == []


def test_the_fake_enforces_the_documented_rate_limit():
    now = [100.0]
    fake = FakeActiveCampaign(clock=lambda: now[0])
    client = httpx.Client(transport=httpx.MockTransport(fake), base_url=FAKE_BASE_URL)
    answers = [client.get("/users/me", headers={"Api-Token": FAKE_TOKEN}) for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert answers[5].headers["Retry-After"] == "1" and answers[5].headers["RateLimit-Limit"] == "5"
    assert answers[5].headers["RateLimit-Remaining"] == "0" and fake.rate_limited == 1
    crm = connect(fake)
    with pytest.raises(TransientDeliveryError) as raised:
        crm.upsert_contact(Contact(email="ada@example.com"))
    assert raised.value.retry_after == 1.0
    now[0] += 1.0
    assert client.get("/users/me", headers={"Api-Token": FAKE_TOKEN}).status_code == 200


@pytest.mark.parametrize("seed", range(5))
def test_chaos_retries_converge_to_one_record_each(seed):
    fake = FakeActiveCampaign(budget=None, fail_rate=0.2, commit_then_fail_rate=0.3, seed=seed)
    crm = connect(fake)

    def until_written(write):
        for _ in range(50):  # what the delivery layer does: retry transient failures
            try:
                return write()
            except TransientDeliveryError:
                continue
        raise AssertionError("never succeeded")

    for n in range(6):
        contact = Contact(email=f"buyer{n % 3}@example.com", first_name="B", tags={f"t{n % 2}", "buyer"})
        contact_id = until_written(lambda c=contact: crm.upsert_contact(c))
        until_written(lambda i=contact_id, n=n: crm.upsert_deal(order(str(n)), contact_id=i, company_id=None))
    assert len(fake.contacts) == 3 and len(fake.deals) == 6
    assert sorted(d["fields"]["1"] for d in fake.deals) == [f"shopify:{n}" for n in range(6)]
    assert fake.tags == ["buyer", "t0", "t1"]


# --- check() ---------------------------------------------------------------------------


def test_check_passes_when_everything_exists(fake):
    plan = fake.add_field("Plan")
    assert connect(fake, properties={"custom_fields.plan": plan}, deal_stages={"new": "1"}).check() == []


def test_check_reports_every_missing_field_pipeline_and_stage(fake):
    _, other_stages = fake.add_pipeline("Other", ["Elsewhere"])
    crm = connect(
        fake,
        properties={"custom_fields.plan": "42"},
        deal_pipelines={"online": "77"},
        deal_stages={"new": "88", "paid": other_stages[0]},
        deal_fields={"close_date": "9"},
    )
    problems = "\n".join(crm.check())
    assert "properties.custom_fields.plan: ActiveCampaign has no contact custom field with id 42" in problems
    assert "deal pipeline online: ActiveCampaign has no pipeline with id 77" in problems
    assert "deal stage new: ActiveCampaign has no stage with id 88" in problems
    assert f"deal stage paid: stage {other_stages[0]} 'Elsewhere' belongs to pipeline" in problems
    assert "deal field close_date: ActiveCampaign has no deal custom field with id 9" in problems


def test_check_reports_a_missing_owner(fake):
    assert connect(fake, deal_owner="5").check() == ["deal_owner: ActiveCampaign has no user with id 5"]


def test_check_reports_a_bad_token(fake):
    (problem,) = connect(fake, api_token="nope").check()
    assert "cannot use the API token" in problem and "nope" not in problem
