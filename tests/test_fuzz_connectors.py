"""Fuzz every installed webhook connector: handshake, verify, parse, then the mapping.

The property (security issue: hostile input never escapes as a 500): whatever arrives,

- `handshake` and `verify` return or raise `SignatureError` / `PayloadError`;
- `parse` of an authentic request returns source events or raises `PayloadError`;
- mapping each parsed event (for a fetching connector: the fetched object) returns a
  valid `Bundle` or raises `MappingError`.

Connectors are found through the plugin registry (`hub.plugins.connectors()`), never
imported by name, so a newly installed connector is fuzzed without editing this file.
Each connector's settings are built from its settings model's required fields.

Authentic-but-hostile input comes from the shipped fixtures: each is mutated (keys
dropped, types swapped, deep junk, huge and odd strings) and re-signed through the
connector's own `sample_request`, so `verify` passes and `parse`/mapping face it.
`sample_request` refusing impossible data is an `assume` (skipped example), not a finding.

Deterministic: `derandomize=True` and no example database; the budget is a few seconds
per connector.
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, assume, given, note, settings
from hypothesis import strategies as st

from hub.canonical import Bundle
from hub.connector.base import Connector, HandshakeResponse, RawRequest, SourceEvent, WebhookConnector
from hub.errors import HubError, MappingError, PayloadError, SignatureError
from hub.mapping import MappingSet
from hub.plugins import connectors as installed_connectors
from hub.testing.conformance import fixture_cases

SECRET = "fuzz-secret"
#: Examples per test and connector; raise it for a deeper run (`CRMHUB_FUZZ_EXAMPLES=5000`).
EXAMPLES = int(os.environ.get("CRMHUB_FUZZ_EXAMPLES", "120"))

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=EXAMPLES,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


# --- the connectors under test -----------------------------------------------------------


def webhook_connectors() -> list[type[WebhookConnector[Any]]]:
    registry = installed_connectors()
    return [
        cls  # type: ignore[misc]
        for _, cls in sorted(registry.plugins.items())
        if isinstance(cls, type) and issubclass(cls, WebhookConnector)
    ]


WEBHOOKS = webhook_connectors()
IDS = [cls.name for cls in WEBHOOKS]


def minimal_settings(cls: type[Connector[Any]]) -> dict[str, Any]:
    """Every required setting as a string; the signing secret is `SECRET`."""
    values: dict[str, Any] = {}
    for name, field in cls.settings_model.model_fields.items():
        if field.is_required():
            values[name] = SECRET if name == "secret" else f"fuzz-{name}"
    return values


def make(cls: type[WebhookConnector[Any]]) -> WebhookConnector[Any]:
    settings_obj = cls.settings_model.model_validate(minimal_settings(cls))
    return cls(settings_obj, instance_id=f"fuzz-{cls.name}")


_MAPPINGS: dict[str, MappingSet] = {}


def mappings_of(cls: type[Connector[Any]]) -> MappingSet:
    if cls.name not in _MAPPINGS:
        _MAPPINGS[cls.name] = MappingSet.load(cls.mapping_dir())
    return _MAPPINGS[cls.name]


def fixture_keys() -> list[str]:
    """Every key any shipped fixture uses: random objects reuse real field names."""
    keys: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                keys.add(str(key))
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for cls in WEBHOOKS:
        for _, _, data in fixture_cases(cls):
            walk(data)
    return sorted(keys)


KEYS = fixture_keys() or ["id"]


# --- hostile values ----------------------------------------------------------------------

#: Strings that break naive parsers: times at the edges of `datetime`, numbers in odd
#: spellings, control and bidi characters, URLs and emails that are almost valid.
ODD_STRINGS = [
    "",
    " ",
    "\x00",
    "null",
    "None",
    "true",
    "0",
    "-0",
    "-1",
    "1e309",
    "-1e309",
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "sNaN",
    "0x1F",
    "1_000",
    "1,000,000.00",
    "１２３",  # full-width digits
    "٣",  # Arabic-Indic digit
    "99999999999999999999999999999999",
    "9" * 400,
    "1e999999999",
    "1E-999999999",
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59-01:00",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01",
    "9999-12-31",
    "2024-02-30T10:00:00Z",
    "2024-06-01T25:61:61Z",
    "2024-06-01T12:00:00+24:00",
    "/Date(99999999999999999999)/",
    "/Date(-99999999999999999)/",
    "99999999999999999",
    "-99999999999999999",
    "253402300800",
    "-62135596801",
    "1e20",
    "+",
    "+0",
    "+99999999999999999999",
    "+1 (555) 0100 ext. 99999999999999999",
    "@",
    "a@",
    "@b",
    "a@b@c",
    "http://",
    "http://[",
    "http://[::1",
    "//[invalid]",
    "http://user:pw@:99999999/?utm_source=%ff%fe",
    "?utm_source=a&utm_source=b",
    "%",
    "{",
    "{}",
    "{0}",
    "{name!r}",
    "{:>99999999}",
    "%s%s%s%n",
    "\u202e\u200b\ufeff",
    "𝓐𝓷𝓷 𝓛𝓮𝓮",
    "山田 太郎",
    "ǅ",
    "ß",
    "İ",
    "\ud7ff\ue000\uffff",
    "a\nb\r\nc\td",
    "a" * 10_000,
    "é" * 5_000,
    "💥" * 2_000,
]

#: Times at and past the edges of `datetime` (year 1 / 9999 with an offset overflow when
#: converted to UTC), impossible dates, other spellings, epochs out of range.
ODD_TIMES = [
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59-01:00",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
    "0001-01-01",
    "9999-12-31",
    "2024-02-30T10:00:00Z",
    "2024-06-01T25:61:61Z",
    "2024-06-01T12:00:00+24:00",
    "2024-06-01T12:00:00+0000",
    "2024-06-01T12:00:00",
    "20240601T120000Z",
    "2024-W22-6",
    "/Date(99999999999999999999)/",
    "/Date(-99999999999999999)/",
    "253402300800",
    "-62135596801",
    "1e20",
    "99999999999999999",
    "1718931339902",
    "0",
    "-1",
    "",
]

ODD_NUMBERS: list[Any] = [
    0,
    -1,
    1,
    True,
    False,
    2**31,
    2**63,
    2**64 + 1,
    -(2**63) - 1,
    10**40,
    -(10**40),
    10**300,
    0.5,
    -0.0,
    1e-320,
    1e308,
    -1e308,
    1.7976931348623157e308,
    math.inf,
    -math.inf,
    math.nan,
    253402300800,
    -62135596801,
    99999999999999999999,
]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(ODD_NUMBERS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(ODD_STRINGS),
)
json_keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=10), st.sampled_from(ODD_STRINGS[:40]))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(json_keys, inner, max_size=5),
    ),
    max_leaves=20,
)


def deep(depth: int, kind: str) -> Any:
    """A value nested `depth` levels deep: lists, objects, or both in turn."""
    value: Any = "bottom"
    for level in range(depth):
        if kind == "list" or (kind == "mixed" and level % 2):
            value = [value]
        else:
            value = {"id": value, "value": value} if level < 2 else {"a": value}
    return value


def retyped(value: Any) -> list[Any]:
    """Type swaps of `value`: str<->int<->float<->list<->dict<->null, numbers as strings."""
    out: list[Any] = [None, [], {}, "", 0, True, [value], {"value": value}, {"id": value}]
    if isinstance(value, bool):
        out += [str(value).lower(), int(value)]
    elif isinstance(value, int | float):
        out += [
            str(value),
            f" {value} ",
            float(value) if isinstance(value, int) else int(value) if math.isfinite(value) else 0,
            -value,
            value * 1000,
        ]
    elif isinstance(value, str):
        out += [value.upper(), value * 50, value + "\x00", f"  {value}  "]
        if looks_like_time(value):
            out += ODD_TIMES
        try:
            number = float(value)
        except ValueError:
            out += [len(value)]
        else:
            out += [number]
            if number.is_integer():
                out += [int(number)]
    elif isinstance(value, list):
        out += [value[:1], value * 20, value[0] if value else None, dict(enumerate(value))]
    elif isinstance(value, dict):
        out += [list(value.values()), list(value.keys()), {k: None for k in value}]
    return out


def looks_like_time(value: str) -> bool:
    try:
        datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


# --- structural mutation of a fixture ---------------------------------------------------

Path = tuple[Any, ...]


def node_paths(value: Any, prefix: Path = ()) -> Iterator[Path]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from node_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from node_paths(item, (*prefix, index))


def get_at(value: Any, path: Path) -> Any:
    for step in path:
        value = value[step]
    return value


def set_at(root: Any, path: Path, new: Any) -> Any:
    if not path:
        return new
    parent = get_at(root, path[:-1])
    parent[path[-1]] = new
    return root


def drop_at(root: Any, path: Path) -> Any:
    parent = get_at(root, path[:-1])
    if isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent.pop(path[-1])
    return root


OPS = (
    "drop",
    "null",
    "retype",
    "junk",
    "odd_string",
    "odd_number",
    "odd_time",
    "deep",
    "add_key",
    "rename",
    "empty",
)


@st.composite
def mutated(draw: st.DrawFn, original: Any) -> Any:
    """A deep copy of `original` with 1-6 structural mutations; the root keeps its type."""
    data: Any = json.loads(json.dumps(original))
    for _ in range(draw(st.integers(1, 6))):
        paths = list(node_paths(data))
        op = draw(st.sampled_from(OPS))
        times = [p for p in paths if isinstance(get_at(data, p), str) and looks_like_time(get_at(data, p))]
        path = draw(st.sampled_from(times if op == "odd_time" and times else paths))
        node = get_at(data, path)
        if op == "add_key" or (not path and op not in ("drop", "rename")):
            target = node if isinstance(node, dict | list) else data
            if isinstance(target, dict):
                target[draw(json_keys)] = draw(json_values)
            elif isinstance(target, list):
                target.append(draw(json_values))
        elif not path:
            if isinstance(data, dict) and data:
                data.pop(draw(st.sampled_from(sorted(data, key=str))))
            elif isinstance(data, list) and data:
                data.pop(draw(st.integers(0, len(data) - 1)))
        elif op == "odd_time":
            data = set_at(data, path, draw(st.sampled_from(ODD_TIMES)))
        elif op == "drop":
            data = drop_at(data, path)
        elif op == "null":
            data = set_at(data, path, None)
        elif op == "retype":
            data = set_at(data, path, draw(st.sampled_from(retyped(node))))
        elif op == "junk":
            data = set_at(data, path, draw(json_values))
        elif op == "odd_string":
            data = set_at(data, path, draw(st.sampled_from(ODD_STRINGS)))
        elif op == "odd_number":
            data = set_at(data, path, draw(st.sampled_from(ODD_NUMBERS)))
        elif op == "deep":
            depth = draw(st.sampled_from([3, 20, 100, 300]))
            data = set_at(data, path, deep(depth, draw(st.sampled_from(["list", "dict", "mixed"]))))
        elif op == "rename":
            parent = get_at(data, path[:-1])
            if isinstance(parent, dict):
                value = parent.pop(path[-1])
                key = path[-1]
                parent[
                    draw(st.sampled_from([key.upper(), key.title(), f" {key}", key + "\u200b", "", "null"]))
                ] = value
        elif op == "empty":
            data = set_at(data, path, draw(st.sampled_from(["", "   ", [], {}, [None], [""], {"": ""}])))
    return data


#: Bodies only a sender holding the secret could get signed; drawn by name so a failing
#: example prints the name, not 200 kB of brackets.
HOSTILE_BODIES: dict[str, bytes] = {
    "empty": b"",
    "bom_object": b"\xef\xbb\xbf{}",
    "invalid_utf8": b"\xff",
    "unclosed": b"{{{",
    "nested_lists_100000": b"[" * 100_000 + b"]" * 100_000,
    "nested_objects_50000": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "int_5000_digits": b"1" * 5_000,
    "int_4301_digits_in_list": b"[" + b"9" * 4_301 + b"]",
    "object_id_5001_digits": b'{"id": 1' + b"0" * 5_000 + b"}",
    "bare_nan": b"NaN",
    "infinities": b"[Infinity, -Infinity]",
    "lone_surrogate_string": b'"\\ud800"',
    "surrogates_in_object": b'{"a": "\\ud800\\udc00\\udfff"}',
}


def draw_fixture(data: st.DataObject, cases: list[tuple[str, Any, Any]]) -> tuple[str, Any, Any]:
    """One shipped fixture, printed by its path when an example fails."""
    names = [f"{event_type} {path.parent.name}/{path.name}" for event_type, path, _ in cases]
    return cases[names.index(data.draw(st.sampled_from(names), label="fixture"))]


# --- assertions: only the hub's own errors ------------------------------------------------


def _short(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def expect_only(
    allowed: tuple[type[HubError], ...], what: str, call: Callable[[], Any], *, given_input: Any
) -> tuple[Any, BaseException | None]:
    """Run `call`; a non-allowed exception fails with a message naming `what` and the input."""
    try:
        return call(), None
    except allowed as exc:
        return None, exc
    except Exception as exc:
        names = "/".join(a.__name__ for a in allowed)
        raise AssertionError(
            f"FINDING: {what} raised {type(exc).__name__} (only {names} may escape): {exc!s:.300}\n"
            f"  input: {_short(given_input)}"
        ) from exc


def check_events(cls: type[WebhookConnector[Any]], events: Any, given_input: Any) -> list[SourceEvent]:
    assert isinstance(events, list), f"FINDING: {cls.name}.parse returned {type(events).__name__}, not a list"
    for event in events:
        assert isinstance(event, SourceEvent), f"FINDING: {cls.name}.parse returned {event!r}"
        assert isinstance(event.type, str) and event.type, (
            f"FINDING: {cls.name}.parse gave an event without a type: {_short(event)}; "
            f"input {_short(given_input)}"
        )
        assert isinstance(event.id, str) and event.id, (
            f"FINDING: {cls.name}.parse gave an event without an id: {_short(event)}; "
            f"input {_short(given_input)}"
        )
        assert isinstance(event.occurred_at, datetime) and event.occurred_at.tzinfo is not None, (
            f"FINDING: {cls.name}.parse gave a naive or missing occurred_at: {_short(event)}"
        )
    return events


def check_mapping(cls: type[Connector[Any]], event: SourceEvent) -> None:
    """Map `event` with the connector's shipped spec: a valid Bundle or a MappingError."""
    mapper = mappings_of(cls).get(event.type)
    if mapper is None:
        return  # the runtime ignores event types without a mapping
    bundle, error = expect_only(
        (MappingError,),
        f"{cls.name} mapping of {event.type!r} ({mapper.source.file})",
        lambda: mapper.map(event, connector=f"fuzz-{cls.name}"),
        given_input=event.data,
    )
    if error is not None:
        return
    assert isinstance(bundle, Bundle)
    try:
        dumped = bundle.model_dump_json()
    except Exception as exc:
        raise AssertionError(
            f"FINDING: {cls.name} {event.type!r} mapped to a Bundle that cannot be serialised: "
            f"{type(exc).__name__}: {exc!s:.300}\n  input: {_short(event.data)}"
        ) from exc
    try:
        again = Bundle.model_validate_json(dumped)
    except Exception as exc:
        raise AssertionError(
            f"FINDING: {cls.name} {event.type!r} mapped to a Bundle whose JSON does not validate back: "
            f"{type(exc).__name__}: {exc!s:.300}\n  input: {_short(event.data)}\n  bundle: {dumped[:400]}"
        ) from exc
    assert again == bundle, (
        f"FINDING: {cls.name} {event.type!r}: the Bundle does not round-trip through JSON\n"
        f"  input: {_short(event.data)}\n  bundle: {dumped[:400]}"
    )


def sign(cls: type[WebhookConnector[Any]], event_type: str, data: Any) -> RawRequest:
    """The connector's own signed request for `data`; refused data skips the example."""
    try:
        return cls.sample_request(event_type, data, SECRET, at=datetime.now(UTC))
    except Exception as exc:
        note(f"sample_request refused the data: {type(exc).__name__}: {exc!s:.200}")
        assume(False)
        raise  # unreachable


def verify_authentic(connector: WebhookConnector[Any], request: RawRequest, data: Any) -> None:
    cls = type(connector)
    _, error = expect_only(
        (SignatureError, PayloadError),
        f"{cls.name}.verify (signed sample request)",
        lambda: connector.verify(request),
        given_input=data,
    )
    assert error is None, (
        f"FINDING: {cls.name}.verify rejected a request signed by its own sample_request: {error}\n"
        f"  input: {_short(data)}"
    )


def parse_and_map(connector: WebhookConnector[Any], request: RawRequest, data: Any) -> list[SourceEvent]:
    cls = type(connector)
    events, error = expect_only(
        (PayloadError,),
        f"{cls.name}.parse (authentic request)",
        lambda: connector.parse(request),
        given_input=data,
    )
    if error is not None:
        return []
    check_events(cls, events, data)
    if not cls.fetches:
        for event in events:
            check_mapping(cls, event)
    return events


# --- (a) random requests: handshake and verify ----------------------------------------------

_HANDSHAKE_KEYS = [
    "hub.mode",
    "hub.verify_token",
    "hub.challenge",
    "challenge",
    "crc_token",
    "validationToken",
    "token",
    "mode",
]


def header_values(cls: type[WebhookConnector[Any]]) -> st.SearchStrategy[str]:
    """Values shaped like signatures (prefixes, hex, base64, `t=..,v1=..`) and random text."""
    digest32 = st.binary(min_size=32, max_size=32)
    hexes = digest32.map(bytes.hex)
    b64 = st.one_of(digest32, st.binary(max_size=64)).map(lambda b: base64.b64encode(b).decode())
    stamps = st.one_of(st.integers(), st.sampled_from(ODD_STRINGS[:50]).map(str))
    parts = st.one_of(
        hexes,
        b64,
        st.text(max_size=40),
        st.sampled_from(ODD_STRINGS),
        st.builds(
            lambda p, v: p + v,
            st.sampled_from(["sha256=", "sha1=", "v1=", "t=", "v1,"]),
            st.one_of(hexes, b64, st.text(max_size=20)),
        ),
        st.builds(lambda t, s: f"t={t},v1={s}", stamps, st.one_of(hexes, st.text(max_size=20))),
    )
    return st.lists(parts, min_size=1, max_size=3).map(lambda xs: ",".join(xs)) | parts


@st.composite
def random_requests(draw: st.DrawFn, cls: type[WebhookConnector[Any]]) -> RawRequest:
    values = [v for v in minimal_settings(cls).values() if isinstance(v, str)]
    text_value = st.one_of(
        st.text(max_size=40),
        st.sampled_from(ODD_STRINGS),
        st.sampled_from(values),
        st.sampled_from(["subscribe", "unsubscribe", "challenge-1234"]),
    )
    headers = draw(
        st.dictionaries(
            st.one_of(st.sampled_from(["content-type", "user-agent"]), st.text(min_size=1, max_size=20)),
            text_value,
            max_size=4,
        )
    )
    if cls.signature_header and draw(st.booleans()):
        headers[cls.signature_header] = draw(header_values(cls))
    query = draw(
        st.dictionaries(
            st.one_of(st.sampled_from(_HANDSHAKE_KEYS), st.text(max_size=12)), text_value, max_size=4
        )
    )
    body = draw(
        st.one_of(
            st.binary(max_size=300),
            json_values.map(lambda v: json.dumps(v).encode()),
            st.sampled_from([b"", b"{}", b"[]", b"null", b"\xff\xfe", b"[" * 5000, b"1" * 5000]),
        )
    )
    received = draw(
        st.one_of(
            st.just(datetime.now(UTC)),
            st.datetimes(
                min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
            ),
        )
    )
    method = draw(st.sampled_from(["GET", "POST", "PUT", "HEAD", "OPTIONS", "get", "post", ""]))
    return RawRequest(
        method=method,
        body=body,
        headers=headers,
        query=query,
        path=draw(st.sampled_from(["/", f"/webhooks/{cls.name}"])),
        received_at=received,
    )


@pytest.mark.parametrize("cls", WEBHOOKS, ids=IDS)
@FUZZ
@given(data=st.data())
def test_random_requests_handshake_and_verify(cls: type[WebhookConnector[Any]], data: st.DataObject) -> None:
    connector = make(cls)
    request = data.draw(random_requests(cls))
    reply, _ = expect_only(
        (SignatureError, PayloadError),
        f"{cls.name}.handshake",
        lambda: connector.handshake(request),
        given_input=request,
    )
    assert reply is None or isinstance(reply, HandshakeResponse)
    if reply is None:
        expect_only(
            (SignatureError, PayloadError),
            f"{cls.name}.verify",
            lambda: connector.verify(request),
            given_input=request,
        )


@pytest.mark.parametrize("cls", WEBHOOKS, ids=IDS)
@FUZZ
@given(data=st.data())
def test_tampered_signed_requests_verify(cls: type[WebhookConnector[Any]], data: st.DataObject) -> None:
    """A genuine request with its signature header, body or timestamp tampered with:
    `verify` passes (body and signature unchanged) or raises `SignatureError`."""
    cases = fixture_cases(cls)
    assume(cases)
    event_type, _, fixture = draw_fixture(data, cases)
    request = sign(cls, event_type, fixture)
    connector = make(cls)
    headers = dict(request.headers)
    body = request.body
    what = data.draw(st.sampled_from(["signature", "body", "both", "received_at"]))
    if what in ("signature", "both") and cls.signature_header:
        original = headers.get(cls.signature_header.lower(), "")
        headers[cls.signature_header.lower()] = data.draw(
            st.one_of(
                header_values(cls),
                st.sampled_from(
                    [
                        original.upper(),
                        original.lower(),
                        original + " ",
                        " " + original,
                        original[:-1],
                        original + original,
                        original.replace("=", ":"),
                        original.replace(",", ", "),
                        original.replace("v1=", "v0="),
                    ]
                ),
            )
        )
    if what in ("body", "both"):
        body = data.draw(
            st.one_of(
                st.binary(max_size=200),
                st.just(body + b" "),
                st.just(body[:-1]),
                st.integers(0, max(len(body) - 1, 0)).map(
                    lambda i: body[:i] + bytes([body[i] ^ 0x20]) + body[i + 1 :] if body else b"x"
                ),
            )
        )
    received = request.received_at
    if what == "received_at":
        received = received + timedelta(seconds=data.draw(st.sampled_from([-(10**9), -86400, 86400, 10**9])))
    tampered = replace(request, headers=headers, body=body, received_at=received)
    expect_only(
        (SignatureError,),
        f"{cls.name}.verify (tampered request)",
        lambda: connector.verify(tampered),
        given_input=tampered,
    )


# --- (b) authentic but hostile: mutated fixtures, re-signed ----------------------------------


@pytest.mark.parametrize("cls", WEBHOOKS, ids=IDS)
@FUZZ
@given(data=st.data())
def test_mutated_fixtures_signed_parse_and_map(cls: type[WebhookConnector[Any]], data: st.DataObject) -> None:
    cases = fixture_cases(cls)
    assert cases, f"{cls.name} ships no fixtures to mutate"
    event_type, _, fixture = draw_fixture(data, cases)
    payload = data.draw(mutated(fixture), label="mutated data")
    request = sign(cls, event_type, payload)
    connector = make(cls)
    verify_authentic(connector, request, payload)
    parse_and_map(connector, request, payload)
    if cls.fetches:
        # The mutated object is what `fetch` would have returned from the provider's API.
        check_mapping(cls, SourceEvent(event_type, "fuzz-1", datetime.now(UTC), payload))


@pytest.mark.parametrize("cls", WEBHOOKS, ids=IDS)
@FUZZ
@given(data=st.data())
def test_signed_requests_with_hostile_unsigned_headers(
    cls: type[WebhookConnector[Any]], data: st.DataObject
) -> None:
    """Headers the scheme does not sign (event type, delivery id, times, shop...) can be
    rewritten by anyone replaying a genuine delivery: verify still passes, so parse must
    cope with any value in them."""
    cases = fixture_cases(cls)
    event_type, path, fixture = draw_fixture(data, cases)
    request = sign(cls, event_type, fixture)
    signature_header = cls.signature_header.lower()
    others = sorted(k for k in request.headers if k != signature_header)
    assume(others)
    headers = dict(request.headers)
    for name in data.draw(st.lists(st.sampled_from(others), min_size=1, max_size=len(others), unique=True)):
        if data.draw(st.integers(0, 3)) == 0:
            del headers[name]
        else:
            headers[name] = data.draw(
                st.one_of(st.sampled_from(ODD_TIMES), st.sampled_from(ODD_STRINGS), st.text(max_size=40))
            )
    hostile = replace(request, headers=headers)
    connector = make(cls)
    _, rejected = expect_only(
        (SignatureError, PayloadError),
        f"{cls.name}.verify",
        lambda: connector.verify(hostile),
        given_input=headers,
    )
    if rejected is None:
        parse_and_map(connector, hostile, {"headers": headers, "fixture": str(path)})


@pytest.mark.parametrize("cls", WEBHOOKS, ids=IDS)
@FUZZ
@given(data=st.data())
def test_parse_any_body_of_an_authentic_sender(cls: type[WebhookConnector[Any]], data: st.DataObject) -> None:
    """`parse` does not look at the signature: whatever bytes a sender holding the secret
    signs (not JSON, deep nesting, a JSON list or number, huge integers) reach it."""
    cases = fixture_cases(cls)
    event_type, _, fixture = draw_fixture(data, cases)
    request = sign(cls, event_type, fixture)
    kind = data.draw(st.sampled_from(["mutated", "json", "bytes", "spliced", "named"]), label="body kind")
    if kind == "mutated":
        # The signed body itself (for a fetching connector: the notification) mutated.
        original = json.loads(request.body)
        body = json.dumps(data.draw(mutated(original), label="mutated body"), ensure_ascii=False).encode()
    elif kind == "json":
        body = json.dumps(data.draw(json_values, label="JSON body")).encode()
    elif kind == "bytes":
        body = data.draw(st.binary(max_size=200), label="body")
    elif kind == "spliced":
        at = data.draw(st.integers(0, len(request.body)), label="splice at")
        body = (
            request.body[:at]
            + data.draw(st.binary(min_size=1, max_size=8), label="spliced")
            + request.body[at:]
        )
    else:
        body = HOSTILE_BODIES[data.draw(st.sampled_from(sorted(HOSTILE_BODIES)), label="hostile body")]
    authentic = replace(request, body=body)
    connector = make(cls)
    parse_and_map(connector, authentic, body)


# --- deterministic sweep: every time-like value at the edges of `datetime` ---------------------

#: The four times that overflow when converted to UTC, and two that do not parse.
EDGE_TIMES = [*ODD_TIMES[:4], "2024-02-30T10:00:00Z", "9999-12-31T23:59:59.999999Z"]


def time_paths(value: Any) -> list[Path]:
    return [
        p
        for p in node_paths(value)
        if isinstance(get_at(value, p), str) and looks_like_time(get_at(value, p))
    ]


@pytest.mark.parametrize("cls", WEBHOOKS, ids=IDS)
def test_time_edges_sweep(cls: type[WebhookConnector[Any]]) -> None:
    """Every time-like string in every fixture, in every signed body (the notification, for
    a fetching connector) and in every unsigned header, replaced by each edge time: the
    same property, checked exhaustively rather than by chance. Collects every finding."""
    connector = make(cls)
    findings: dict[str, list[str]] = {}

    def attempt(label: str, run: Callable[[], Any]) -> None:
        try:
            run()
        except AssertionError as exc:
            findings.setdefault(str(exc).splitlines()[0], []).append(label)

    for event_type, path, fixture in fixture_cases(cls):
        request = cls.sample_request(event_type, fixture, SECRET, at=datetime.now(UTC))
        body = json.loads(request.body)
        for where in time_paths(fixture):
            for edge in EDGE_TIMES:
                data = set_at(json.loads(json.dumps(fixture)), where, edge)
                label = f"{path.name} data{list(where)}={edge!r}"

                def signed(data: Any = data) -> None:
                    try:
                        signed_request = cls.sample_request(event_type, data, SECRET, at=datetime.now(UTC))
                    except Exception:
                        return
                    verify_authentic(connector, signed_request, data)
                    parse_and_map(connector, signed_request, data)
                    if cls.fetches:
                        check_mapping(cls, SourceEvent(event_type, "fuzz-1", datetime.now(UTC), data))

                attempt(label, signed)
        for where in time_paths(body):
            for edge in EDGE_TIMES:
                raw = json.dumps(set_at(json.loads(request.body), where, edge)).encode()
                hostile = replace(request, body=raw)
                attempt(
                    f"{path.name} body{list(where)}={edge!r}",
                    lambda hostile=hostile, raw=raw: parse_and_map(connector, hostile, raw),
                )
        for header, value in request.headers.items():
            if header == cls.signature_header.lower() or not looks_like_time(value):
                continue
            for edge in EDGE_TIMES:
                hostile = replace(request, headers={**request.headers, header: edge})

                def unsigned(hostile: RawRequest = hostile) -> None:
                    _, rejected = expect_only(
                        (SignatureError, PayloadError),
                        f"{cls.name}.verify",
                        lambda: connector.verify(hostile),
                        given_input=hostile.headers,
                    )
                    if rejected is None:
                        parse_and_map(connector, hostile, hostile.headers)

                attempt(f"{path.name} header {header}={edge!r}", unsigned)
    report = [
        f"{message}\n    {len(labels)} cases, e.g. {labels[0]}"
        + (f"; {labels[-1]}" if len(labels) > 1 else "")
        for message, labels in sorted(findings.items())
    ]
    assert not report, f"{len(report)} distinct findings for {cls.name}:\n" + "\n".join(report)


@pytest.mark.parametrize("cls", WEBHOOKS, ids=IDS)
def test_hostile_bodies_sweep(cls: type[WebhookConnector[Any]]) -> None:
    """Each named hostile body, as the body of a genuine request of each event type: `parse`
    raises only `PayloadError`. Deterministic companion of the fuzzed body test."""
    connector = make(cls)
    findings: dict[str, list[str]] = {}
    seen: set[str] = set()
    for event_type, _, fixture in fixture_cases(cls):
        if event_type in seen:
            continue
        seen.add(event_type)
        request = cls.sample_request(event_type, fixture, SECRET, at=datetime.now(UTC))
        for name, body in sorted(HOSTILE_BODIES.items()):
            try:
                parse_and_map(connector, replace(request, body=body), name)
            except AssertionError as exc:
                findings.setdefault(str(exc).splitlines()[0], []).append(f"{event_type}: {name}")
    report = [
        f"{message}\n    bodies: {', '.join(sorted({label.split(': ', 1)[1] for label in labels}))}"
        for message, labels in sorted(findings.items())
    ]
    assert not report, f"{len(report)} distinct findings for {cls.name}:\n" + "\n".join(report)
