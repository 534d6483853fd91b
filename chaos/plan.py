"""What a run does and when: the event count and send rate, and the fault timeline in
seconds from the first webhook (kills, the server restart, the CRM outage, 429 bursts)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Plan", "full_plan", "short_plan"]


@dataclass(frozen=True)
class Plan:
    events: int
    rate: float  #: webhooks started per second
    workers: int
    kills: tuple[float, ...]
    restart_at: float
    restart_down: float  #: seconds the server stays stopped
    outage_at: float
    outage_for: float
    bursts: tuple[tuple[float, int], ...]  #: (at, calls): the next `calls` CRM calls answered 429
    hangs: tuple[tuple[float, int], ...]  #: (at, calls): the next `calls` CRM calls hang (besides hang_rate)
    fail_rate: float  #: CRM 500 before any work
    commit_then_fail_rate: float  #: CRM write done, then 504
    hang_rate: float  #: CRM calls that hang past the client timeout
    http_timeout: float | None  #: None: the hub's own (30 s)
    duration: float  #: cap on the whole run, seconds

    @property
    def send_seconds(self) -> float:
        return self.events / self.rate

    @property
    def hang_seconds(self) -> float:
        return (self.http_timeout or 30.0) + 5.0


def short_plan(*, events: int = 600, duration: float = 110.0) -> Plan:
    """~80 s, all while sending: a 10 s CRM outage, the server restart right after it (its
    failed deliveries parked in crmhub:retry), a hung call, a 429 burst, then one kill."""
    rate = events / 45.0
    return Plan(
        events=events,
        rate=rate,
        workers=2,
        kills=(24.0,),
        restart_at=16.0,
        restart_down=2.0,
        outage_at=5.0,
        outage_for=10.0,
        bursts=((21.0, 2),),
        hangs=((19.0, 1),),
        fail_rate=0.05,
        commit_then_fail_rate=0.10,
        hang_rate=0.02,
        http_timeout=5.0,
        duration=duration,
    )


def full_plan(
    *, events: int = 10_000, rate: float = 12.0, duration: float = 2700.0, http_timeout: float | None = None
) -> Plan:
    """Kills every 20 s while sending; the 60 s CRM outage at 55 % of the sending time and
    the server restart 2 s after it (its failed deliveries parked in crmhub:retry); a burst
    of two 429s every 90 s."""
    send = events / rate
    kills = tuple(float(t) for t in range(10, int(send), 20))
    bursts = tuple((float(t), 2) for t in range(45, int(send), 90))
    return Plan(
        events=events,
        rate=rate,
        workers=2,
        kills=kills,
        restart_at=round(send * 0.55 + 62, 1),
        restart_down=3.0,
        outage_at=round(send * 0.55, 1),
        outage_for=60.0,
        bursts=bursts,
        hangs=(),
        fail_rate=0.05,
        commit_then_fail_rate=0.10,
        hang_rate=0.02,
        http_timeout=http_timeout,
        duration=duration,
    )
