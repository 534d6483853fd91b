"""Pure normalisers for the canonical model's value types: email, phone, country, currency."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

import phonenumbers
import pycountry
from email_validator import EmailNotValidError, validate_email

__all__ = [
    "CURRENCY_EXPONENTS",
    "normalise_country",
    "normalise_currency",
    "normalise_email",
    "normalise_phone",
    "to_utc",
]

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(,\d{3})+(\.\d+)?$")

#: ISO 4217 minor-unit exponents that are not 2 (zero- and three-decimal currencies).
CURRENCY_EXPONENTS: dict[str, int] = {
    **dict.fromkeys("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
}

_COUNTRY_ALIASES = {
    "UK": "GB",
    "GREAT BRITAIN": "GB",
    "ENGLAND": "GB",
    "SCOTLAND": "GB",
    "WALES": "GB",
    "USA": "US",
    "U.S.A.": "US",
    "U.S.": "US",
    "UNITED STATES OF AMERICA": "US",
    "SOUTH KOREA": "KR",
    "KOREA": "KR",
    "RUSSIA": "RU",
    "VIETNAM": "VN",
}


def normalise_email(value: str) -> str:
    """Trim, lowercase and syntax-check an email address; raise ValueError if invalid."""
    candidate = value.strip().lower()
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None
    return result.normalized.lower()


def normalise_phone(value: str, region: str | None = None) -> str:
    """Return the phone number in E.164, using `region` (ISO alpha-2) for national numbers."""
    text = value.strip()
    if _E164.match(text):
        return text
    try:
        number = phonenumbers.parse(text, (region or "").upper() or None)
    except phonenumbers.NumberParseException as exc:
        hint = "" if region else " (a national number needs a default region)"
        raise ValueError(f"not a phone number: {exc}{hint}") from None
    if not phonenumbers.is_possible_number(number):
        raise ValueError("not a possible phone number for its region")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_country(value: str) -> str:
    """Return the ISO 3166-1 alpha-2 code for a code (alpha-2/3) or an English country name."""
    text = value.strip()
    upper = text.upper()
    if upper in _COUNTRY_ALIASES:
        return _COUNTRY_ALIASES[upper]
    if len(upper) == 2 and pycountry.countries.get(alpha_2=upper) is not None:
        return upper
    if len(upper) == 3:
        found = pycountry.countries.get(alpha_3=upper)
        if found is not None:
            return str(found.alpha_2)
    try:
        match = pycountry.countries.lookup(text)
    except LookupError:
        raise ValueError(f"unknown country {text!r}: use an ISO 3166-1 code such as 'GB'") from None
    return str(match.alpha_2)


def normalise_currency(value: str) -> str:
    """Return an upper-case ISO 4217 code; raise ValueError for an unknown one."""
    code = value.strip().upper()
    if len(code) != 3 or pycountry.currencies.get(alpha_3=code) is None:
        raise ValueError(f"unknown currency {value!r}: use an ISO 4217 code such as 'EUR'")
    return code


def to_decimal(value: object) -> Decimal:
    """Parse an amount (str, int, float) into a Decimal without float artefacts."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not an amount")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(int(value)) if value.is_integer() else Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        if _THOUSANDS.match(text):
            text = text.replace(",", "")
        try:
            result = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"not an amount: {value!r}") from None
    else:
        raise ValueError(f"not an amount: {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"not a finite amount: {value!r}")
    return result


def to_utc(value: datetime) -> datetime:
    """Return an aware datetime in UTC; a naive one is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("time out of range once converted to UTC") from None
