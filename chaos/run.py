#!/usr/bin/env python
"""The chaos run: the real hub on loopback against a faulty CRM, then proof that every
acknowledged webhook reached the CRM exactly once or was dead-lettered with its reason.

    python chaos/run.py                  # 10,000 events at 12/s, kills every 20 s, ~20-35 min
    python chaos/run.py --short          # 600 events, one of each fault, ~80 s
    python chaos/run.py --events 2000 --rate 15 --duration 900 --json out.json

The stack: an embedded Valkey (unix socket, AOF), `crmhub serve`, `crmhub scheduler`, two
`crmhub worker` processes; the CRM: `FakeHubSpot` (100 requests / 10 s) behind
`FakeServer`. Signed webhooks (Shopify orders and customers, Typeform responses, Calendly
bookings) are sent at a steady rate and re-sent on 503s and connection errors, while:
- a random worker is SIGKILLed (and replaced) at each `Plan.kills` time;
- the server is stopped and started again once;
- the CRM answers 5 % of calls 500, 10 % of writes 504 after committing them, hangs 2 %
  of calls past the hub's HTTP timeout, answers 429 in bursts, and is down once.
Exit status: 0 when every check passed, 1 when one failed (the JSON's `correct` says whether
only latency targets failed), 2 when the run could not run.
All processes are ours and are ended on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path[0] = str(Path(__file__).resolve().parents[1])  # the repo, not chaos/

from chaos.config import write_config  # noqa: E402
from chaos.crm import FaultyCrm, start_crm  # noqa: E402
from chaos.monitor import Monitor  # noqa: E402
from chaos.payloads import Webhook, make_webhooks  # noqa: E402
from chaos.plan import Plan, full_plan, short_plan  # noqa: E402
from chaos.probes import QUEUES  # noqa: E402
from chaos.report import format_summary  # noqa: E402
from chaos.scenario import Scenario  # noqa: E402
from chaos.senders import Senders  # noqa: E402
from chaos.stack import ChaosStack  # noqa: E402
from chaos.verdict import Evidence, judge  # noqa: E402
from chaos.verify import event_statuses  # noqa: E402
from hub.runtime import keys  # noqa: E402
from hub.runtime.eventlog import now_ms  # noqa: E402
from hub.settings import load_config  # noqa: E402

#: A drain with nothing moving for this long is stuck: stop waiting.
STALL_SECONDS = 120.0
#: A drain with events pending but no message anywhere (queued, parked or held by a worker)
#: for this long is stuck too: nothing is left that could deliver them.
ORPHAN_SECONDS = 15.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--short", action="store_true", help="the ~80 s version (600 events, one of each fault)"
    )
    parser.add_argument("--events", type=int, help="webhooks to send (default 10000; --short 600)")
    parser.add_argument("--rate", type=float, help="webhooks per second (default 12; --short events/45 s)")
    parser.add_argument("--duration", type=float, help="cap on the whole run, s (default 2700; --short 110)")
    parser.add_argument(
        "--http-timeout",
        type=float,
        help="the workers' CRM HTTP timeout, s (default the hub's 30; --short 5)",
    )
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--json", type=Path, help="also write the numbers and checks here")
    parser.add_argument(
        "--keep", action="store_true", help="keep the run directory (logs, AOF) even on success"
    )
    parser.add_argument(
        "--max-rss-mib", type=float, default=1024.0, help="largest acceptable worker peak RSS"
    )
    args = parser.parse_args(argv)
    if args.short:
        args.plan = short_plan(events=args.events or 600, duration=args.duration or 110.0)
        if args.http_timeout is not None or args.rate is not None:
            args.plan = replace(
                args.plan,
                http_timeout=args.http_timeout or args.plan.http_timeout,
                rate=args.rate or args.plan.rate,
            )
    else:
        args.plan = full_plan(
            events=args.events or 10_000,
            rate=args.rate or 12.0,
            duration=args.duration or 2700.0,
            http_timeout=args.http_timeout,
        )
    return args


class Run:
    """One chaos run: `execute()` returns the exit status."""

    def __init__(self, plan: Plan, args: argparse.Namespace) -> None:
        self.plan = plan
        self.args = args
        self.t0 = time.monotonic()
        self.deadline = self.t0 + plan.duration
        self.run_dir = Path(tempfile.mkdtemp(prefix="chaos-", dir="/tmp"))
        self.crm: FaultyCrm | None = None
        self.crm_server: Any = None
        self.stack: ChaosStack | None = None
        self.senders: Senders | None = None
        self.scenario: Scenario | None = None
        self.monitor: Monitor | None = None
        self.webhooks: list[Webhook] = []
        self.calm_at = self.drained_at = 0.0
        self.chaos_answers: tuple[int, Counter[int]] = (0, Counter())

    # -- the run --------------------------------------------------------------------------------

    def execute(self) -> int:
        plan = self.plan
        print(
            f"chaos run: {plan.events} events at {plan.rate:.1f}/s, {plan.workers} workers, "
            f"{len(plan.kills)} kill(s), CRM HTTP timeout {plan.http_timeout or 30:.0f} s; "
            f"dir {self.run_dir}",
            flush=True,
        )
        self.crm, self.crm_server = start_crm(
            fail_rate=plan.fail_rate,
            commit_then_fail_rate=plan.commit_then_fail_rate,
            hang_rate=plan.hang_rate,
            hang_seconds=plan.hang_seconds,
            seed=self.args.seed,
        )
        config = write_config(
            self.run_dir / "crmhub.yaml", crm_url=self.crm_server.url, data_dir=self.run_dir / "data"
        )
        self.webhooks = make_webhooks(load_config(config), plan.events, run_id=uuid.uuid4().hex[:8])
        self.stack = ChaosStack(self.run_dir, config, http_timeout=plan.http_timeout)
        self.stack.start(plan.workers)
        print(
            f"stack up in {time.monotonic() - self.t0:.1f} s: ingress {self.stack.base}, "
            f"workers {', '.join(self.stack.workers)}",
            flush=True,
        )
        self.senders = Senders(self.stack.base, self.webhooks, rate=plan.rate)
        self.scenario = Scenario(self.stack, self.crm, seed=self.args.seed)
        self.monitor = Monitor(
            self.stack, self.senders, self.crm, every=5.0 if self.args.short else 15.0, t0=self.t0
        )
        self.senders.start()
        self.scenario.t0 = self.t0
        self.monitor.start()
        self._timeline()
        self.senders.join(timeout=max(0.0, self.deadline - 30 - time.monotonic()))
        self.senders.stop()
        # The chaos phase is over: the CRM stops failing, the hub must converge.
        self.crm.calm()
        self.crm.release_hangs()
        self.calm_at = time.monotonic()
        self.chaos_answers = (self.crm.faults.calls, Counter(self.crm.faults.statuses))
        self.scenario.note(f"sending done: {len(self.senders.acks)} acknowledged; CRM faults off, draining")
        drained = self._drain()
        self.drained_at = time.monotonic()
        return self._verify(drained)

    def _timeline(self) -> None:
        assert self.senders is not None and self.scenario is not None
        plan, scenario = self.plan, self.scenario
        steps: list[tuple[float, str, float]] = [(t, "kill", 0.0) for t in plan.kills]
        steps += [
            (plan.restart_at, "restart", plan.restart_down),
            (plan.outage_at, "down", plan.outage_for),
            (plan.outage_at + plan.outage_for, "up", 0.0),
        ]
        steps += [(at, "burst", float(calls)) for at, calls in plan.bursts]
        steps += [(at, "hang", float(calls)) for at, calls in plan.hangs]
        for at, kind, value in sorted(steps):
            due = self.senders.started_at + at
            while time.monotonic() < due:
                if time.monotonic() > self.deadline - 30:
                    scenario.note(f"duration cap: skipping the rest of the timeline ({kind} at {at:.0f} s)")
                    if self.crm is not None:
                        self.crm.set_down(False)
                    return
                time.sleep(min(0.2, due - time.monotonic()))
            if kind == "kill":
                scenario.kill_worker()
            elif kind == "restart":
                scenario.restart_server(value)
            elif kind == "down":
                scenario.crm_down(value)
            elif kind == "up":
                scenario.crm_up()
            elif kind == "hang":
                scenario.hang(int(value))
            else:
                scenario.burst(int(value))

    def _drain(self) -> bool:
        """Wait until every acknowledged event is delivered or dead and nothing is parked
        or queued; False on the duration cap, or when nothing moved for STALL_SECONDS with no
        retry still due (a retry after many failures may legitimately be minutes away)."""
        assert self.stack is not None and self.senders is not None and self.scenario is not None
        client = self.stack.client(socket_timeout=5)
        ids = [a.event_id for a in self.senders.acks.values()]
        last: tuple[int, int, int] | None = None
        last_change = orphaned_since = time.monotonic()
        told = False
        while time.monotonic() < self.deadline - 10:
            statuses = event_statuses(client, ids)
            pending = sum(1 for s, _ in statuses.values() if s not in ("delivered", "dead"))
            parked = int(client.zcard(keys.retry_schedule()))
            queued = sum(int(client.llen(f"dramatiq:{q}")) for q in QUEUES)
            if pending == 0 and parked == 0 and queued == 0:
                self.scenario.note("drained: every acknowledged event is delivered or dead")
                client.close()
                return True
            held = sum(
                int(client.scard(f"dramatiq:__acks__.{w.broker_id}.{q}"))
                for w in self.stack.workers.values()
                for q in QUEUES
            )
            progress = (pending, parked, queued)
            if progress != last:
                last, last_change = progress, time.monotonic()
            if parked or queued or held:
                orphaned_since = time.monotonic()
            elif time.monotonic() - orphaned_since > ORPHAN_SECONDS:
                self.scenario.note(f"stuck: {pending} events pending and no message left to deliver them")
                break
            due_later = int(client.zcount(keys.retry_schedule(), f"({now_ms()}", "+inf"))
            if time.monotonic() - last_change > STALL_SECONDS and due_later and not told:
                (_, last_due), *_ = client.zrevrange(keys.retry_schedule(), 0, 0, withscores=True)
                self.scenario.note(
                    f"waiting for {due_later} parked retries, the last due in "
                    f"{(last_due - now_ms()) / 1000:.0f} s (retry backoff)"
                )
                told = True
            if time.monotonic() - last_change > STALL_SECONDS and not due_later:
                self.scenario.note(
                    f"stuck: {pending} events pending, {parked} parked, {queued} queued, "
                    f"nothing moved for {STALL_SECONDS:.0f} s"
                )
                break
            time.sleep(1.0)
        else:
            self.scenario.note("duration cap reached while draining")
        client.close()
        return False

    # -- the verdict ----------------------------------------------------------------------------

    def _verify(self, drained: bool) -> int:
        assert self.stack and self.senders and self.scenario and self.crm and self.monitor
        settle = time.monotonic() + 10
        while self.crm.faults.hangs_in_progress and time.monotonic() < settle:
            time.sleep(0.1)
        time.sleep(1.0)  # calls already on the wire finish
        self.monitor.stop()
        self.scenario.stop()
        self.stack.sample_rss()
        evidence = Evidence(
            plan=self.plan,
            webhooks=self.webhooks,
            senders=self.senders,
            crm=self.crm,
            scenario=self.scenario,
            stack=self.stack,
            monitor=self.monitor,
            t0=self.t0,
            calm_at=self.calm_at,
            drained_at=self.drained_at,
            drained=drained,
            max_rss_mib=self.args.max_rss_mib,
            chaos_answers=self.chaos_answers,
        )
        client = self.stack.client(socket_timeout=10)
        verdict = judge(evidence, client, time.monotonic())
        client.close()
        print(format_summary(verdict.sections, verdict.kills, verdict.checks), flush=True)
        if self.args.json:
            payload = {
                **verdict.numbers,
                "checks": [c.__dict__ for c in verdict.checks],
                "ok": verdict.ok,
                "correct": all(c.ok for c in verdict.checks if not c.timing),
            }
            self.args.json.write_text(json.dumps(payload, indent=2, default=str))
        if not verdict.ok or self.args.keep:
            print(f"logs and data kept in {self.run_dir}", flush=True)
        return 0 if verdict.ok else 1

    # -- cleanup --------------------------------------------------------------------------------

    def close(self, *, keep: bool) -> None:
        """Stop everything this run started; one step failing never skips the others."""
        steps = [part.stop for part in (self.senders, self.monitor, self.scenario) if part is not None]
        if self.crm is not None:
            steps.append(self.crm.release_hangs)
        if self.stack is not None:
            steps.append(self.stack.close)
        if self.crm_server is not None:
            steps.append(self.crm_server.stop)
        for step in steps:
            try:
                step()
            except Exception as exc:  # cleanup goes on: the processes must not outlive the run
                print(f"cleanup: {step.__qualname__} failed: {exc!r}", file=sys.stderr, flush=True)
        if not keep:
            shutil.rmtree(self.run_dir, ignore_errors=True)


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    run = Run(args.plan, args)
    status = 2
    try:
        status = run.execute()
    except KeyboardInterrupt:
        print("interrupted: stopping every process", file=sys.stderr, flush=True)
        status = 130
    except Exception as exc:  # the run itself broke: say where, keep the logs
        import traceback

        traceback.print_exc()
        print(f"chaos run could not complete: {exc}; logs in {run.run_dir}", file=sys.stderr, flush=True)
        status = 2
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the cleanup short
            signal.signal(sig, signal.SIG_IGN)
        run.close(keep=args.keep or status != 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
