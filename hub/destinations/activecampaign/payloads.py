"""Canonical values -> ActiveCampaign values (pure): field values, deal money, stages, note text."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from enum import Enum
from typing import Final

from hub.canonical import Activity, Contact, Deal, DealStatus, LifecycleStage, MarketingConsent
from hub.canonical.normalise import CURRENCY_EXPONENTS
from hub.errors import PermanentDeliveryError

__all__ = [
    "DEAL_STATUS",
    "INT32_MAX",
    "contact_value",
    "deal_value",
    "digits",
    "external_keys",
    "is_blank",
    "lifecycle_moves_forward",
    "note_text",
    "scalar_text",
]

#: Deal status codes (shared/reference/crm-apis.md §2 *Deals*).
DEAL_STATUS: Final[dict[DealStatus, int]] = {DealStatus.open: 0, DealStatus.won: 1, DealStatus.lost: 2}
#: `deal.value` is an int32 (docs: "format: int32").
INT32_MAX: Final = 2**31 - 1
_STAGE_ORDER: Final = (
    LifecycleStage.subscriber,
    LifecycleStage.lead,
    LifecycleStage.mql,
    LifecycleStage.sql,
    LifecycleStage.opportunity,
    LifecycleStage.customer,
)


def is_blank(value: object) -> bool:
    """ActiveCampaign's idea of empty: missing, "", "0000-00-00" dates, or null."""
    return value is None or (isinstance(value, str) and value.strip() in ("", "0000-00-00", "null"))


def digits(phone: str | None) -> str:
    return "".join(ch for ch in phone or "" if ch.isdigit())


def scalar_text(value: object) -> str | None:
    """A canonical scalar as the string ActiveCampaign stores (None: nothing to send)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        value = value.value
    text = format(value, "f") if isinstance(value, Decimal) else str(value)
    return text.strip() or None


def contact_value(contact: Contact, canonical: str, stages: Mapping[LifecycleStage, str]) -> str | None:
    """The value of canonical field `canonical` (`job_title`, `address.city`, `custom_fields.plan`)."""
    head, _, tail = canonical.partition(".")
    value: object
    if head in ("custom_fields", "external_ids") and tail:
        value = getattr(contact, head).get(tail)
    elif head in ("address", "lead_source") and tail:
        part = getattr(contact, head)
        value = getattr(part, tail, None) if part is not None else None
    elif head == "lifecycle_stage" and not tail:
        stage = contact.lifecycle_stage
        value = None if stage is None else stages.get(stage, stage.value)
    elif head == "marketing_consent" and not tail:
        # `unknown` never replaces opted_in / opted_out: it is not sent at all.
        value = None if contact.marketing_consent == MarketingConsent.unknown else contact.marketing_consent
    else:
        value = getattr(contact, canonical, None)
    return scalar_text(value)


def lifecycle_moves_forward(stored: str | None, new: str, stages: Mapping[LifecycleStage, str]) -> bool:
    """Whether writing `new` over the stored lifecycle value moves the contact forward.

    A stored value the mapping does not know (an admin's own stage) is kept; `other` never
    replaces a known stage and is replaced by any known one.
    """
    if stored == new:
        return False
    if is_blank(stored):
        return True
    labels = {stages.get(stage, stage.value): stage for stage in LifecycleStage}
    old_stage, new_stage = labels.get(str(stored)), labels.get(new)
    if old_stage is None or new_stage is None:
        return False
    if old_stage == LifecycleStage.other:
        return new_stage != LifecycleStage.other
    if new_stage == LifecycleStage.other:
        return False
    return _STAGE_ORDER.index(new_stage) > _STAGE_ORDER.index(old_stage)


def deal_value(deal: Deal) -> tuple[int, str] | None:
    """(`value` in minor units, lower-case `currency`), or None when the deal has no amount.

    ActiveCampaign wants "cents"; for zero-decimal currencies (JPY, KRW...) whether it means
    the amount itself or amount x 100 is not verified (crm-apis.md §6), so those are refused
    rather than risk writing deals 100x off.
    """
    if deal.amount is None:
        return None
    currency = (deal.currency or "").upper()
    exponent = CURRENCY_EXPONENTS.get(currency, 2)
    if exponent == 0:
        raise PermanentDeliveryError(
            f"ActiveCampaign deal in {currency}: a zero-decimal currency. ActiveCampaign stores deal values "
            "in cents and whether that means x100 for currencies without cents is not verified "
            "(shared/reference/crm-apis.md §6), so CRM Hub does not write them rather than risk a wrong "
            "amount. Convert the deal to another currency in the mapping, or test it on a sandbox first."
        )
    if deal.amount < 0:
        raise PermanentDeliveryError(
            f"ActiveCampaign deal amount {deal.amount} {currency}: deal values must be zero or more"
        )
    minor = int(deal.amount.scaleb(exponent).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if minor > INT32_MAX:
        raise PermanentDeliveryError(
            f"ActiveCampaign deal amount {deal.amount} {currency}: above the largest deal value "
            f"ActiveCampaign stores ({INT32_MAX} in minor units)"
        )
    return minor, currency.lower()


def external_keys(deal_or_activity: Deal | Activity) -> list[str]:
    """`<system>:<id>` for each external id, sorted; the first is the one written."""
    return [f"{system}:{value}" for system, value in sorted(deal_or_activity.external_ids.items())]


def note_text(activity: Activity) -> str:
    """The note body: what happened, when, and the source ids (for people reading the timeline)."""
    title = activity.kind.replace("_", " ").capitalize()
    lines = [f"{title}: {activity.subject}" if activity.subject else title]
    if activity.body:
        lines += ["", activity.body]
    details = [
        f"{key}: {text}"
        for key, value in sorted(activity.metadata.items())
        if (text := scalar_text(value)) is not None
    ]
    if details:
        lines += ["", *details]
    when = activity.occurred_at.strftime("%Y-%m-%d %H:%M UTC")
    source = ", ".join(external_keys(activity))
    lines += ["", f"{when}" + (f" · {source}" if source else "")]
    return "\n".join(lines)
