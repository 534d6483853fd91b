"""What the adapter needs to exist in the HubSpot account: `check()` and `ensure_properties()`.

Read through the metadata endpoints (crm-apis.md §1.5 properties, §1.2 pipelines): every
mapped property, the lifecycle stage options, the unique external-id property, the tags
property, the deal pipelines and stages.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from hub.destinations.hubspot.api import HubSpotApi, Record
from hub.destinations.hubspot.settings import HubSpotSettings
from hub.errors import AuthDeliveryError, DeliveryError, PermanentDeliveryError

__all__ = ["GROUP", "check", "ensure_properties"]

#: The property group the hub's own properties are created in.
GROUP: Final = "crmhub"
_KINDS: Final = ("contacts", "companies", "deals", "notes")
_SETUP: Final = (
    "one-time setup: run `HubSpotDestination.ensure_properties()` (needs crm.schemas.*.write), or in "
    "HubSpot > Settings > Properties create it"
)


def _external_id_needs(settings: HubSpotSettings) -> dict[str, bool]:
    """Object type -> whether its external-id property must have unique values."""
    needs: dict[str, bool] = {kind: True for kind in _KINDS if kind in settings.external_id_objects}
    if "notes" in needs:
        needs["notes"] = settings.note_dedupe == "upsert"
    return needs


def _mapped(kind: str, mapping: dict[str, str], props: dict[str, Record]) -> Iterable[str]:
    for canonical, prop in sorted(mapping.items()):
        if prop not in props:
            yield (
                f"HubSpot {kind} property {prop!r} (mapped from {canonical!r}) does not exist: create it "
                f"or change the mapping"
            )


def _external_id(kind: str, name: str, unique: bool, props: dict[str, Record]) -> Iterable[str]:
    found = props.get(name)
    why = {
        "deals": "deals are upserted by it, so a retried delivery never creates a second deal",
        "companies": "new companies are created through it, so a retry never creates a second one",
        "contacts": "contacts without an email are found by it",
        "notes": "a retried note is found by it instead of being added twice",
    }[kind]
    text = "single-line text" + (" with 'Require unique values' (hasUniqueValue)" if unique else "")
    if found is None:
        yield f"HubSpot {kind} property {name!r} is missing ({why}); {_SETUP} as {text}"
    elif unique and not found.get("hasUniqueValue"):
        yield (
            f"HubSpot {kind} property {name!r} exists without unique values ({why}); unique values can't be "
            f"turned on later: create another property with hasUniqueValue and set external_id_property"
        )


def _tags(name: str, props: dict[str, Record]) -> Iterable[str]:
    found = props.get(name)
    if found is None:
        yield (
            f"HubSpot contact property {name!r} (tags_property) is missing; {_SETUP} as multiple "
            "checkboxes, or set tags_property: null"
        )
    elif found.get("type") not in ("enumeration", "string"):
        yield (
            f"HubSpot contact property {name!r} (tags_property) is {found.get('type')}: "
            "it must be multiple checkboxes or text"
        )


def _stages(settings: HubSpotSettings, pipelines: list[Record]) -> Iterable[str]:
    by_id = {str(p.get("id")): p for p in pipelines}
    used = {settings.default_pipeline, *settings.deal_pipelines.values()}
    for canonical, pipeline in [
        ("default_pipeline", settings.default_pipeline),
        *sorted(settings.deal_pipelines.items()),
    ]:
        if pipeline not in by_id:
            yield (
                f"HubSpot deal pipeline {pipeline!r} (from {canonical!r}) does not exist; pipelines: "
                f"{', '.join(sorted(by_id)) or 'none'}"
            )
    stages = {str(s.get("id")) for p in used if p in by_id for s in by_id[p].get("stages") or ()}
    wanted = [
        ("default_deal_stage", settings.default_deal_stage),
        *[(f"deal_stages.{k}", v) for k, v in sorted(settings.deal_stages.items())],
        *[(f"deal_status_stages.{k}", v) for k, v in sorted(settings.deal_status_stages.items())],
    ]
    for where, stage in wanted:
        if stage not in stages:
            pipelines_used = ", ".join(sorted(used))
            yield f"HubSpot deal stage {stage!r} ({where}) is not a stage of pipeline(s) {pipelines_used}"


def check(api: HubSpotApi, settings: HubSpotSettings) -> list[str]:
    """Every problem that would stop delivery, in words an admin can act on."""
    try:
        props = {kind: {str(p.get("name")): p for p in api.list_properties(kind)} for kind in _KINDS}
        pipelines = api.pipelines("deals")
    except AuthDeliveryError as exc:
        return [f"HubSpot refused the access token or its scopes: {exc}"]
    except DeliveryError as exc:
        return [f"cannot read HubSpot's properties and pipelines at {settings.base_url}: {exc}"]
    problems: list[str] = []
    problems += _mapped("contact", settings.properties, props["contacts"])
    problems += _mapped("company", settings.company_properties, props["companies"])
    problems += _mapped("deal", settings.deal_properties, props["deals"])
    stage_prop = props["contacts"].get("lifecyclestage") or {}
    options = {str(o.get("value")) for o in stage_prop.get("options") or ()}
    for canonical, value in sorted(settings.lifecycle_stages.items()):
        if value not in options:
            problems.append(
                f"lifecycle stage {value!r} (from {canonical!r}) is not a lifecyclestage option in HubSpot"
            )
    for kind, unique in _external_id_needs(settings).items():
        problems += _external_id(kind, settings.external_id_property, unique, props[kind])
    if settings.tags_property:
        problems += _tags(settings.tags_property, props["contacts"])
    problems += _stages(settings, pipelines)
    return problems


def _definition(name: str, label: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "label": label, "groupName": GROUP, **extra}


def ensure_properties(api: HubSpotApi, settings: HubSpotSettings) -> list[str]:
    """Create the external-id properties (and the tags property) that are missing; returns
    what was created. Unique values can only be set at creation (crm-apis.md §1.5)."""
    created: list[str] = []
    wanted: list[tuple[str, dict[str, Any]]] = [
        (
            kind,
            _definition(
                settings.external_id_property,
                "CRM Hub external id",
                type="string",
                fieldType="text",
                hasUniqueValue=unique,
                description="The source system's id, written by CRM Hub to avoid duplicates.",
            ),
        )
        for kind, unique in _external_id_needs(settings).items()
    ]
    if settings.tags_property:
        wanted.append(
            (
                "contacts",
                _definition(
                    settings.tags_property,
                    "CRM Hub tags",
                    type="enumeration",
                    fieldType="checkbox",
                    options=[],
                    description="Tags added by CRM Hub (a union; never removed).",
                ),
            )
        )
    groups_made: set[str] = set()
    for kind, definition in wanted:
        if api.get_property(kind, definition["name"]) is not None:
            continue
        if kind not in groups_made:
            api.create_group(kind, GROUP, "CRM Hub")
            groups_made.add(kind)
        if kind == "notes" and not definition["hasUniqueValue"]:
            # Search mode works without unique values, but with them a retry that search
            # misses (it lags writes) is still refused with the existing id: try it first.
            try:
                if api.create_property(kind, {**definition, "hasUniqueValue": True}):
                    created.append(f"{kind} property {definition['name']} (unique)")
                continue
            except PermanentDeliveryError:
                pass  # unique values refused on notes (NV): a plain property
        if api.create_property(kind, definition):
            created.append(f"{kind} property {definition['name']}")
    return created
