"""Coverage-guided fuzzing (atheris/libFuzzer) of every installed webhook connector and the
mapping engine. NOT part of `make test`: run it by hand, always with a bounded `-runs`:

    .venv/bin/pip install atheris
    .venv/bin/python fuzz/atheris_connectors.py -runs=20000
    .venv/bin/python fuzz/atheris_connectors.py -runs=20000 --skip-known   # look past reported bugs

Entry points, chosen by the first input byte, on a connector chosen by the second:

0. a random request -> `handshake`, `verify`: only SignatureError / PayloadError may escape;
1. a genuine signed request with the fuzzed bytes as body -> `parse` (only PayloadError),
   then the mapping of each event (only MappingError);
2. a shipped fixture with one node replaced by fuzzed JSON-ish data, re-signed through the
   connector's `sample_request` -> `verify` must pass, then `parse` and mapping as above
   (for a fetching connector the mutated fixture is mapped as the fetched object);
3. the fuzzed bytes as a mapping spec (YAML) -> `load_spec_text` + `compile_spec`, and the
   compiled spec on a fuzzed JSON value: only MappingError may escape.

Any other exception is a crash (libFuzzer saves the input as `crash-*`). `--skip-known`
treats the crash signatures already reported by tests/test_fuzz_*.py as expected.
"""

from __future__ import annotations

import importlib
import json
import sys
import traceback
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import atheris

with atheris.instrument_imports(include=["hub", "connectors", "mappings"]):
    # Modules first imported inside this block are instrumented for coverage feedback.
    for module in (
        "hub.canonical",
        "hub.connector.base",
        "hub.connector.signatures",
        "hub.mapping.compiler",
        "hub.mapping.conditions",
        "hub.mapping.loader",
        "hub.mapping.paths",
        "hub.mapping.transforms",
        "hub.mapping.yamlsource",
    ):
        importlib.import_module(module)
    from hub.errors import MappingError, PayloadError, SignatureError
    from hub.plugins import connectors as installed_connectors

    installed_connectors()  # imports (and so instruments) every connector module

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_fuzz_connectors import (
    SECRET,
    WEBHOOKS,
    make,
    mappings_of,
)

from hub.canonical import Bundle
from hub.connector.base import RawRequest, SourceEvent
from hub.mapping import compile_spec, load_spec_text
from hub.testing.conformance import fixture_cases

#: (exception type, innermost project function) of the bugs already reported; `--skip-known`.
KNOWN = {
    ("RecursionError", "json"),  # hub/connector/base.py RawRequest.json
    ("ValueError", "json"),  # ... int longer than 4300 digits
    ("OverflowError", "_as_utc"),  # connectors/shopify/connector.py
    ("OverflowError", "_parse_time"),  # connectors/calendly/connector.py
    ("OverflowError", "_occurred_at"),  # connectors/typeform/connector.py
    ("OverflowError", "_timestamp"),  # connectors/quickbooks/notifications.py
    ("ValueError", "render"),  # hub/mapping/compiler.py template format spec
    ("TypeError", "render"),
    ("OSError", "_from_epoch"),  # hub/mapping/transforms.py
    ("OverflowError", "to_utc"),  # hub/canonical/normalise.py via the UtcDatetime validator
    ("AttributeError", "compile_path"),  # non-string path: e164 region_from, override region_from
    ("KeyError", "compile_spec"),  # objects: {company: {}}
    ("TypeError", "apply_overrides"),  # override objects: a list
    ("ValueError", "apply_overrides"),  # override objects: a string
    ("RecursionError", "parse_yaml"),  # deeply nested YAML
}
SKIP_KNOWN = "--skip-known" in sys.argv
if SKIP_KNOWN:
    sys.argv.remove("--skip-known")

CASES = {cls.name: fixture_cases(cls) for cls in WEBHOOKS}
INSTANCES = {cls.name: make(cls) for cls in WEBHOOKS}
NOW = datetime.now(UTC)
GENUINE = {
    cls.name: [cls.sample_request(t, d, SECRET, at=NOW) for t, _, d in CASES[cls.name][:3]]
    for cls in WEBHOOKS
}


def _signature(exc: BaseException) -> tuple[str, str]:
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if "/hub/" in f.filename or "/connectors/" in f.filename
    ]
    return type(exc).__name__, frames[-1].name if frames else "?"


def _allowed(exc: Exception, allowed: tuple[type[Exception], ...]) -> bool:
    if isinstance(exc, allowed):
        return True
    return SKIP_KNOWN and _signature(exc) in KNOWN


def _json_value(fdp: atheris.FuzzedDataProvider, depth: int = 0) -> Any:
    kind = fdp.ConsumeIntInRange(0, 9 if depth < 4 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBool()
    if kind == 2:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 16))
    if kind == 3:
        return fdp.ConsumeRegularFloat() if fdp.ConsumeBool() else fdp.ConsumeFloat()
    if kind in (4, 5, 6):
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 64))
    if kind in (7, 8):
        return [_json_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    return {
        fdp.ConsumeUnicodeNoSurrogates(8): _json_value(fdp, depth + 1)
        for _ in range(fdp.ConsumeIntInRange(0, 3))
    }


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*prefix, index))
    return out


def _parse_and_map(connector: Any, request: RawRequest) -> None:
    try:
        events = connector.parse(request)
    except Exception as exc:
        if _allowed(exc, (PayloadError,)):
            return
        raise
    if not type(connector).fetches:
        for event in events:
            _map(type(connector), event)


def _map(cls: Any, event: SourceEvent) -> None:
    mapper = mappings_of(cls).get(event.type)
    if mapper is None:
        return
    try:
        bundle = mapper.map(event, connector="atheris")
    except Exception as exc:
        if _allowed(exc, (MappingError,)):
            return
        raise
    Bundle.model_validate_json(bundle.model_dump_json())


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 3)
    cls = WEBHOOKS[fdp.ConsumeIntInRange(0, len(WEBHOOKS) - 1)]
    connector = INSTANCES[cls.name]
    if mode == 0:
        headers = {fdp.ConsumeUnicodeNoSurrogates(16): fdp.ConsumeUnicodeNoSurrogates(64) for _ in range(2)}
        headers[cls.signature_header] = fdp.ConsumeUnicodeNoSurrogates(96)
        query = {
            key: fdp.ConsumeUnicodeNoSurrogates(24)
            for key in ("hub.mode", "hub.verify_token", "hub.challenge")
            if fdp.ConsumeBool()
        }
        method = "GET" if fdp.ConsumeBool() else "POST"
        request = RawRequest(method, fdp.ConsumeBytes(fdp.remaining_bytes()), headers, query)
        try:
            if connector.handshake(request) is None:
                connector.verify(request)
        except Exception as exc:
            if not _allowed(exc, (SignatureError, PayloadError)):
                raise
    elif mode == 1:
        genuine = GENUINE[cls.name]
        request = genuine[fdp.ConsumeIntInRange(0, len(genuine) - 1)]
        _parse_and_map(connector, replace(request, body=fdp.ConsumeBytes(fdp.remaining_bytes())))
    elif mode == 2:
        cases = CASES[cls.name]
        event_type, _, fixture = cases[fdp.ConsumeIntInRange(0, len(cases) - 1)]
        mutated = json.loads(json.dumps(fixture))
        for _ in range(fdp.ConsumeIntInRange(1, 3)):
            paths = [p for p in _paths(mutated) if p]
            if not paths:
                break
            path = paths[fdp.ConsumeIntInRange(0, len(paths) - 1)]
            parent = mutated
            for step in path[:-1]:
                parent = parent[step]
            parent[path[-1]] = _json_value(fdp)
        try:
            request = cls.sample_request(event_type, mutated, SECRET, at=datetime.now(UTC))
        except Exception:
            return  # impossible data for a sample request: not a finding
        connector.verify(request)  # signed by the connector itself: must pass
        _parse_and_map(connector, request)
        if cls.fetches:
            _map(cls, SourceEvent(event_type, "atheris-1", datetime.now(UTC), mutated))
    else:
        text = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 2000))
        try:
            mapper = compile_spec(load_spec_text(text, file="atheris.yaml"))
        except Exception as exc:
            if _allowed(exc, (MappingError,)):
                return
            raise
        value = _json_value(fdp)
        try:
            mapper.map(
                SourceEvent("e", "1", NOW, value if isinstance(value, dict) else {"v": value}), connector="a"
            )
        except Exception as exc:
            if not _allowed(exc, (MappingError,)):
                raise


def main() -> None:
    if not any(arg.startswith("-runs=") for arg in sys.argv[1:]):
        sys.argv.append("-runs=5000")  # always bounded
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
