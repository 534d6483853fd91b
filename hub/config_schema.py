"""The JSON Schema of `crmhub.yaml`, built from the installed plugins' settings models."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model

from hub import plugins
from hub.flows import ACTIONS
from hub.settings import HubSettings

__all__ = ["config_json_schema"]


class _FlowCondition(BaseModel):
    field: str = Field(description="A canonical path, e.g. deal.amount")
    op: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "contains", "exists", "blank"]
    value: Any = None


class _Flow(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str | None = None
    when: str | list[str] = Field(description="<connector id>.<event type>, * wildcards")
    if_: _FlowCondition | None = Field(None, alias="if")
    do: list[Literal[ACTIONS]]  # type: ignore[valid-type]
    to: str = Field(description="A destination id")
    tags: list[str] = []
    pipeline: str | None = None
    stage: str | None = None


def _instance_model(kind: str, name: str, settings: type[BaseModel], extra: dict[str, Any]) -> Any:
    fields: dict[str, Any] = {"type": (Literal[name], Field(description=f"{kind} type")), **extra}
    return create_model(f"{kind}_{name}", __base__=settings, **fields)


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema for editors (`crmhub schema > crmhub.schema.json`)."""
    connector_models = [
        _instance_model(
            "connector",
            name,
            cls.settings_model,
            {
                "mappings": (dict[str, Any] | None, Field(None, description="Mapping overrides by event")),
                "default_region": (str | None, Field(None, description="Region for national phones")),
            },
        )
        for name, cls in sorted(plugins.connectors().plugins.items())
    ]
    destination_models = [
        _instance_model("destination", name, cls.settings_model, {})
        for name, cls in sorted(plugins.destinations().plugins.items())
    ]

    def union(models: list[Any]) -> Any:
        if not models:
            return dict[str, Any]
        if len(models) == 1:
            return models[0]
        return Annotated[Union[tuple(models)], Field(discriminator="type")]  # noqa: UP007

    fields: dict[str, Any] = {
        "hub": (HubSettings, HubSettings()),
        "connectors": (dict[str, union(connector_models)], {}),  # type: ignore[misc]
        "destinations": (dict[str, union(destination_models)], {}),  # type: ignore[misc]
        "flows": (list[_Flow], []),
    }
    model = create_model("CrmHubConfig", __config__=ConfigDict(extra="forbid"), **fields)
    schema: dict[str, Any] = model.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "crmhub.yaml"
    return schema
