"""The CLI contract: exit codes, stdout/stderr, errors with file and line, no secrets echoed."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), env=env)


def test_help_lists_the_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("transform", "connectors", "mapping", "check", "schema"):
        assert command in result.stdout


def test_transform_prints_the_bundle_json(tmp_path):
    order = next((ROOT / "connectors/shopify/fixtures/orders_create").glob("*.json"))
    result = invoke("transform", "--connector", "shopify", "--event", "orders/create", str(order))
    assert result.exit_code == 0, result.output
    bundle = json.loads(result.stdout)
    assert bundle["connector"] == "shopify" and bundle["event_type"] == "orders/create"
    assert bundle["deals"][0]["currency"].isupper()
    assert isinstance(bundle["deals"][0]["amount"], str)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--connector", "nope", "--event", "x"], "unknown hub.connectors plugin 'nope'"),
        (["--connector", "shopify", "--event", "orders/nope"], "has no mapping for event 'orders/nope'"),
    ],
)
def test_transform_errors_go_to_stderr_with_exit_1(tmp_path, args, message):
    payload = tmp_path / "p.json"
    payload.write_text("{}")
    result = invoke("transform", *args, str(payload))
    assert result.exit_code == 1
    assert message in result.stderr and result.stdout == ""


def test_transform_reports_unmappable_payload(tmp_path):
    payload = tmp_path / "bad.json"
    payload.write_text(json.dumps({"id": 1, "email": "nope", "total_price": "x", "currency": "EUR"}))
    result = invoke("transform", "--connector", "shopify", "--event", "orders/create", str(payload))
    assert result.exit_code == 1
    assert (
        "bad.json" in result.stderr and "contact.email" in result.stderr
    ) or "deal.amount" in result.stderr


def test_transform_rejects_non_json(tmp_path):
    payload = tmp_path / "bad.json"
    payload.write_text("not json")
    result = invoke("transform", "--connector", "shopify", "--event", "orders/create", str(payload))
    assert result.exit_code == 1 and "is not valid JSON" in result.stderr


def test_mapping_check_shipped_specs_pass():
    result = invoke("mapping", "check", str(ROOT / "mappings"))
    assert result.exit_code == 0, result.output
    assert "mapping spec(s) OK" in result.stdout


def test_mapping_check_names_file_line_and_key(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("event: x\nfields:\n  contact.email: email\n  contact.phon: phone\n")
    result = invoke("mapping", "check", str(spec))
    assert result.exit_code == 1
    assert f"{spec}:4: contact.phon: unknown target" in result.stderr
    assert "did you mean 'contact.phone'" in result.stderr


def test_mapping_test_maps_a_file(tmp_path):
    spec = tmp_path / "m.yaml"
    spec.write_text("event: x\nfields:\n  contact.email: {path: e, transforms: [trim]}\n")
    data = tmp_path / "d.json"
    data.write_text('{"e": " X@Y.IO "}')
    result = invoke("mapping", "test", str(spec), str(data))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["contacts"][0]["email"] == "x@y.io"


CONFIG = """\
hub: {default_region: GB}
connectors:
  shop:
    type: shopify
    secret: ${SHOP_SECRET}
    mappings:
      orders/create:
        fields:
          contact.tags+: {value: [vip]}
  forms:
    type: typefrom
    secret: plain
"""


def test_check_reports_every_problem_with_lines_and_never_the_secret(tmp_path):
    config = tmp_path / "crmhub.yaml"
    config.write_text(CONFIG)
    result = invoke("check", "--config", str(config), env={"SHOP_SECRET": ""})
    assert result.exit_code == 1
    assert (
        f"{config}:11: connectors.forms.type" in result.stderr and "did you mean 'typeform'" in result.stderr
    )
    result = invoke("check", "--config", str(config), env={"SHOP_SECRET": "s3cr3t-value"})
    assert "s3cr3t-value" not in result.output


def test_check_passes_a_valid_config(tmp_path):
    config = tmp_path / "crmhub.yaml"
    config.write_text(CONFIG.replace("typefrom", "typeform"))
    result = invoke("check", "--config", str(config), env={"SHOP_SECRET": "s3cr3t-value"})
    assert result.exit_code == 0, result.output
    assert "OK (2 connector(s)" in result.stdout


def test_missing_env_var_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("SHOP_SECRET", raising=False)
    config = tmp_path / "crmhub.yaml"
    config.write_text(CONFIG.replace("typefrom", "typeform"))
    result = invoke("check", "--config", str(config))
    assert result.exit_code == 1
    assert f"{config}:5: connectors.shop.secret: environment variable SHOP_SECRET is not set" in result.stderr


def test_schema_is_json_schema_with_connector_settings():
    result = invoke("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["title"] == "crmhub.yaml"
    text = json.dumps(schema)
    assert "connector_shopify" in text and "connector_quickbooks" in text


def test_outbound_urls_must_be_https_except_loopback_when_allowed(tmp_path):
    config = tmp_path / "crmhub.yaml"
    base = (
        "connectors:\n  leads:\n    type: facebook_lead_ads\n    secret: s\n    verify_token: v\n"
        "    page_access_token: p\n    api_base_url: {url}\n"
    )
    config.write_text(base.format(url="http://graph.example.com"))
    result = invoke("check", "--config", str(config))
    assert result.exit_code == 1
    assert f"{config}:7: connectors.leads.api_base_url: outbound URLs must be https" in result.stderr
    config.write_text(base.format(url="http://127.0.0.1:9999"))
    assert invoke("check", "--config", str(config)).exit_code == 1
    config.write_text("hub:\n  allow_insecure_urls: true\n" + base.format(url="http://127.0.0.1:9999"))
    assert invoke("check", "--config", str(config)).exit_code == 0
    config.write_text(base.format(url="https://graph.example.com"))
    assert invoke("check", "--config", str(config)).exit_code == 0
