"""Run the CRM Hub benchmarks and write a Markdown report (benchmarks/report.md).

    .venv/bin/python benchmarks/run_all.py               # everything (takes a while)
    .venv/bin/python benchmarks/run_all.py --quick       # short smoke version of each
    .venv/bin/python benchmarks/run_all.py --only ingress,mapping --profile

Benchmarks (each a module here with `run(quick) -> dict`): mapping, ingress, speed_to_lead,
rate_limited_crm, backlog. Each starts its own servers on 127.0.0.1 / unix sockets and stops
them, also on Ctrl-C or an error; a benchmark that fails is reported as such and the others
still run. The machine's load shows in the numbers: each figure is a median over runs, with
its baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import signal
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for _entry in (str(HERE), str(HERE.parent)):
    if _entry not in sys.path:
        sys.path.insert(0, _entry)

from harness import target  # noqa: E402

BENCHMARKS = ("mapping", "ingress", "speed_to_lead", "rate_limited_crm", "backlog")
DEFAULT_REPORT = HERE / "report.md"


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:
            return "n/a"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def _table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    columns = list(rows[0])
    for row in rows[1:]:
        columns += [c for c in row if c not in columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |" for row in rows]
    return lines


def _target_line(t: dict[str, Any]) -> str:
    t = {**t, **target(t["what"], t["value"], t["op"], t["threshold"], t["unit"])}
    mark = "met" if t["met"] else "**missed**"
    value = _fmt(t["value"])
    return (
        f"- {t['what']}: {value}{t['unit']} (target {t['op']} {_fmt(float(t['threshold']))}{t['unit']}): "
        f"{mark}, {t['margin'].removeprefix('met ').removeprefix('missed ')}"
    )


def render(
    results: list[dict[str, Any]],
    *,
    quick: bool,
    started: datetime,
    seconds: float,
    load: tuple[float, float] = (float("nan"), float("nan")),
) -> str:
    lines = [
        "# CRM Hub benchmarks" + (" (quick)" if quick else ""),
        "",
        f"Run {started:%Y-%m-%d %H:%M} UTC in {seconds:.0f} s on {platform.node() or 'this machine'}: "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.machine()}. "
        "Client, servers, Valkey and workers share the machine; other processes may have been running "
        f"(1-minute load average {load[0]:.1f} at the start, {load[1]:.1f} at the end). "
        "Every figure is a median over runs with its baseline measured in the same run.",
        "",
        "## Targets",
        "",
    ]
    for result in results:
        if "error" in result:
            lines.append(f"- {result['name']}: **did not run to the end**: {result['error']}")
        for t in result.get("targets", []):
            lines.append(_target_line(t))
    for result in results:
        lines += ["", f"## {result.get('title', result['name'])}", ""]
        if "error" in result:
            lines.append(f"Failed after {result.get('seconds', 0):.0f} s: `{result['error']}`")
            if result.get("traceback"):
                lines += ["", "```", result["traceback"].strip(), "```"]
            continue
        lines += _table(result.get("rows", []))
        if result.get("targets"):
            lines += [""] + [_target_line(t) for t in result["targets"]]
        if result.get("notes"):
            lines += [""] + [f"- {note}" for note in result["notes"]]
        profile = result.get("profile")
        if profile:
            lines += ["", "### py-spy profile of the ingress under load", ""]
            if "error" in profile:
                lines.append(f"py-spy: {profile['error']}")
            else:
                p = profile
                lines.append(
                    f"`py-spy record --rate {p['rate_hz']}` on `{p['target']}` (pid {p['pid']}) "
                    f"for {p['seconds']:g} s at {p['acks_per_s']:,.0f} acks/s: {p['samples']} "
                    f"non-idle samples ({p['busy_share']:.0f}% of the time on CPU or in a call)."
                )
                lines += ["", "Top functions by own time (% of non-idle samples):", ""]
                lines += _table([{"function": f, "self %": p} for f, p in profile["self"]])
                lines += ["", "Own time by library:", ""]
                lines += _table([{"library": f, "self %": p} for f, p in profile.get("self_by_area", [])])
                lines += ["", "Top functions by inclusive time (the trunk shared by > 90% left out):", ""]
                lines += _table([{"function": f, "inclusive %": p} for f, p in profile["inclusive"]])
                lines += ["", "Hub, connector and redis-py functions by inclusive time:", ""]
                lines += _table(
                    [{"function": f, "inclusive %": p} for f, p in profile.get("inclusive_hub_redis", [])]
                )
        lines.append(
            f"\n_{result['name']}: {result.get('seconds', 0):.0f} s, load average "
            f"{result.get('load_before', float('nan')):.1f} -> {result.get('load_after', float('nan')):.1f}_"
        )
    return "\n".join(lines) + "\n"


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through every `with Stack(...)`


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short smoke version of every benchmark")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only these (repeatable or comma-separated): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the ingress under load (needs py-spy)")
    parser.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="load generator: lean asyncio HTTP/1.1 client (default) or httpx",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_REPORT, help="Markdown report path")
    parser.add_argument("--json", type=Path, help="also write the raw numbers as JSON")
    args = parser.parse_args(argv)
    names = [n.strip() for item in (args.only or list(BENCHMARKS)) for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    signal.signal(signal.SIGTERM, _terminate)

    started, t0, load_start = datetime.now(UTC), time.monotonic(), os.getloadavg()[0]
    results: list[dict[str, Any]] = []
    interrupted = False
    for name in names:
        print(f"== {name} ({'quick' if args.quick else 'full'}) ...", file=sys.stderr, flush=True)
        begun = time.monotonic()
        load_before = os.getloadavg()[0]
        kwargs: dict[str, Any] = {}
        if name != "mapping":
            kwargs["client"] = args.client
        if name == "ingress" and args.profile:
            kwargs["profile"] = True
        try:
            module = importlib.import_module(name)
            result = module.run(args.quick, **kwargs)
        except KeyboardInterrupt:
            results.append({"name": name, "error": "interrupted", "seconds": time.monotonic() - begun})
            interrupted = True
            break
        except Exception as exc:  # one failing benchmark does not stop the others
            result = {
                "name": name,
                "error": f"{type(exc).__name__}: {exc}"[:500],
                "traceback": traceback.format_exc()[-3000:],
            }
        result["seconds"] = time.monotonic() - begun
        result["load_before"], result["load_after"] = load_before, os.getloadavg()[0]
        results.append(result)
        print(
            f"   {name}: {result['seconds']:.0f} s" + (f" ({result['error']})" if "error" in result else ""),
            file=sys.stderr,
            flush=True,
        )
    report = render(
        results,
        quick=args.quick,
        started=started,
        seconds=time.monotonic() - t0,
        load=(load_start, os.getloadavg()[0]),
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report, encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    print(report)
    print(f"report written to {args.output}", file=sys.stderr)
    if interrupted:
        return 130
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
