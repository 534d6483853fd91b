"""`crmhub.yaml`: load once, expand `${ENV}` references, validate everything, report all errors.

This is the only module that reads environment variables (`REDIS_URL`, `CRMHUB_*` and the
`${VAR}` references in the config file). Secret values are never put in error messages.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hub import plugins
from hub.connector.base import Connector, ConnectorSettings
from hub.errors import ConfigError, Issue, MappingError, PluginError
from hub.mapping import MappingSet
from hub.mapping.yamlsource import LineDict, YamlSyntaxError, parse_yaml

__all__ = [
    "ConnectorInstance",
    "DestinationInstance",
    "HubConfig",
    "HubSettings",
    "load_config",
    "load_config_text",
    "redis_url",
]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_TOP_KEYS = ("hub", "connectors", "destinations", "flows")
_INSTANCE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_CONNECTOR_META = ("type", "mappings", "default_region")


class HubSettings(BaseModel):
    """The `hub:` section: process-wide settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: str = Field(".crmhub", description="Embedded server data, local CRM database.")
    default_region: str | None = Field(
        None, description="ISO country used for national phone numbers with no other region."
    )
    max_body_bytes: int = Field(1_048_576, gt=0, description="Largest webhook body accepted.")
    retention_days: float = Field(14, gt=0, description="How long the event log keeps events.")
    max_age_hours: float = Field(72, gt=0, description="Dead-letter a delivery older than this.")
    max_queue_depth: int = Field(100_000, gt=0, description="Above it, ingress answers 503.")
    durability: Literal["everysec", "strict"] = Field(
        "everysec",
        description="everysec: acknowledge once stored (AOF fsync within ~1 s); strict: wait for "
        "the AOF fsync (WAITAOF) before acknowledging.",
    )
    admin_token_sha256: str | None = Field(
        None, description="SHA-256 (hex) of the admin API bearer token; unset = admin API off."
    )
    allow_insecure_urls: bool = Field(
        False, description="Allow http:// API URLs on loopback (tests and demos only)."
    )


@dataclass(frozen=True)
class ConnectorInstance:
    """One configured connector: its id (the webhook path), class, settings and mappings."""

    id: str
    type_name: str
    cls: type[Connector[Any]]
    settings: ConnectorSettings
    mappings: MappingSet
    default_region: str | None = None

    def build(self) -> Connector[Any]:
        return self.cls(self.settings, instance_id=self.id)


@dataclass(frozen=True)
class DestinationInstance:
    id: str
    type_name: str
    cls: type[Any]
    settings: Any

    def build(self) -> Any:
        return self.cls(self.settings, instance_id=self.id)


@dataclass(frozen=True)
class HubConfig:
    """The whole validated configuration."""

    file: str
    hub: HubSettings = field(default_factory=HubSettings)
    connectors: Mapping[str, ConnectorInstance] = field(default_factory=dict)
    destinations: Mapping[str, DestinationInstance] = field(default_factory=dict)
    flows: tuple[Any, ...] = ()

    @property
    def data_dir(self) -> Path:
        base = Path(self.file).parent if self.file and self.file != "<defaults>" else Path.cwd()
        return (base / self.hub.data_dir).resolve()


def redis_url() -> str | None:
    """`REDIS_URL` if set: use that server instead of starting an embedded one."""
    return os.environ.get("REDIS_URL") or None


def _expand(value: Any, *, file: str, line: int | None, key: str, issues: list[Issue] | None) -> Any:
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            found = os.environ.get(name)
            if found is None:
                if default is not None:
                    return default
                if issues is None:  # reading the config for its data dir only
                    return ""
                issues.append(
                    Issue(f"environment variable {name} is not set: export it", file=file, line=line, key=key)
                )
                return ""
            return found

        return _ENV_REF.sub(substitute, value)
    if isinstance(value, LineDict):
        out = LineDict()
        out.line, out.key_lines = value.line, dict(value.key_lines)
        for k, v in value.items():
            out[k] = _expand(
                v, file=file, line=value.line_of(k), key=f"{key}.{k}" if key else str(k), issues=issues
            )
        return out
    if isinstance(value, list):
        return [_expand(v, file=file, line=line, key=key, issues=issues) for v in value]
    return value


_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def url_issues(settings: Any, *, allow_insecure: bool, file: str, key: str, section: Any) -> list[Issue]:
    """Every `*url` setting must be https (http only on loopback, with allow_insecure_urls)."""
    from urllib.parse import urlsplit

    issues = []
    for name in type(settings).model_fields:
        if not name.endswith("url"):
            continue
        value = getattr(settings, name)
        if not isinstance(value, str) or not value:
            continue
        parts = urlsplit(value)
        line = section.line_of(name) if isinstance(section, LineDict) else None
        if parts.scheme == "https" and parts.hostname:
            continue
        if parts.scheme == "http" and parts.hostname in _LOOPBACK and allow_insecure:
            continue
        hint = (
            "http:// is only allowed on loopback with hub.allow_insecure_urls: true (tests, demos)"
            if parts.scheme == "http"
            else "give a full https:// URL"
        )
        issues.append(
            Issue(f"outbound URLs must be https: {hint}", file=file, line=line, key=f"{key}.{name}")
        )
    return issues


def validation_issues(
    exc: ValidationError, *, file: str, section: LineDict | None, prefix: str
) -> list[Issue]:
    """Turn a pydantic error into issues with lines; never include the input value."""
    issues = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = [str(p) for p in error["loc"]]
        line = section.line_of(loc[0]) if section is not None and loc else None
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden" and section is not None:
            message = "unknown setting"
        issues.append(Issue(message, file=file, line=line, key=".".join([prefix, *loc])))
    return issues


def _load_connector(
    instance_id: str, raw: Any, *, file: str, line: int | None, hub: HubSettings, issues: list[Issue]
) -> ConnectorInstance | None:
    key = f"connectors.{instance_id}"
    if not _INSTANCE_ID.match(instance_id):
        issues.append(
            Issue(
                "an instance id is lower-case letters, digits, - and _ (it is the webhook path /hooks/<id>)",
                file=file,
                line=line,
                key=key,
            )
        )
        return None
    if not isinstance(raw, dict) or "type" not in raw:
        issues.append(
            Issue("a connector needs `type:` (see `crmhub connectors list`)", file=file, line=line, key=key)
        )
        return None
    registry = plugins.connectors()
    type_name = str(raw["type"])
    try:
        cls = registry.get(type_name)
    except PluginError as exc:
        close = difflib.get_close_matches(type_name, list(registry.plugins), n=1)
        issues.append(
            Issue(
                str(exc),
                file=file,
                line=raw.line_of("type") if isinstance(raw, LineDict) else line,
                key=f"{key}.type",
                suggestion=close[0] if close else None,
            )
        )
        return None
    values = {k: v for k, v in raw.items() if k not in _CONNECTOR_META}
    try:
        settings = cls.settings_model.model_validate(values)
    except ValidationError as exc:
        issues.extend(
            validation_issues(exc, file=file, section=raw if isinstance(raw, LineDict) else None, prefix=key)
        )
        settings = None
    if settings is not None:
        url_problems = url_issues(
            settings, allow_insecure=hub.allow_insecure_urls, file=file, key=key, section=raw
        )
        if url_problems:
            issues.extend(url_problems)
            settings = None
    region = raw.get("default_region") or hub.default_region
    try:
        mappings = MappingSet.load(
            cls.mapping_dir(), overrides=raw.get("mappings") or {}, overrides_file=file, default_region=region
        )
    except MappingError as exc:
        issues.extend(exc.issues)
        return None
    if settings is None:
        return None
    return ConnectorInstance(instance_id, type_name, cls, settings, mappings, region)


def _load_destination(
    instance_id: str, raw: Any, *, file: str, line: int | None, issues: list[Issue], hub: HubSettings
) -> DestinationInstance | None:
    key = f"destinations.{instance_id}"
    if not isinstance(raw, dict) or "type" not in raw:
        issues.append(Issue("a destination needs `type:` (e.g. local)", file=file, line=line, key=key))
        return None
    registry = plugins.destinations()
    type_name = str(raw["type"])
    try:
        cls = registry.get(type_name)
    except PluginError as exc:
        close = difflib.get_close_matches(type_name, list(registry.plugins), n=1)
        issues.append(
            Issue(str(exc), file=file, line=line, key=f"{key}.type", suggestion=close[0] if close else None)
        )
        return None
    values = {k: v for k, v in raw.items() if k != "type"}
    try:
        settings = cls.settings_model.model_validate(values)
    except ValidationError as exc:
        issues.extend(
            validation_issues(exc, file=file, section=raw if isinstance(raw, LineDict) else None, prefix=key)
        )
        return None
    url_problems = url_issues(
        settings, allow_insecure=hub.allow_insecure_urls, file=file, key=key, section=raw
    )
    if url_problems:
        issues.extend(url_problems)
        return None
    return DestinationInstance(instance_id, type_name, cls, settings)


def load_config_text(text: str, *, file: str = "crmhub.yaml", require_env: bool = True) -> HubConfig:
    """Validate a whole config; `ConfigError` listing every problem with file, line and key."""
    try:
        raw = parse_yaml(text, source=file)
    except YamlSyntaxError as exc:
        raise ConfigError([exc.issue]) from None
    if raw is None:
        raw = LineDict()
    if not isinstance(raw, LineDict):
        raise ConfigError(
            [Issue("the config is a YAML map with hub, connectors, destinations, flows", file=file)]
        )
    issues: list[Issue] = []
    raw = _expand(raw, file=file, line=None, key="", issues=issues if require_env else None)
    for key in raw:
        if key not in _TOP_KEYS:
            close = difflib.get_close_matches(str(key), _TOP_KEYS, n=1)
            issues.append(
                Issue(
                    f"unknown section {key!r}",
                    file=file,
                    line=raw.line_of(key),
                    key=str(key),
                    suggestion=close[0] if close else None,
                )
            )
    hub_raw = raw.get("hub") or {}
    try:
        hub = HubSettings.model_validate(hub_raw)
    except ValidationError as exc:
        issues.extend(
            validation_issues(
                exc, file=file, section=hub_raw if isinstance(hub_raw, LineDict) else None, prefix="hub"
            )
        )
        hub = HubSettings()
    connectors: dict[str, ConnectorInstance] = {}
    section = raw.get("connectors") or LineDict()
    for instance_id, item in section.items():
        loaded = _load_connector(
            str(instance_id), item, file=file, line=section.line_of(instance_id), hub=hub, issues=issues
        )
        if loaded is not None:
            connectors[loaded.id] = loaded
    destinations: dict[str, DestinationInstance] = {}
    section = raw.get("destinations") or LineDict()
    for instance_id, item in section.items():
        dest = _load_destination(
            str(instance_id), item, file=file, line=section.line_of(instance_id), issues=issues, hub=hub
        )
        if dest is not None:
            destinations[dest.id] = dest
    flows: tuple[Any, ...] = ()
    if raw.get("flows"):
        from hub.flows import load_flows

        flows = load_flows(
            raw["flows"],
            file=file,
            connectors=connectors,
            destinations=destinations,
            issues=issues,
            line=raw.line_of("flows"),
        )
    if issues:
        raise ConfigError(issues)
    return HubConfig(file=file, hub=hub, connectors=connectors, destinations=destinations, flows=flows)


def load_config(path: Path, *, require_env: bool = True) -> HubConfig:
    """Read and validate a config file (`require_env=False`: unset `${VARS}` become empty,
    for commands that only read the event log or the local CRM)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Issue(f"cannot read config: {exc.strerror}", file=str(path))]) from None
    return load_config_text(text, file=str(path), require_env=require_env)


#: Environment variable naming the config file for processes started by `crmhub run`.
CONFIG_ENV = "CRMHUB_CONFIG"


def config_path_from_env(default: str = "crmhub.yaml") -> Path:
    """The config file a child process should load (`CRMHUB_CONFIG`)."""
    return Path(os.environ.get(CONFIG_ENV) or default)
