"""The local CRM (`type: local`): merge policy, identities, redelivery, concurrency, CLI."""

import json
import multiprocessing
import random
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from hub import plugins
from hub.canonical import Activity, Company, Contact, Deal
from hub.cli import crm_cmd
from hub.destination import Destination
from hub.destinations.local import LocalCrm, LocalCrmSettings
from hub.errors import PermanentDeliveryError

runner = CliRunner()
WHEN = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def crm(tmp_path):
    crm = LocalCrm(LocalCrmSettings(path=str(tmp_path / "crm.db")))
    yield crm
    crm.close()


def only_contact(crm: LocalCrm) -> dict:
    (contact,) = crm.contacts()
    return contact


def test_is_a_complete_destination_plugin():
    assert issubclass(LocalCrm, Destination) and not LocalCrm.__abstractmethods__
    assert LocalCrm.name == "local" and LocalCrm.settings_model is LocalCrmSettings
    assert LocalCrmSettings().path == ".crmhub/crm.db"


def test_relative_path_resolves_against_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    crm = LocalCrm()
    assert crm.path == tmp_path / ".crmhub" / "crm.db"
    assert crm.check() == [] and crm.path.is_file()
    crm.close()


def test_new_contact_is_stored_with_every_field(crm):
    contact_id = crm.upsert_contact(
        Contact(
            email="ann@example.com",
            phone="+4915112345678",
            first_name="Ann",
            last_name="Lee",
            address={"city": "Berlin", "country": "DE"},
            tags={"b", "a"},
            lifecycle_stage="lead",
            lead_source={"source": "google", "medium": "cpc"},
            custom_fields={"plan": "pro"},
            external_ids={"shopify": "42"},
        )
    )
    row = only_contact(crm)
    assert row["id"] == contact_id
    assert row["name"] == "Ann Lee" and row["tags"] == ["a", "b"]
    assert row["address"] == {"city": "Berlin", "country": "DE"}
    assert row["lead_source"] == {"source": "google", "medium": "cpc"}
    assert row["custom_fields"] == {"plan": "pro"} and row["external_ids"] == {"shopify": "42"}
    assert row["marketing_consent"] == "unknown" and row["lifecycle_stage"] == "lead"
    assert row["created_at"].endswith("Z") and row["created_at"] == row["updated_at"]


# -- merge policy, one rule at a time -------------------------------------------------------


def test_empty_value_never_erases_a_stored_one(crm):
    crm.upsert_contact(Contact(email="ann@example.com", first_name="Ann", job_title="CTO"))
    crm.upsert_contact(Contact(email="ann@example.com", first_name="", job_title=None))
    row = only_contact(crm)
    assert row["first_name"] == "Ann" and row["job_title"] == "CTO"


def test_new_non_empty_value_wins(crm):
    crm.upsert_contact(Contact(email="ann@example.com", first_name="Ann", job_title="CTO"))
    crm.upsert_contact(Contact(email="ann@example.com", job_title="CEO"))
    row = only_contact(crm)
    assert row["first_name"] == "Ann" and row["job_title"] == "CEO"


def test_address_is_replaced_whole_never_mixed(crm):
    crm.upsert_contact(Contact(email="ann@example.com", address={"line1": "1 Old St", "line2": "Flat 2"}))
    crm.upsert_contact(Contact(email="ann@example.com", address={"line1": "9 New Rd"}))
    assert only_contact(crm)["address"] == {"line1": "9 New Rd"}
    crm.upsert_contact(Contact(email="ann@example.com", address={}))
    assert only_contact(crm)["address"] == {"line1": "9 New Rd"}


def test_tags_are_a_union(crm):
    contact_id = crm.upsert_contact(Contact(email="ann@example.com", tags={"vip", "shopify"}))
    crm.upsert_contact(Contact(email="ann@example.com", tags={"newsletter"}))
    crm.add_tags(contact_id, ["vip", "webinar", " "])
    assert only_contact(crm)["tags"] == ["newsletter", "shopify", "vip", "webinar"]


def test_custom_fields_and_external_ids_are_merged_key_by_key(crm):
    crm.upsert_contact(
        Contact(
            email="ann@example.com", custom_fields={"plan": "pro", "seats": 3}, external_ids={"shopify": 1}
        )
    )
    crm.upsert_contact(
        Contact(
            email="ann@example.com",
            custom_fields={"seats": 5, "plan": None, "region": "eu"},
            external_ids={"typeform": "t1"},
        )
    )
    row = only_contact(crm)
    assert row["custom_fields"] == {"plan": "pro", "seats": 5, "region": "eu"}
    assert row["external_ids"] == {"shopify": "1", "typeform": "t1"}


@pytest.mark.parametrize(
    ("stored", "incoming", "kept"),
    [
        pytest.param("lead", "customer", "customer", id="forward"),
        pytest.param("customer", "lead", "customer", id="never-backward"),
        pytest.param("mql", "sql", "sql", id="mql-to-sql"),
        pytest.param("opportunity", "subscriber", "opportunity", id="subscriber-is-lowest"),
        pytest.param("lead", "other", "lead", id="other-never-replaces-known"),
        pytest.param("other", "subscriber", "subscriber", id="known-replaces-other"),
        pytest.param("sql", None, "sql", id="missing-keeps"),
        pytest.param(None, "other", "other", id="other-on-empty"),
    ],
)
def test_lifecycle_stage_only_moves_forward(crm, stored, incoming, kept):
    crm.upsert_contact(Contact(email="ann@example.com", lifecycle_stage=stored))
    crm.upsert_contact(Contact(email="ann@example.com", lifecycle_stage=incoming))
    assert only_contact(crm)["lifecycle_stage"] == kept


@pytest.mark.parametrize(
    ("stored", "incoming", "kept"),
    [
        pytest.param("opted_in", "unknown", "opted_in", id="unknown-keeps-opt-in"),
        pytest.param("opted_out", "unknown", "opted_out", id="unknown-keeps-opt-out"),
        pytest.param("opted_in", "opted_out", "opted_out", id="opt-out-wins"),
        pytest.param("unknown", "opted_in", "opted_in", id="known-replaces-unknown"),
    ],
)
def test_unknown_consent_never_overwrites_a_known_one(crm, stored, incoming, kept):
    crm.upsert_contact(Contact(email="ann@example.com", marketing_consent=stored))
    crm.upsert_contact(Contact(email="ann@example.com", marketing_consent=incoming))
    assert only_contact(crm)["marketing_consent"] == kept


def test_identical_redelivery_changes_nothing(crm):
    contact = Contact(email="ann@example.com", first_name="Ann", tags={"x"}, address={"city": "Oslo"})
    first = crm.upsert_contact(contact)
    before = only_contact(crm)
    assert crm.upsert_contact(contact) == first
    assert only_contact(crm) == before  # not even updated_at moves


# -- identities ------------------------------------------------------------------------------


def test_found_by_phone_and_new_email_is_recorded(crm):
    first = crm.upsert_contact(Contact(phone="+4915112345678", first_name="Ann"))
    assert crm.upsert_contact(Contact(email="ann@example.com", phone="+49 151 12345678")) == first
    # The email is now an identity of the same row: found by it alone.
    assert crm.upsert_contact(Contact(email="ann@example.com", last_name="Lee")) == first
    row = only_contact(crm)
    assert (row["email"], row["first_name"], row["last_name"]) == ("ann@example.com", "Ann", "Lee")


def test_found_by_external_id_and_new_identities_are_recorded(crm):
    first = crm.upsert_contact(Contact(external_ids={"calendly": "inv-1"}))
    assert crm.upsert_contact(Contact(email="ann@example.com", external_ids={"calendly": "inv-1"})) == first
    assert crm.upsert_contact(Contact(email="ann@example.com", external_ids={"shopify": "7"})) == first
    assert crm.upsert_contact(Contact(external_ids={"shopify": "7"})) == first
    assert crm.counts()["contacts"] == 1


def test_email_wins_over_phone_and_a_changed_email_keeps_the_old_one(crm):
    ann = crm.upsert_contact(Contact(email="ann@example.com"))
    bob = crm.upsert_contact(Contact(email="bob@example.com", phone="+4915112345678"))
    assert crm.upsert_contact(Contact(email="ann@example.com", phone="+4915112345678")) == ann
    assert crm.upsert_contact(Contact(phone="+4915112345678")) == bob  # the phone stays Bob's
    assert crm.upsert_contact(Contact(email="ann.lee@example.com", external_ids={"x": "1"})) != ann
    assert crm.counts()["contacts"] == 3


def test_company_by_domain_then_external_id_then_name(crm):
    acme = crm.upsert_company(Company(name="Acme", domain="https://www.acme.com/about"))
    assert crm.upsert_company(Company(domain="acme.com", external_ids={"qbo": "c1"})) == acme
    assert crm.upsert_company(Company(external_ids={"qbo": "c1"}, phone="+4930123456")) == acme
    assert crm.upsert_company(Company(name="ACME")) == acme
    assert crm.counts()["companies"] == 1


def test_same_name_different_domain_is_another_company(crm):
    acme = crm.upsert_company(Company(name="Acme", domain="acme.com"))
    assert crm.upsert_company(Company(name="Acme", domain="acme.de")) != acme
    assert crm.counts()["companies"] == 2


def test_company_keeps_values_an_update_leaves_empty(crm):
    crm.upsert_company(Company(name="Acme", domain="acme.com", custom_fields={"size": 10}))
    crm.upsert_company(Company(domain="acme.com", name="", custom_fields={"tier": "gold"}))
    contact_id = crm.upsert_contact(Contact(email="ann@acme.com"))
    crm.link_contact_company(contact_id, crm.upsert_company(Company(domain="acme.com")))
    row = only_contact(crm)
    assert row["company"] == "Acme" and len(row["company_ids"]) == 1


# -- deals and activities: redelivery is a no-op -----------------------------------------------


def test_deal_redelivery_updates_the_same_row(crm):
    contact_id = crm.upsert_contact(Contact(email="ann@example.com"))
    company_id = crm.upsert_company(Company(name="Acme"))
    deal = Deal(title="Order #1001", amount="120.00", currency="eur", external_ids={"shopify": "1001"})
    first = crm.upsert_deal(deal, contact_id=contact_id, company_id=company_id)
    assert crm.upsert_deal(deal, contact_id=contact_id, company_id=company_id) == first
    assert crm.counts() == {"contacts": 1, "companies": 1, "deals": 1, "activities": 0}

    paid = Deal(amount="130.50", currency="EUR", status="won", stage="paid", external_ids={"shopify": 1001})
    assert crm.upsert_deal(paid, contact_id=None, company_id=None) == first
    late_create = Deal(title="Order #1001", status="open", external_ids={"shopify": "1001"})
    crm.upsert_deal(late_create, contact_id=contact_id, company_id=None)
    (row,) = crm.deals()
    assert (row["title"], row["amount"], row["currency"]) == ("Order #1001", "130.50", "EUR")
    assert (row["status"], row["stage"]) == ("won", "paid")  # a late `open` never reopens it
    assert (row["contact_id"], row["company_id"]) == (contact_id, company_id)
    assert row["contact"] == "ann@example.com" and row["company"] == "Acme"
    assert only_contact(crm)["company_ids"] == [company_id]


def test_deal_without_external_id_dedupes_by_contact_and_title(crm):
    ann = crm.upsert_contact(Contact(email="ann@example.com"))
    bob = crm.upsert_contact(Contact(email="bob@example.com"))
    first = crm.upsert_deal(Deal(title="Consulting"), contact_id=ann, company_id=None)
    assert (
        crm.upsert_deal(Deal(title="Consulting", stage="proposal"), contact_id=ann, company_id=None) == first
    )
    assert crm.upsert_deal(Deal(title="Consulting"), contact_id=bob, company_id=None) != first
    assert crm.counts()["deals"] == 2


def test_activity_redelivery_changes_nothing(crm):
    contact_id = crm.upsert_contact(Contact(email="ann@example.com"))
    deal_id = crm.upsert_deal(
        Deal(title="Order", external_ids={"shopify": "1"}), contact_id=contact_id, company_id=None
    )
    by_id = Activity(kind="order", occurred_at=WHEN, subject="Order #1", external_ids={"shopify": "1"})
    natural = Activity(kind="meeting", occurred_at="2024-05-01T11:30:00+02:00", subject="Demo")
    first = crm.add_activity(by_id, contact_id=contact_id, deal_id=deal_id)
    second = crm.add_activity(natural, contact_id=contact_id, deal_id=None)
    before = crm.activities()
    for _ in range(2):
        edited = by_id.model_copy(update={"subject": "Order #1 (edited)"})
        assert crm.add_activity(edited, contact_id=contact_id, deal_id=deal_id) == first
        same_instant = Activity(kind="meeting", occurred_at=WHEN, subject="Demo")
        assert crm.add_activity(same_instant, contact_id=contact_id, deal_id=None) == second
    assert crm.activities() == before and crm.counts()["activities"] == 2
    other = Activity(kind="meeting", occurred_at=WHEN, subject="Demo")
    assert crm.add_activity(other, contact_id=None, deal_id=None) not in (first, second)


def test_unknown_ids_are_a_permanent_error(crm):
    with pytest.raises(PermanentDeliveryError, match="no contact with id '99'"):
        crm.upsert_deal(Deal(title="x"), contact_id="99", company_id=None)
    with pytest.raises(PermanentDeliveryError, match="no deal with id 'abc'"):
        crm.add_activity(Activity(kind="note", occurred_at=WHEN), contact_id=None, deal_id="abc")
    with pytest.raises(PermanentDeliveryError):
        crm.add_tags("7", ["x"])
    assert crm.counts() == {"contacts": 0, "companies": 0, "deals": 0, "activities": 0}


# -- search --------------------------------------------------------------------------------------


def test_search_is_case_insensitive_across_fields(crm):
    ann = crm.upsert_contact(
        Contact(email="ann@example.com", first_name="Ann", last_name="Müller", tags={"vip"})
    )
    bob = crm.upsert_contact(Contact(email="bob@example.org", company="Globex"))
    crm.upsert_deal(Deal(title="Annual plan", amount=99, currency="USD"), contact_id=bob, company_id=None)
    crm.add_activity(
        Activity(kind="email", occurred_at=WHEN, subject="Welcome"), contact_id=ann, deal_id=None
    )
    assert [c["id"] for c in crm.contacts(search="MÜLLER")] == [ann]
    assert [c["id"] for c in crm.contacts(search="VIP")] == [ann]
    assert [c["id"] for c in crm.contacts(search="globex")] == [bob]
    assert [c["id"] for c in crm.contacts(search="example")] == [ann, bob]
    assert crm.contacts(search="50%") == []
    assert [d["title"] for d in crm.deals(search="bob@")] == ["Annual plan"]
    assert [a["subject"] for a in crm.activities(search="ann@")] == ["Welcome"]
    assert crm.activities(search="nothing") == []


# -- concurrency -------------------------------------------------------------------------------


def _upsert_everyone(path: str, worker: int, start: "multiprocessing.synchronize.Barrier") -> None:
    crm = LocalCrm(LocalCrmSettings(path=path))
    emails = [f"user{i}@example.com" for i in range(200)]
    random.Random(worker).shuffle(emails)
    start.wait()
    for email in emails:
        crm.upsert_contact(Contact(email=email, tags={f"worker-{worker}"}))
    crm.close()


def test_concurrent_processes_never_create_duplicates(tmp_path):
    path = str(tmp_path / "crm.db")  # a cold start: the workers also race to create the schema
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(4)
    workers = [ctx.Process(target=_upsert_everyone, args=(path, n, start)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    crm = LocalCrm(LocalCrmSettings(path=path))
    contacts = crm.contacts()
    assert crm.counts()["contacts"] == 200
    assert len({c["email"] for c in contacts}) == 200
    # No lost update either: every worker's tag reached every contact.
    assert all(c["tags"] == [f"worker-{n}" for n in range(4)] for c in contacts)
    crm.close()


# -- CLI -----------------------------------------------------------------------------------------


@pytest.fixture
def filled(crm):
    ann = crm.upsert_contact(
        Contact(
            email="ann@example.com",
            first_name="Ann",
            phone="+4915112345678",
            tags={"vip"},
            lifecycle_stage="lead",
        )
    )
    bob = crm.upsert_contact(Contact(email="bob@example.com", first_name="Bob", company="Globex"))
    crm.upsert_deal(
        Deal(title="Order 1", amount="120.00", currency="EUR", status="won"), contact_id=ann, company_id=None
    )
    crm.add_activity(Activity(kind="meeting", occurred_at=WHEN, subject="Demo"), contact_id=bob, deal_id=None)
    return crm


def invoke(*args: str):
    return runner.invoke(crm_cmd.app, list(args))


def test_cli_contacts_table(filled):
    result = invoke("contacts", "--db", str(filled.path))
    assert result.exit_code == 0, result.output
    for text in (
        "Contacts (2)",
        "name",
        "stage",
        "Ann",
        "ann@example.com",
        "+4915112345678",
        "lead",
        "vip",
        "Globex",
    ):
        assert text in result.stdout


def test_cli_deals_and_activities_tables(filled):
    deals = invoke("deals", "--db", str(filled.path))
    assert deals.exit_code == 0, deals.output
    assert "Order 1" in deals.stdout and "120.00 EUR" in deals.stdout and "won" in deals.stdout
    activities = invoke("activities", "--db", str(filled.path))
    assert activities.exit_code == 0, activities.output
    for text in ("meeting", "2024-05-01T09:30:00Z", "Demo", "bob@example.com"):
        assert text in activities.stdout


def test_cli_json_prints_one_array(filled):
    result = invoke("contacts", "--json", "--db", str(filled.path), "--search", "ANN")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["email"] for r in rows] == ["ann@example.com"] and rows[0]["tags"] == ["vip"]
    deals = json.loads(invoke("deals", "--json", "--db", str(filled.path)).stdout)
    assert deals[0]["amount"] == "120.00" and deals[0]["contact"] == "ann@example.com"
    assert json.loads(invoke("activities", "--json", "--db", str(filled.path), "-s", "zzz").stdout) == []


def test_cli_search_with_no_match_says_so(filled):
    result = invoke("contacts", "--db", str(filled.path), "--search", "nobody")
    assert result.exit_code == 0 and "No contacts" in result.stdout


def test_cli_reads_the_configs_local_destination(filled, tmp_path, monkeypatch):
    registry = plugins.PluginRegistry("hub.destinations", {"local": LocalCrm}, {"local": "test"})
    monkeypatch.setattr(plugins, "destinations", lambda: registry)
    config = tmp_path / "crmhub.yaml"
    config.write_text(f"destinations:\n  crm:\n    type: local\n    path: {filled.path}\n")
    result = invoke("contacts", "--json", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 2
    monkeypatch.chdir(tmp_path)  # crmhub.yaml in the current directory is the default
    assert len(json.loads(invoke("deals", "--json").stdout)) == 1


def test_cli_missing_database_is_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("contacts")
    assert result.exit_code == 1
    assert "no local CRM database at .crmhub/crm.db" in result.stderr and result.stdout == ""
    assert not (tmp_path / ".crmhub").exists()
