"""Hand-written equivalents of two shipped mappings, the baseline of the mapping benchmark.

- `shopify_order_to_bundle`: mappings/shopify/orders_create.yaml (`orders/create`)
- `typeform_response_to_bundle`: mappings/typeform/form_response.yaml (`form_response`)

Each is what a developer would write by hand for the same output: plain dict access,
every transform the YAML declares applied once with the same helpers
(`hub.canonical.normalise`, `split_full_name`), and the same canonical models built, so
the models' own validators run in both. Only the `Bundle` is the contract:
tests/test_benchmark_equivalence.py checks it equals the mapper's for every fixture.

Like the mapping engine, a blank value (None, "", whitespace, an empty list or dict) is
no value: the field is left unset. Bad input raises (ValueError / pydantic's
ValidationError) where the mapper raises `MappingError`; the benchmark only maps valid
fixtures.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hub.canonical import Activity, Address, Bundle, Company, Contact, Deal, LeadSource, LineItem
from hub.canonical.normalise import normalise_country, normalise_currency, normalise_phone, to_decimal
from hub.mapping.names import split_full_name

__all__ = ["shopify_order_to_bundle", "typeform_response_to_bundle"]

_NO_DICT: dict[str, Any] = {}


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | dict | tuple | set | frozenset):
        return not value
    return False


def _first(*values: Any) -> Any:
    for value in values:
        if not _blank(value):
            return value
    return None


def _compact(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if not _blank(value)}


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else _NO_DICT


def _text(value: Any) -> str:
    return "" if _blank(value) else str(value)


def _region(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        try:
            return normalise_country(value)
        except ValueError:
            return None
    return None


def _utc(value: Any) -> datetime:
    parsed = datetime.fromisoformat(str(value).strip())
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# --- Shopify orders/create -----------------------------------------------------------------

_SHOPIFY_CONSENT = {"subscribed": "opted_in", "unsubscribed": "opted_out", "true": "opted_in"}
_SHOPIFY_STATUS = {
    "paid": "won",
    "partially_refunded": "won",
    "refunded": "lost",
    "voided": "lost",
    "expired": "lost",
}


def shopify_order_to_bundle(data: Mapping[str, Any], event_id: str, mapping_version: str) -> Bundle:
    """A Shopify REST Order (the `orders/create` webhook body) -> Bundle."""
    customer = _obj(data.get("customer"))
    billing = _obj(data.get("billing_address"))
    shipping = _obj(data.get("shipping_address"))
    order_id = data.get("id")
    name = data.get("name")
    total_price = data.get("total_price")
    currency = data.get("currency")
    financial_status = data.get("financial_status")

    # --- contact
    email = _first(data.get("email"), data.get("contact_email"), customer.get("email"))
    if email is not None:
        email = str(email).strip().lower()
    # The order's / customer's phone must be a number; an address phone (free text) that
    # is not one is skipped.
    region = _region(billing.get("country_code"))
    phone = _first(data.get("phone"), customer.get("phone"))
    if phone is not None:
        phone = normalise_phone(str(phone), region)
    else:
        for free_text in (billing.get("phone"), shipping.get("phone")):
            if free_text is None:
                continue
            try:
                phone = normalise_phone(str(free_text), region)
                break
            except ValueError:
                continue
    first_name = _first(
        customer.get("first_name"),
        billing.get("first_name"),
        shipping.get("first_name"),
        customer.get("last_name"),
        billing.get("last_name"),
    )
    if first_name is not None:
        first_name = str(first_name).strip()
    last_name = None
    if any(not _blank(part.get("first_name")) for part in (customer, billing, shipping)):
        last_name = _first(customer.get("last_name"), billing.get("last_name"), shipping.get("last_name"))
        if last_name is not None:
            last_name = str(last_name).strip()
    country = _first(billing.get("country_code"), billing.get("country"))
    address_fields = _compact(
        line1=billing.get("address1"),
        line2=billing.get("address2"),
        city=billing.get("city"),
        region=_first(billing.get("province"), billing.get("province_code")),
        postal_code=billing.get("zip"),
        country=None if country is None else normalise_country(str(country)),
    )
    address = Address(**address_fields) if address_fields else None
    tags = customer.get("tags")
    if not _blank(tags):
        tags = [tag.strip() for tag in str(tags).split(",") if tag.strip()]
    consent = _first(
        _obj(customer.get("email_marketing_consent")).get("state"), data.get("buyer_accepts_marketing")
    )
    landing_site = data.get("landing_site")
    utm = parse_qs(urlsplit(str(landing_site).strip()).query) if not _blank(landing_site) else {}
    lead_source_fields = _compact(
        source=utm.get("utm_source", [None])[0],
        medium=utm.get("utm_medium", [None])[0],
        campaign=utm.get("utm_campaign", [None])[0],
        content=utm.get("utm_content", [None])[0],
        term=utm.get("utm_term", [None])[0],
        referrer=data.get("referring_site"),
    )
    contact = Contact(
        **_compact(
            email=email,
            phone=phone,
            first_name=first_name,
            last_name=last_name,
            company=billing.get("company"),
            address=address,
            tags=tags,
            marketing_consent=(
                "unknown" if consent is None else _SHOPIFY_CONSENT.get(str(consent).lower(), "unknown")
            ),
            lifecycle_stage="customer",
            lead_source=LeadSource(**lead_source_fields) if lead_source_fields else None,
            custom_fields=_compact(locale=data.get("customer_locale")),
            external_ids=_compact(shopify=customer.get("id")),
        )
    )

    # --- company: only when the buyer gave one
    companies: tuple[Company, ...] = ()
    if not _blank(billing.get("company")):
        companies = (Company(name=billing.get("company"), address=address),)

    # --- deal
    line_items = []
    for item in data.get("line_items") or ():
        if not isinstance(item, dict):
            continue
        quantity, price = item.get("quantity"), item.get("price")
        fields = _compact(
            sku=item.get("sku"),
            name=_first(item.get("name"), item.get("title")),
            quantity=None if quantity is None else to_decimal(quantity),
            unit_price=None if price is None else to_decimal(price),
        )
        if fields:
            line_items.append(LineItem(**fields))
    discount_codes = ", ".join(
        str(code["code"])
        for code in data.get("discount_codes") or ()
        if isinstance(code, dict) and not _blank(code.get("code"))
    )
    presentment = _obj(_obj(data.get("total_price_set")).get("presentment_money"))
    deal_fields = _compact(
        title=None if _blank(name) else f"Shopify order {name}",
        amount=None if total_price is None else to_decimal(total_price),
        currency=None if currency is None else normalise_currency(str(currency)),
        status=None
        if financial_status is None
        else _SHOPIFY_STATUS.get(str(financial_status).lower(), "open"),
        line_items=tuple(line_items),
        custom_fields=_compact(
            order_number=data.get("order_number"),
            financial_status=financial_status,
            fulfillment_status=data.get("fulfillment_status"),
            sales_channel=data.get("source_name"),
            order_tags=data.get("tags"),
            discount_codes=discount_codes,
            presentment_currency=data.get("presentment_currency"),
            presentment_total=presentment.get("amount"),
        ),
        external_ids=_compact(shopify=order_id),
    )

    # --- activity: the order on the contact's timeline
    occurred_at = _first(data.get("processed_at"), data.get("created_at"))
    subject = None
    if not (_blank(name) and _blank(total_price) and _blank(currency)):
        subject = f"Placed Shopify order {_text(name)}: {_text(total_price)} {_text(currency)}".strip()
    body = "\n".join(
        str(item["name"])
        for item in data.get("line_items") or ()
        if isinstance(item, dict) and not _blank(item.get("name"))
    )
    activity = Activity(
        **_compact(
            kind="order_placed",
            occurred_at=None if occurred_at is None else _utc(occurred_at),
            subject=subject,
            body=body,
            metadata=_compact(
                order_name=name,
                financial_status=financial_status,
                fulfillment_status=data.get("fulfillment_status"),
                sales_channel=data.get("source_name"),
            ),
            external_ids=_compact(shopify=order_id),
        )
    )
    return Bundle(
        connector="shopify",
        event_type="orders/create",
        event_id=event_id,
        mapping_version=mapping_version,
        contacts=(contact,),
        companies=companies,
        deals=(Deal(**deal_fields),) if deal_fields else (),
        activities=(activity,),
    )


# --- Typeform form_response ----------------------------------------------------------------

_TYPEFORM_CONSENT = {
    "true": "opted_in",
    "false": "opted_out",
    "opt_in": "opted_in",
    "opt_out": "opted_out",
    "yes": "opted_in",
    "no": "opted_out",
}


def _domain(url: Any) -> str | None:
    text = str(url).strip().lower()
    if "@" in text and "/" not in text:
        return text.rsplit("@", 1)[1] or None
    host = urlsplit(text if "//" in text else f"//{text}").hostname
    return host.removeprefix("www.") if host else None


def typeform_response_to_bundle(data: Mapping[str, Any], event_id: str, mapping_version: str) -> Bundle:
    """A Typeform `form_response` webhook body -> Bundle (answers by their question's ref)."""
    response = _obj(data.get("form_response"))
    hidden = _obj(response.get("hidden"))
    definition = _obj(response.get("definition"))
    token = response.get("token")
    form_title = definition.get("title")

    # The first answer of each question ref and of each answer type.
    by_ref: dict[str, Mapping[str, Any]] = {}
    by_type: dict[str, Mapping[str, Any]] = {}
    answers = response.get("answers")
    for answer in answers if isinstance(answers, list) else ():
        if not isinstance(answer, dict):
            continue
        question = _obj(answer.get("field")).get("ref")
        if question is not None:
            by_ref.setdefault(str(question), answer)
        if answer.get("type") is not None:
            by_type.setdefault(str(answer["type"]), answer)

    def ref(name: str) -> Mapping[str, Any]:
        return by_ref.get(name, _NO_DICT)

    email = _first(
        ref("email").get("email"), ref("email").get("text"), by_type.get("email", _NO_DICT).get("email")
    )
    phone = _first(
        ref("phone").get("phone_number"),
        ref("phone").get("text"),
        by_type.get("phone_number", _NO_DICT).get("phone_number"),
    )
    identified = email is not None or phone is not None

    # --- contact: needs an email or a phone
    contacts: tuple[Contact, ...] = ()
    if identified:
        if email is not None:
            email = str(email).strip().lower()
        if phone is not None:
            phone = normalise_phone(str(phone), _region(hidden.get("country")))
        # The first_name / last_name answers as typed; else one full-name answer, split.
        first_text, last_text = ref("first_name").get("text"), ref("last_name").get("text")
        split_first = split_last = None
        full_name = _first(ref("name").get("text"), ref("full_name").get("text"))
        if _blank(first_text) and _blank(last_text) and full_name is not None:
            split_first, split_last = split_full_name(str(full_name))
        first_name = _first(None if first_text is None else str(first_text).strip(), split_first)
        last_name = _first(None if last_text is None else str(last_text).strip(), split_last)
        country = _first(
            _obj(ref("country").get("choice")).get("label"), ref("country").get("text"), hidden.get("country")
        )
        address_fields = _compact(
            city=ref("city").get("text"),
            country=None if country is None else normalise_country(str(country)),
        )
        consent = _first(
            ref("marketing_consent").get("boolean"), _obj(ref("marketing_consent").get("choice")).get("ref")
        )
        lead_source_fields = _compact(
            source=_first(hidden.get("utm_source"), hidden.get("source")),
            medium=hidden.get("utm_medium"),
            campaign=hidden.get("utm_campaign"),
            content=hidden.get("utm_content"),
            term=hidden.get("utm_term"),
            referrer=hidden.get("referrer"),
        )
        contact_fields = _compact(
            email=email,
            phone=phone,
            first_name=first_name,
            last_name=last_name,
            company=ref("company").get("text"),
            job_title=_first(ref("job_title").get("text"), _obj(ref("job_title").get("choice")).get("label")),
            address=Address(**address_fields) if address_fields else None,
            tags=_obj(ref("interests").get("choices")).get("labels"),
            marketing_consent=None if consent is None else _TYPEFORM_CONSENT.get(str(consent).lower()),
            lifecycle_stage="lead",
            lead_source=LeadSource(**lead_source_fields) if lead_source_fields else None,
            custom_fields=_compact(typeform_score=_obj(response.get("calculated")).get("score")),
        )
        contacts = (Contact(**contact_fields),)

    # --- company: a company name or a website answer
    companies: tuple[Company, ...] = ()
    company_name, website = ref("company").get("text"), ref("website").get("url")
    if not (_blank(company_name) and _blank(website)):
        company_fields = _compact(name=company_name, domain=None if website is None else _domain(website))
        if company_fields:
            companies = (Company(**company_fields),)

    # --- deal: a Payment answer
    deals: tuple[Deal, ...] = ()
    payment = _obj(by_type.get("payment", _NO_DICT).get("payment"))
    if not _blank(payment.get("amount")):
        payment_field = next(
            (f for f in definition.get("fields") or () if isinstance(f, dict) and f.get("type") == "payment"),
            _NO_DICT,
        )
        currency = _first(hidden.get("currency"), _obj(payment_field.get("properties")).get("currency"))
        success = payment.get("success")
        paid = success is True or success == "true"  # close_date: `equals: true`
        submitted_at = response.get("submitted_at")
        deal_fields = _compact(
            title=None if _blank(form_title) else f"Typeform payment: {form_title}",
            amount=to_decimal(payment["amount"]),
            currency=None if currency is None else normalise_currency(str(currency)),
            status=None if success is None else ("won" if str(success).lower() == "true" else "open"),
            close_date=_utc(submitted_at).date() if paid and submitted_at is not None else None,
            external_ids=_compact(typeform=token),
        )
        deals = (Deal(**deal_fields),)

    # --- activity: on the identified contact's timeline
    activities: tuple[Activity, ...] = ()
    if identified:
        submitted_at = response.get("submitted_at")
        activity_fields = _compact(
            kind="form_submitted",
            occurred_at=None if submitted_at is None else _utc(submitted_at),
            subject=None if _blank(form_title) else f'Submitted Typeform "{form_title}"',
            body=ref("message").get("text"),
            external_ids=_compact(typeform=token),
            metadata=_compact(
                form_id=response.get("form_id"),
                landed_at=response.get("landed_at"),
                ending=_obj(response.get("ending")).get("ref"),
            ),
        )
        activities = (Activity(**activity_fields),)

    return Bundle(
        connector="typeform",
        event_type="form_response",
        event_id=event_id,
        mapping_version=mapping_version,
        contacts=contacts,
        companies=companies,
        deals=deals,
        activities=activities,
    )
