"""A third-party plugin installed by pip appears in the hub with no change to the hub."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).parent / "plugins" / "crmhub-example-plugin"
CRMHUB = [sys.executable, "-m", "hub.cli"]


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=check, timeout=300)


@pytest.fixture(scope="module")
def installed_plugin():
    run(
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        str(PLUGIN),
    )
    yield
    run(sys.executable, "-m", "pip", "uninstall", "-y", "-q", "crmhub-example-plugin")


def test_plugin_is_listed_and_broken_plugin_is_reported(installed_plugin):
    listed = json.loads(run(*CRMHUB, "connectors", "list", "--json").stdout)
    by_name = {row["name"]: row for row in listed}
    assert by_name["example_forms"]["status"] == "ok"
    assert by_name["example_forms"]["events"] == ["submission"]
    assert by_name["example_broken"]["status"].startswith("broken: ModuleNotFoundError")
    assert by_name["shopify"]["status"] == "ok"  # built-ins still load beside it


def test_plugin_mapping_is_used_by_transform(installed_plugin, tmp_path):
    payload = tmp_path / "sub.json"
    payload.write_text(json.dumps({"id": "s9", "email": " A@B.IO ", "name": "Budi", "submitted_at": 0}))
    result = run(*CRMHUB, "transform", "--connector", "example_forms", "--event", "submission", str(payload))
    bundle = json.loads(result.stdout)
    assert bundle["contacts"][0] == {
        "email": "a@b.io",
        "first_name": "Budi",
        "tags": ["example-plugin"],
        "marketing_consent": "unknown",
    }
    assert bundle["activities"][0]["occurred_at"] == "1970-01-01T00:00:00Z"


def test_plugin_passes_the_conformance_suite(installed_plugin):
    result = run(
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",
        str(PLUGIN / "plugin_tests"),
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "failed" not in result.stdout
