"""The closed registry of mapping transforms. Each docstring shows its YAML.

A transform is registered with `@register(name)` on a factory that takes the YAML
argument (validated at load) and returns `fn(value, node, root) -> value`. Plugins add
transforms under the entry point group `hub.transforms`. Compiled transforms only ever
raise `MappingError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hub.canonical import normalise
from hub.errors import MappingError
from hub.mapping.memo import remember
from hub.mapping.names import split_full_name
from hub.mapping.paths import Getter, compile_path, is_empty

__all__ = [
    "REGISTRY",
    "CompileContext",
    "CompiledStep",
    "Transform",
    "TransformFn",
    "build",
    "chain",
    "compile_step",
    "register",
]

TransformFn = Callable[[Any, Any, Any], Any]
"""`fn(value, node, root)`: node is the current element (inside `each`), root the event."""


@dataclass(frozen=True)
class CompileContext:
    """What a transform factory may read at load: the spec's defaults."""

    region_from: str | None = None
    default_region: str | None = None


@dataclass(frozen=True)
class Transform:
    name: str
    factory: Callable[[Any, CompileContext], TransformFn]
    #: Called for a missing value too (`default`); others pass None through.
    handles_missing: bool = False
    #: Applied to each element of a list value (text transforms).
    elementwise: bool = False


REGISTRY: dict[str, Transform] = {}
_CAUGHT = (ValueError, TypeError, ArithmeticError, KeyError, AttributeError, OSError, re.error)


def register(
    name: str, *, handles_missing: bool = False, elementwise: bool = False
) -> Callable[[Callable[[Any, CompileContext], TransformFn]], Callable[[Any, CompileContext], TransformFn]]:
    """Register a transform factory under `name`."""

    def decorate(
        factory: Callable[[Any, CompileContext], TransformFn],
    ) -> Callable[[Any, CompileContext], TransformFn]:
        REGISTRY[name] = Transform(name, factory, handles_missing, elementwise)
        return factory

    return decorate


@dataclass(frozen=True)
class CompiledStep:
    """One transform compiled with its argument, before it is run in a chain."""

    name: str
    fn: TransformFn
    handles_missing: bool
    elementwise: bool


def compile_step(name: str, arg: Any, ctx: CompileContext) -> CompiledStep:
    """Compile one transform's argument; raise ValueError for a bad one (reported at load)."""
    spec = REGISTRY[name]
    return CompiledStep(name, spec.factory(arg, ctx), spec.handles_missing, spec.elementwise)


def build(name: str, arg: Any, ctx: CompileContext) -> TransformFn:
    """Compile one transform; raise ValueError for a bad argument (reported at load)."""
    return chain([compile_step(name, arg, ctx)])


def chain(steps: list[CompiledStep]) -> TransformFn:
    """Run compiled transforms in order, as one function.

    A missing value (None) skips the transforms that do not handle it, an elementwise
    transform maps a list (dropping empty results), and any error a transform raises
    becomes a `MappingError` naming it.
    """
    plan = tuple((s.name, s.fn, s.handles_missing, s.elementwise) for s in steps)

    def run(value: Any, node: Any, root: Any) -> Any:
        current = ""  # the transform running, to name it in an error
        try:
            for name, fn, handles_missing, elementwise in plan:
                current = name
                if elementwise and isinstance(value, list):
                    value = _each(fn, handles_missing, value, node, root)
                elif value is not None or handles_missing:
                    value = fn(value, node, root)
        except MappingError:
            raise
        except _CAUGHT as exc:
            raise MappingError(f"{current}: {exc}") from None
        return value

    return run


def _each(fn: TransformFn, handles_missing: bool, values: list[Any], node: Any, root: Any) -> list[Any]:
    results = [fn(v, node, root) if v is not None or handles_missing else None for v in values]
    return [r for r in results if not is_empty(r)]


def _no_arg(name: str, arg: Any) -> None:
    if arg is not None:
        raise ValueError(f"{name} takes no argument")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float | Decimal):
        return str(value)
    raise ValueError(f"expected text, got {type(value).__name__}")


def _simple(name: str, fn: Callable[[str], Any], doc: str) -> None:
    def factory(arg: Any, ctx: CompileContext) -> TransformFn:
        _no_arg(name, arg)
        return lambda value, node, root: fn(value if isinstance(value, str) else _text(value))

    factory.__doc__ = doc
    register(name, elementwise=True)(factory)


_simple("trim", str.strip, "Strip surrounding whitespace.\n\n    transforms: [trim]   '  Ann ' -> 'Ann'")
_simple("lower", str.lower, "Lower-case.\n\n    transforms: [lower]   'Ann@X.COM' -> 'ann@x.com'")
_simple("upper", str.upper, "Upper-case.\n\n    transforms: [upper]   'eur' -> 'EUR'")
_simple("title", str.title, "Title-case.\n\n    transforms: [title]   'ann lee' -> 'Ann Lee'")
_simple("to_str", lambda s: s, "Any scalar as text.\n\n    transforms: [to_str]   1001 -> '1001'")
_simple(
    "currency",
    normalise.normalise_currency,
    "ISO 4217 check, upper case.\n\n    transforms: [currency]   'jpy' -> 'JPY'",
)


def _country(text: str) -> str:
    """`normalise_country`, once per text per record (an address and a phone region share it)."""
    return remember(("country", text), normalise.normalise_country, text)


_simple(
    "country",
    _country,
    "Country name or code -> ISO 3166-1 alpha-2.\n\n    transforms: [country]   'United Kingdom' -> 'GB'",
)


@register("split_name")
def _split_name(arg: Any, ctx: CompileContext) -> TransformFn:
    """A full name -> its first or last part.

    ```yaml
    contact.first_name: {path: name, transforms: [{split_name: first}]}
    contact.last_name: {path: name, transforms: [{split_name: last}]}
    ```
    """
    if arg not in ("first", "last"):
        raise ValueError("split_name takes 'first' or 'last'")
    index = 0 if arg == "first" else 1
    return lambda value, node, root: _split_once(_text(value))[index]


def _split_once(full: str) -> tuple[str | None, str | None]:
    """`split_full_name`, once per name per record (first and last name split the same one)."""
    return remember(("split_name", full), split_full_name, full)


def _region_getter(arg: Any, ctx: CompileContext) -> tuple[str | None, Getter | None]:
    if arg is None:
        region_from = ctx.region_from
        fixed = ctx.default_region
    elif isinstance(arg, dict):
        unknown = set(arg) - {"region", "region_from"}
        if unknown:
            raise ValueError(f"e164 takes region and region_from, not {sorted(unknown)}")
        region_from = arg.get("region_from", ctx.region_from)
        fixed = arg.get("region", ctx.default_region)
    elif isinstance(arg, str):
        region_from, fixed = ctx.region_from, arg
    else:
        raise ValueError("e164 takes a region code or {region, region_from}")
    if fixed is not None:
        fixed = normalise.normalise_country(str(fixed))
    return fixed, (compile_path(region_from) if region_from else None)


@register("e164")
def _e164(arg: Any, ctx: CompileContext) -> TransformFn:
    """A phone number -> E.164. National numbers need a region.

    ```yaml
    contact.phone: {path: phone, transforms: [e164]}                  # spec region_from / config
    contact.phone: {path: phone, transforms: [{e164: GB}]}
    contact.phone: {path: phone, transforms: [{e164: {region_from: billing.country}}]}
    ```
    """
    fixed, getter = _region_getter(arg, ctx)

    def fn(value: Any, node: Any, root: Any) -> Any:
        region = fixed
        if getter is not None:
            found = getter(node, root)
            if isinstance(found, str) and found.strip():
                try:
                    region = _country(found)
                except ValueError:
                    pass
        return normalise.normalise_phone(_text(value), region)

    return fn


@register("to_decimal")
def _to_decimal(arg: Any, ctx: CompileContext) -> TransformFn:
    """An amount (string, int, float) -> Decimal, without float artefacts.

    ```yaml
    deal.amount: {path: total_price, transforms: [to_decimal]}   # "1,250.00" -> 1250.00
    ```
    """
    _no_arg("to_decimal", arg)
    return lambda value, node, root: normalise.to_decimal(value)


@register("cents_to_decimal")
def _cents_to_decimal(arg: Any, ctx: CompileContext) -> TransformFn:
    """Minor units -> Decimal, by the currency's exponent (JPY 0, KWD 3, most 2).

    ```yaml
    deal.amount: {path: amount_total, transforms: [{cents_to_decimal: {currency_from: currency}}]}
    deal.amount: {path: amount, transforms: [{cents_to_decimal: {currency: EUR}}]}
    ```
    """
    fixed: str | None = None
    getter: Getter | None = None
    if isinstance(arg, dict):
        unknown = set(arg) - {"currency", "currency_from"}
        if unknown:
            raise ValueError(f"cents_to_decimal takes currency or currency_from, not {sorted(unknown)}")
        if "currency" in arg:
            fixed = normalise.normalise_currency(str(arg["currency"]))
        if "currency_from" in arg:
            getter = compile_path(str(arg["currency_from"]))
    elif arg is not None:
        raise ValueError("cents_to_decimal takes {currency: X} or {currency_from: path}")

    def fn(value: Any, node: Any, root: Any) -> Any:
        amount = normalise.to_decimal(value)
        if amount != amount.to_integral_value():
            raise ValueError(f"minor units must be whole, got {value!r}")
        code = fixed
        if getter is not None:
            found = getter(node, root)
            if isinstance(found, str) and found.strip():
                code = found.strip().upper()
        exponent = normalise.CURRENCY_EXPONENTS.get(code or "", 2)
        return amount.scaleb(-exponent)

    return fn


_DOTNET_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
_EPOCH = re.compile(r"-?\d+(\.\d+)?")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _parse_datetime(value: Any, fmt: str | None, tz: ZoneInfo | None) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, bool):
        raise ValueError("a boolean is not a time")
    elif isinstance(value, int | float | Decimal):
        parsed = _from_epoch(float(value))
    elif isinstance(value, str):
        text = value.strip()
        dotnet = _DOTNET_DATE.match(text)
        if fmt is not None:
            parsed = datetime.strptime(text, fmt)
        elif dotnet:
            parsed = _from_epoch(int(dotnet.group(1)) / 1000)
        elif _EPOCH.fullmatch(text):
            parsed = _from_epoch(float(text))
        else:
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(
                    f"not a recognised time {text[:40]!r}: use ISO 8601, epoch seconds or "
                    "milliseconds, or give to_utc a format"
                ) from None
    else:
        raise ValueError(f"not a time: {type(value).__name__}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz or UTC)
    return parsed.astimezone(UTC)


def _from_epoch(seconds: float) -> datetime:
    # Values past year 5138 in seconds are milliseconds (JavaScript, .NET dates).
    if abs(seconds) > 1e11:
        seconds /= 1000
    return datetime.fromtimestamp(seconds, tz=UTC)


def _time_args(name: str, arg: Any) -> tuple[str | None, ZoneInfo | None]:
    if arg is None:
        return None, None
    if not isinstance(arg, dict) or set(arg) - {"format", "tz"}:
        raise ValueError(f"{name} takes {{format: '%d/%m/%Y', tz: Europe/London}}")
    tz = None
    if "tz" in arg:
        try:
            tz = ZoneInfo(str(arg["tz"]))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {arg['tz']!r}") from None
    fmt = arg.get("format")
    return (str(fmt) if fmt is not None else None), tz


@register("to_utc")
def _to_utc(arg: Any, ctx: CompileContext) -> TransformFn:
    """A time -> aware UTC datetime. Naive times are UTC unless `tz` is given.

    ```yaml
    activity.occurred_at: {path: created_at, transforms: [to_utc]}   # ISO 8601, any offset
    activity.occurred_at: {path: created, transforms: [to_utc]}      # 1718931339 or ...902 (ms)
    activity.occurred_at: {path: when, transforms: [{to_utc: {format: "%d/%m/%Y %H:%M", tz: Asia/Tokyo}}]}
    ```
    """
    fmt, tz = _time_args("to_utc", arg)
    return lambda value, node, root: _parse_datetime(value, fmt, tz)


@register("to_date")
def _to_date(arg: Any, ctx: CompileContext) -> TransformFn:
    """A time or date -> a date (in UTC unless the value is a plain date).

    ```yaml
    deal.close_date: {path: DueDate, transforms: [to_date]}
    ```
    """
    fmt, tz = _time_args("to_date", arg)

    def fn(value: Any, node: Any, root: Any) -> Any:
        if isinstance(value, str) and _ISO_DATE.fullmatch(value.strip()):
            return date.fromisoformat(value.strip())
        return _parse_datetime(value, fmt, tz).date()

    return fn


@register("lookup")
def _lookup(arg: Any, ctx: CompileContext) -> TransformFn:
    """Look the value up in a table (keys compared as lower-case text).

    ```yaml
    deal.status:
      path: financial_status
      transforms: [{lookup: {table: {paid: won, refunded: lost}, default: open}}]
    ```
    Without `default`, a value not in the table gives no value.
    """
    if not isinstance(arg, dict) or not isinstance(arg.get("table"), dict):
        raise ValueError("lookup takes {table: {from: to, ...}, default: value}")
    if set(arg) - {"table", "default"}:
        raise ValueError(f"lookup takes table and default, not {sorted(set(arg) - {'table', 'default'})}")
    table = {str(k).lower(): v for k, v in arg["table"].items()}
    default = arg.get("default")

    def fn(value: Any, node: Any, root: Any) -> Any:
        key = str(value).lower() if not isinstance(value, list | dict) else None
        if key is None:
            raise ValueError("lookup needs a single value, not a list or object")
        return table.get(key, default)

    return fn


@register("default", handles_missing=True)
def _default(arg: Any, ctx: CompileContext) -> TransformFn:
    """Use a fixed value when there is none.

    ```yaml
    contact.lifecycle_stage: {path: stage, transforms: [{default: lead}]}
    ```
    """
    if arg is None:
        raise ValueError("default needs a value")
    return lambda value, node, root: arg if is_empty(value) else value


@register("join")
def _join(arg: Any, ctx: CompileContext) -> TransformFn:
    """A list -> text joined by a separator.

    ```yaml
    activity.body: {path: "answers[*].text", transforms: [{join: "\\n"}]}
    ```
    """
    separator = ", " if arg is None else arg
    if not isinstance(separator, str):
        raise ValueError("join takes a separator string")

    def fn(value: Any, node: Any, root: Any) -> Any:
        items = value if isinstance(value, list) else [value]
        return separator.join(_text(v) for v in items if not is_empty(v)) or None

    return fn


@register("split")
def _split(arg: Any, ctx: CompileContext) -> TransformFn:
    """Text -> a list, split on a separator; items trimmed, empty ones dropped.

    ```yaml
    contact.tags: {path: customer.tags, transforms: [{split: ","}]}
    ```
    """
    separator = "," if arg is None else arg
    if not isinstance(separator, str) or not separator:
        raise ValueError("split takes a non-empty separator string")

    def fn(value: Any, node: Any, root: Any) -> Any:
        if isinstance(value, list):
            return value
        return [part.strip() for part in _text(value).split(separator) if part.strip()]

    return fn


_TRUE = frozenset("true yes y 1 on checked opted_in subscribed accepted".split())
_FALSE = frozenset("false no n 0 off unchecked opted_out unsubscribed declined".split()) | {""}


@register("bool")
def _bool(arg: Any, ctx: CompileContext) -> TransformFn:
    """Truthy text -> a bool: yes/true/1/on -> True, no/false/0/off/"" -> False.

    ```yaml
    contact.custom_fields.newsletter: {path: hidden.newsletter, transforms: [bool]}
    ```
    """
    _no_arg("bool", arg)

    def fn(value: Any, node: Any, root: Any) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float | Decimal):
            return value != 0
        text = _text(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"cannot read {text[:20]!r} as yes/no")

    return fn


@register("first")
def _first(arg: Any, ctx: CompileContext) -> TransformFn:
    """The first non-empty element of a list (a single value passes through).

    ```yaml
    contact.email: {path: "field_data[name=email].values", transforms: [first]}
    ```
    """
    _no_arg("first", arg)

    def fn(value: Any, node: Any, root: Any) -> Any:
        if isinstance(value, list):
            return next((v for v in value if not is_empty(v)), None)
        return value

    return fn


@register("url_param")
def _url_param(arg: Any, ctx: CompileContext) -> TransformFn:
    """A query parameter of a URL (or of a bare `?a=b` query).

    ```yaml
    contact.lead_source.campaign: {path: landing_site, transforms: [{url_param: utm_campaign}]}
    ```
    """
    if not isinstance(arg, str) or not arg:
        raise ValueError("url_param takes the parameter name")

    def fn(value: Any, node: Any, root: Any) -> Any:
        text = _text(value).strip()
        found = remember(("url_query", text), _query_params, text).get(arg)
        return found[0] if found else None

    return fn


def _query_params(url: str) -> dict[str, list[str]]:
    """The parsed query of a URL; parsed once per record for all its `url_param`s."""
    return parse_qs(urlsplit(url).query)


@register("domain", elementwise=True)
def _domain(arg: Any, ctx: CompileContext) -> TransformFn:
    """The domain of an email address or URL.

    ```yaml
    company.domain: {path: email, transforms: [domain]}      # ann@acme.io -> acme.io
    ```
    """
    _no_arg("domain", arg)

    def fn(value: Any, node: Any, root: Any) -> Any:
        text = _text(value).strip().lower()
        if "@" in text and "/" not in text:
            return text.rsplit("@", 1)[1] or None
        host = urlsplit(text if "//" in text else f"//{text}").hostname
        return host.removeprefix("www.") if host else None

    return fn


@register("to_int")
def _to_int(arg: Any, ctx: CompileContext) -> TransformFn:
    """A number or numeric text -> an int (it must be whole).

    ```yaml
    deal.line_items[]: {each: items[*], fields: {quantity: {path: qty, transforms: [to_int]}}}
    ```
    """
    _no_arg("to_int", arg)

    def fn(value: Any, node: Any, root: Any) -> Any:
        number = normalise.to_decimal(value)
        if number != number.to_integral_value():
            raise ValueError(f"not a whole number: {value!r}")
        return int(number)

    return fn


@register("prefix", elementwise=True)
def _prefix(arg: Any, ctx: CompileContext) -> TransformFn:
    """Prepend text.

    ```yaml
    contact.tags: {path: product_type, transforms: [{prefix: "bought-"}]}
    ```
    """
    if not isinstance(arg, str):
        raise ValueError("prefix takes a string")
    return lambda value, node, root: arg + _text(value)
