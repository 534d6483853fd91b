"""The verdict of a run: every check (PASS/FAIL), the numbers behind them by section, and
one row per worker kill; from what the run gathered (`Evidence`) and the final state."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import redis

from chaos.crm import FaultyCrm
from chaos.monitor import Monitor
from chaos.payloads import Webhook
from chaos.plan import Plan
from chaos.probes import QUEUES, Kill
from chaos.report import Check
from chaos.scenario import Scenario
from chaos.senders import Senders
from chaos.stack import ChaosStack
from chaos.verify import Leftovers, Outcome, check_crm, event_statuses, leftovers

__all__ = ["RECONNECT_TARGET", "REDELIVERY_TARGET", "Evidence", "Verdict", "judge"]

#: Kill -> in-flight events delivered, seconds (the issue's target).
REDELIVERY_TARGET = 30.0
#: Server back -> ingress answers 200 / every worker heartbeats, seconds.
RECONNECT_TARGET = 30.0
#: Messages queued ahead of a kill's requeued ones beyond which their wait is the backlog's.
BACKLOG = 100


@dataclass
class Evidence:
    """Everything a run gathered, for the verdict."""

    plan: Plan
    webhooks: list[Webhook]
    senders: Senders
    crm: FaultyCrm
    scenario: Scenario
    stack: ChaosStack
    monitor: Monitor
    t0: float
    calm_at: float
    drained_at: float
    drained: bool
    max_rss_mib: float
    chaos_answers: tuple[int, Counter[int]]  #: CRM calls and answers until the faults stopped


@dataclass
class Verdict:
    checks: list[Check] = field(default_factory=list)
    kills: list[dict[str, Any]] = field(default_factory=list)
    sections: list[tuple[str, list[tuple[str, Any]]]] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def judge(ev: Evidence, client: redis.Redis, now: float) -> Verdict:
    acks = ev.senders.acks
    statuses = event_statuses(client, [a.event_id for a in acks.values()])
    by_status: dict[str, int] = {}
    for status, _ in statuses.values():
        by_status[status or "missing"] = by_status.get(status or "missing", 0) + 1
    dead = {e for e, (s, _) in statuses.items() if s == "dead"}
    left = leftovers(client, [w.broker_id for w in ev.stack.workers.values()], QUEUES)
    outcome = check_crm(ev.crm.fake, ev.webhooks, acks, dead)
    parked_left = ev.scenario.parked_left(client)
    peak = (
        max((w.peak_rss_kib for w in [*ev.stack.workers.values(), *ev.stack.dead_workers]), default=0) / 1024
    )

    verdict = Verdict(kills=[_kill_row(ev, k) for k in ev.scenario.kills])
    verdict.checks += _delivery_checks(ev, statuses, by_status, dead, left, outcome)
    verdict.checks += _kill_checks(verdict.kills)
    verdict.checks += _restart_checks(ev, parked_left)
    verdict.checks += _end_checks(ev, left, peak)
    verdict.sections = _sections(ev, by_status, outcome, left, peak, parked_left, now)
    verdict.numbers = _numbers(ev, by_status, outcome, left, peak, verdict.kills, parked_left, now)
    return verdict


# -- checks --------------------------------------------------------------------------------------


def _delivery_checks(
    ev: Evidence,
    statuses: dict[str, tuple[str, str]],
    by_status: dict[str, int],
    dead: set[str],
    left: Leftovers,
    outcome: Outcome,
) -> list[Check]:
    total, acked, stats = len(ev.webhooks), len(ev.senders.acks), ev.senders.stats
    stuck = {e: s for e, s in statuses.items() if s[0] not in ("delivered", "dead")}
    reasons = {d["event_id"]: d["reason"] for d in left.dead_letters}
    unexplained = [e for e in dead if not reasons.get(e) or not statuses[e][1]]
    checks = [
        Check(
            "every webhook acknowledged (200)",
            acked == total and not stats.rejected,
            f"{acked}/{total} acknowledged, {len(stats.rejected)} rejected, {len(stats.gave_up)} given up",
        ),
        Check(
            "every acknowledged event delivered or dead",
            not stuck,
            f"{by_status}" + (f"; e.g. {_examples(stuck)}" if stuck else ""),
        ),
        Check(
            "every dead event has a dead letter with its reason",
            not unexplained,
            f"{len(dead)} dead, {len(unexplained)} without a reason",
        ),
    ]
    for kind in ("contacts", "deals", "notes"):
        checks.append(
            Check(
                f"{kind} exactly once",
                not outcome.missing[kind] and not outcome.duplicates[kind] and not outcome.unexpected[kind],
                f"expected {outcome.expected[kind]}, present {outcome.found[kind]}, "
                f"missing {outcome.missing[kind]}, duplicates {outcome.duplicates[kind]}, "
                f"unexpected {outcome.unexpected[kind]}",
            )
        )
    checks.append(
        Check(
            "associations (deal->contact, note->contact, note->deal)",
            not sum(outcome.missing_links.values()),
            f"missing {dict(outcome.missing_links) or 0}"
            + (f"; {outcome.examples[:3]}" if outcome.examples else ""),
        )
    )
    return checks


def _kill_row(ev: Evidence, kill: Kill) -> dict[str, Any]:
    """One kill's numbers and what else happened between the kill and its delivery (a
    server restart, a CRM outage, a hung call carrying its events, a 429: each delays
    delivery for reasons other than redelivery)."""
    disturbed = []
    until = kill.at + (kill.delivered_after if kill.delivered_after is not None else REDELIVERY_TARGET)
    restart = ev.scenario.restart
    if restart.down_at and restart.down_at < kill.at + REDELIVERY_TARGET and restart.up_at + 5 > kill.at:
        disturbed.append("server restart")
    if any(start < until and start + seconds > kill.at for start, seconds in ev.scenario.outages):
        disturbed.append("CRM outage")
    marks = _marks(ev, kill)
    hung = sum(
        1 for at, body in ev.crm.faults.hangs if kill.at <= at <= until and any(m in body for m in marks)
    )
    if hung:
        disturbed.append(f"{hung} hung call(s) with its events")
    if kill.queued_at_requeue > BACKLOG:
        disturbed.append(f"backlog of {kill.queued_at_requeue}")
    # A 429 slows the whole account down (the rate governor) for up to a minute or so.
    limited = sum(1 for at in ev.crm.faults.rate_limited_at if kill.at - 30 <= at <= until)
    if limited:
        disturbed.append(f"{limited} x 429")
    return {
        "worker": kill.worker,
        "at": kill.at - ev.senders.started_at,
        "inflight": len(kill.inflight),
        "queued": kill.queue_depth,
        "queued_at_requeue": kill.queued_at_requeue,
        "requeued_after": kill.requeued_after,
        "redelivered_after": kill.redelivered_after,
        "run_after": kill.run_after,
        "delivered_after": kill.delivered_after,
        "undelivered": kill.undelivered,
        "disturbed_by": disturbed,
        "inflight_events": sorted(kill.inflight)[:20],
    }


def _marks(ev: Evidence, kill: Kill) -> list[bytes]:
    """Byte strings by which a CRM request names one of the kill's in-flight events."""
    index_of = {a.event_id: a.index for a in ev.senders.acks.values()}
    marks = []
    for event_id in kill.inflight:
        if event_id in index_of:
            expected = ev.webhooks[index_of[event_id]].expected
            marks += [m.lower().encode() for m in (expected.email, *expected.deal_keys, *expected.note_keys)]
    return marks


def _kill_checks(kills: list[dict[str, Any]]) -> list[Check]:
    if not kills:
        return [Check("worker kills", False, "no worker was killed (duration cap?)")]
    target = REDELIVERY_TARGET

    def late(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
        return [k for k in rows if k["inflight"] and (k[key] is None or k[key] > target)]

    busy = [k for k in kills if k["inflight"]]
    # Redelivery proper: no server restart, no queue backlog, and no 429 (the rate governor
    # then stalls every delivery thread, so live workers fetch nothing new for a while).
    no_restart = [k for k in kills if not any(_blocks_redelivery(d) for d in k["disturbed_by"])]
    clear = [k for k in kills if not k["disturbed_by"]]
    delivered = [k["delivered_after"] for k in busy if k["delivered_after"] is not None]
    redelivered = [k["redelivered_after"] for k in busy if k["redelivered_after"] is not None]
    return [
        Check(
            "killed workers' messages requeued",
            all(k["requeued_after"] is not None for k in kills),
            f"{sum(k['requeued_after'] is None for k in kills)} of {len(kills)} kills never requeued",
        ),
        Check(
            f"killed workers' messages requeued < {target:.0f} s",
            not late(kills, "requeued_after"),
            f"{len(kills)} kills ({len(busy)} with events in flight), "
            f"max {_max(k['requeued_after'] for k in kills)} s, "
            f"median {_median([k['requeued_after'] for k in busy if k['requeued_after'] is not None])} s",
            timing=True,
        ),
        Check(
            f"killed workers' messages redelivered to a live worker < {target:.0f} s",
            not late(no_restart, "redelivered_after"),
            f"{len([k for k in no_restart if k['inflight']])} kills without restart, backlog or 429, "
            f"max {_max(k['redelivered_after'] for k in no_restart)} s; "
            f"over all kills max {_max(redelivered)} s, "
            f"median {_median(redelivered)} s",
            timing=True,
        ),
        Check(
            f"in-flight events delivered < {target:.0f} s after the kill (kills without other faults)",
            not late(clear, "delivered_after"),
            f"{len([k for k in clear if k['inflight']])} such kills, "
            f"max {_max(k['delivered_after'] for k in clear)} s; "
            f"over all kills max {_max(delivered)} s, median {_median(delivered)} s",
            timing=True,
        ),
        Check(
            "in-flight events of every kill delivered in the end",
            all(k["undelivered"] == 0 for k in kills),
            f"{sum(k['undelivered'] for k in kills)} not delivered",
        ),
    ]


def _blocks_redelivery(disturbance: str) -> bool:
    return (
        disturbance == "server restart" or disturbance.startswith("backlog") or disturbance.endswith("x 429")
    )


def _restart_checks(ev: Evidence, parked_left: int) -> list[Check]:
    restart = ev.scenario.restart
    if not restart.up_at:
        return [Check("server restart", False, "the server was not restarted (duration cap?)")]
    ingress = _ingress_back(ev)
    probe = restart.probe
    workers = {} if probe is None else probe.reconnected_after
    expected = [] if probe is None else list(probe.broker_ids)
    killed = {k.worker for k in ev.scenario.kills if k.at > restart.up_at}
    missing = [n for n in expected if n not in workers and n not in killed]
    slow = [n for n, s in workers.items() if s > RECONNECT_TARGET]
    return [
        Check(
            "ingress answers 200 again after the server restart",
            ingress is not None,
            f"{_fmt(ingress)} s after the server was back",
        ),
        Check(
            "every worker reconnects after the server restart",
            not missing,
            ", ".join(f"{n} {s:.1f} s" for n, s in sorted(workers.items()))
            + (f"; never: {missing}" if missing else ""),
        ),
        Check(
            f"ingress and workers back < {RECONNECT_TARGET:.0f} s after the server restart",
            (ingress is None or ingress <= RECONNECT_TARGET) and not slow,
            f"ingress {_fmt(ingress)} s, slowest worker {_max(workers.values())} s",
            timing=True,
        ),
        Check(
            "retries parked before the restart all pumped (dramatiq #527)",
            parked_left == 0,
            f"{len(restart.parked_before)} parked at the restart, {parked_left} still parked at the end",
        ),
    ]


def _end_checks(ev: Evidence, left: Leftovers, peak: float) -> list[Check]:
    stranded = (
        left.retry_parked
        or left.statuses.get("failed")
        or left.statuses.get("received")
        or left.statuses.get("mapped")
        or sum(left.queued.values())
        or left.dramatiq_dead
        or left.dramatiq_delayed
        or left.unacked
    )
    exits = ev.stack.unexpected_exits()
    return [
        Check(
            "nothing left in Redis",
            not stranded,
            f"crmhub:retry {left.retry_parked}, failed {left.statuses.get('failed')}, "
            f"received {left.statuses.get('received')}, mapped {left.statuses.get('mapped')}, "
            f"queued {sum(left.queued.values())}, dramatiq XQ {left.dramatiq_dead}, "
            f"DQ {left.dramatiq_delayed}, unacked {left.unacked}",
        ),
        Check("drained in time", ev.drained, "yes" if ev.drained else "no (cap or stall)"),
        Check("no process died unexpectedly", not exits, ", ".join(exits) or "none"),
        Check(
            "worker peak RSS (VmHWM)", peak <= ev.max_rss_mib, f"{peak:.0f} MiB (limit {ev.max_rss_mib:.0f})"
        ),
    ]


# -- numbers -------------------------------------------------------------------------------------


def _ingress_back(ev: Evidence) -> float | None:
    restart = ev.scenario.restart
    first = ev.senders.first_ack_after(restart.up_at) if restart.up_at else None
    return None if first is None else first - restart.up_at


def _sections(
    ev: Evidence,
    by_status: dict[str, int],
    outcome: Outcome,
    left: Leftovers,
    peak: float,
    parked_left: int,
    now: float,
) -> list[tuple[str, list[tuple[str, Any]]]]:
    senders, faults, restart, fake = ev.senders, ev.crm.faults, ev.scenario.restart, ev.crm.fake
    calls = max(faults.calls, 1)
    failed = ev.chaos_answers[1]
    answered = ev.chaos_answers[0] - failed[503] - failed[429]  # not while down or rate limited
    unavailable = [t for t in senders.stats.unavailable_at if restart.down_at <= t <= restart.up_at + 30]
    probe = restart.probe
    sent_for = (senders.finished_at or now) - senders.started_at
    by_source: dict[str, int] = {}
    for index in senders.acks:
        key = f"{ev.webhooks[index].instance_id}.{ev.webhooks[index].event_type}"
        by_source[key] = by_source.get(key, 0) + 1
    per_worker = {
        w.name: round(w.peak_rss_kib / 1024) for w in [*ev.stack.dead_workers, *ev.stack.workers.values()]
    }
    return [
        (
            "run",
            [
                ("events", f"{len(senders.acks)} acknowledged of {len(ev.webhooks)} sent ({by_source})"),
                (
                    "time",
                    f"{now - ev.t0:.0f} s total, sending {sent_for:.0f} s at {ev.plan.rate:.1f}/s, "
                    f"drain after the faults stopped {ev.drained_at - ev.calm_at:.0f} s",
                ),
                (
                    "workers",
                    f"{ev.plan.workers} at a time, "
                    f"{len(ev.stack.dead_workers) + len(ev.stack.workers)} started",
                ),
                ("ingress answers", dict(senders.stats.statuses)),
                ("sender connection errors", senders.stats.connection_errors),
                ("sender re-sends", sum(a.attempts - 1 for a in senders.acks.values())),
                ("duplicate acks (re-sent, already stored)", sum(a.duplicate for a in senders.acks.values())),
            ],
        ),
        (
            "outcome",
            [
                ("event statuses", by_status),
                (
                    "dead letters",
                    f"{len(left.dead_letters)}"
                    + (f", e.g. {left.dead_letters[0]['reason'][:120]}" if left.dead_letters else ""),
                ),
                (
                    "CRM records",
                    f"contacts {len(fake.contacts)}, deals {len(fake.deals)}, notes {len(fake.notes)}",
                ),
                ("missing / duplicate", f"{dict(outcome.missing) or 0} / {dict(outcome.duplicates) or 0}"),
            ],
        ),
        (
            "CRM faults",
            [
                ("calls", faults.calls),
                ("answers", dict(sorted(faults.statuses.items()))),
                (
                    "500 before work / 504 after commit, while faults were on",
                    f"{failed[500]} / {failed[504]} of {answered} calls answered while up "
                    f"({(failed[500] + failed[504]) / max(answered, 1):.1%} 5xx)",
                ),
                ("429 injected / the fake's own", f"{faults.burst_429} / {dict(faults.own_429) or 0}"),
                (
                    "hung past the client timeout",
                    f"{len(faults.hangs)} ({len(faults.hangs) / calls:.1%}), answer "
                    f"held {ev.plan.hang_seconds:.0f} s (timeout {ev.plan.http_timeout or 30:.0f} s)",
                ),
                ("outages / 503 while down", f"{len(ev.scenario.outages)} / {faults.outage_503}"),
            ],
        ),
        (
            "server restart",
            [
                ("down for", f"{restart.up_at - restart.down_at:.1f} s" if restart.up_at else "-"),
                ("ingress 503s / connection errors seen by senders", len(unavailable)),
                ("ingress first 200 after restart", f"{_fmt(_ingress_back(ev))} s"),
                (
                    "workers heartbeating again after",
                    {n: round(s, 1) for n, s in (probe.reconnected_after if probe else {}).items()},
                ),
                ("retries parked at restart / left at end", f"{len(restart.parked_before)} / {parked_left}"),
                ("max parked / max overdue > 10 s", f"{ev.monitor.max_parked} / {ev.monitor.max_overdue}"),
            ],
        ),
        ("memory", [("worker peak RSS (VmHWM) max", f"{peak:.0f} MiB"), ("per worker (MiB)", per_worker)]),
    ]


def _numbers(
    ev: Evidence,
    by_status: dict[str, int],
    outcome: Outcome,
    left: Leftovers,
    peak: float,
    kills: list[dict[str, Any]],
    parked_left: int,
    now: float,
) -> dict[str, Any]:
    busy = [k for k in kills if k["inflight"]]
    probe, faults = ev.scenario.restart.probe, ev.crm.faults
    return {
        "events": len(ev.webhooks),
        "acknowledged": len(ev.senders.acks),
        "statuses": by_status,
        "dead_letters": len(left.dead_letters),
        "missing": dict(outcome.missing),
        "duplicates": dict(outcome.duplicates),
        "unexpected": dict(outcome.unexpected),
        "missing_links": dict(outcome.missing_links),
        "kills": kills,
        "requeue_max_s": _top(k["requeued_after"] for k in kills),
        "redelivery_max_s": _top(k["redelivered_after"] for k in busy),
        "kill_to_delivered_max_s": _top(k["delivered_after"] for k in busy),
        "ingress_reconnect_s": _ingress_back(ev),
        "worker_reconnect_s": dict(probe.reconnected_after) if probe else {},
        "retry_parked_end": left.retry_parked,
        "parked_left_after_restart": parked_left,
        "peak_rss_mib": round(peak, 1),
        "elapsed_s": round(now - ev.t0, 1),
        "drain_s": round(ev.drained_at - ev.calm_at, 1),
        "crm": {
            "calls": faults.calls,
            "statuses": dict(faults.statuses),
            "hangs": len(faults.hangs),
            "burst_429": faults.burst_429,
            "own_429": dict(faults.own_429),
            "outage_503": faults.outage_503,
        },
    }


def _examples(stuck: dict[str, tuple[str, str]]) -> str:
    return "; ".join(f"{e} {s} {err[:100]!r}" for e, (s, err) in list(stuck.items())[:3])


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _top(values: Any) -> float | None:
    found = [v for v in values if v is not None]
    return max(found) if found else None


def _max(values: Any) -> str:
    return _fmt(_top(values))


def _median(values: list[float]) -> str:
    return _fmt(sorted(values)[len(values) // 2]) if values else "-"
