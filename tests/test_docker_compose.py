"""docker-compose.yml and Dockerfile: structure checked statically (no Docker engine is needed)."""

import shlex
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SUBCOMMANDS = {"serve", "worker", "scheduler"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def argv(service: dict) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def hub_services(services: dict) -> dict:
    return {name: s for name, s in services.items() if argv(s)[:1] == ["crmhub"]}


def environment(service: dict) -> dict:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return env


def depends_on(service: dict) -> dict:
    deps = service.get("depends_on", {})
    return {name: {} for name in deps} if isinstance(deps, list) else deps


def redis_services(services: dict) -> set[str]:
    return {name for name, s in services.items() if str(s.get("image", "")).startswith(("valkey/", "redis"))}


def test_the_roles_are_all_there(services):
    subcommands = {argv(s)[1] for s in hub_services(services).values()}
    assert subcommands == SUBCOMMANDS
    assert redis_services(services) == {"redis"}


def test_every_non_redis_service_runs_a_crmhub_subcommand_with_the_mounted_config(services):
    for name, service in services.items():
        if name in redis_services(services):
            continue
        args = argv(service)
        assert args[0] == "crmhub", name
        assert args[1] in SUBCOMMANDS, name
        config = args[args.index("--config") + 1]
        mounts = [str(v).split(":")[1] for v in service.get("volumes", [])]
        assert config in mounts, f"{name}: {config} is not mounted"


def test_every_hub_service_points_redis_url_at_the_redis_service(services):
    for name, service in hub_services(services).items():
        url = urlparse(environment(service)["REDIS_URL"])
        assert url.scheme == "redis", name
        assert url.hostname in redis_services(services), name
        assert url.port == 6379, name
        assert depends_on(service)["redis"].get("condition") == "service_healthy", name


def test_redis_keeps_an_aof_flushed_every_second_on_a_volume(compose, services):
    redis = services["redis"]
    args = argv(redis)
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--appendfsync") + 1] == "everysec"
    volume, target = redis["volumes"][0].split(":")[:2]
    assert target == "/data"
    assert volume in compose["volumes"]
    assert redis["healthcheck"]["test"][-1] == "ping"
    assert "ports" not in redis  # only the hub's containers reach it


def test_at_least_two_workers(services):
    workers = [s for s in hub_services(services).values() if argv(s)[1] == "worker"]
    assert sum(s.get("deploy", {}).get("replicas", 1) for s in workers) >= 2


def test_ingress_publishes_the_port_it_serves_on(services):
    (ingress,) = [s for s in hub_services(services).values() if argv(s)[1] == "serve"]
    args = argv(ingress)
    assert args[args.index("--host") + 1] == "0.0.0.0"
    port = args[args.index("--port") + 1]
    assert f"{port}:{port}" in ingress["ports"]


def test_depends_on_names_existing_services(services):
    for name, service in services.items():
        for dependency in depends_on(service):
            assert dependency in services, f"{name} depends on unknown {dependency}"


def test_hub_services_build_the_root_dockerfile(services):
    for name, service in hub_services(services).items():
        build = service["build"]
        context = build if isinstance(build, str) else build["context"]
        assert context == ".", name
        assert not isinstance(build, dict) or build.get("dockerfile", "Dockerfile") == "Dockerfile"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert "pip install ." in dockerfile


def test_every_command_is_a_real_cli_command_with_real_options(services):
    from typer.testing import CliRunner

    from hub.cli import app

    for name, service in hub_services(services).items():
        args = argv(service)[1:]
        result = CliRunner().invoke(app, [args[0], "--help"])
        assert result.exit_code == 0, f"{name}: crmhub {args[0]} is not a command"
        for option in (a for a in args[1:] if a.startswith("--")):
            assert option in result.stdout, f"{name}: crmhub {args[0]} has no {option}"
