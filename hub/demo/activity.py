"""What a company's people do in the demo world: who they are, the tickets they file, product usage.

Derived lazily and deterministically per company. A churner's warning window (from
`Company.warning_from` to its churn) is where tickets burst and turn negative, CSAT turns bad and
usage declines, so the signals precede the churn they announce.

    people(world, company)          -> [Person]                      (Zendesk users, SF contacts)
    support_tickets(world, company) -> [TicketPlan]
    usage_series(world, company)    -> UsageSeries (numpy arrays, one entry per day)
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from hub.demo import vocabulary as V
from hub.demo.world import DAY, Company, Fate, World, last_period_start

# usage relative to normal at the end of the warning window (the churn date), by fate
USAGE_FLOOR = {Fate.VOLUNTARY: 0.3, Fate.INVOLUNTARY: 0.85, Fate.CONTRACTION: 0.45, Fate.SILENT: 0.08,
               Fate.REACTIVATED: 0.3, Fate.RETAINED: 0.4}
TICKET_BURST = {Fate.VOLUNTARY: 3.5, Fate.CONTRACTION: 3.0, Fate.REACTIVATED: 3.0, Fate.INVOLUNTARY: 1.5,
                Fate.SILENT: 0.6, Fate.RETAINED: 3.0}
WEEKDAY_FACTOR = np.array([1.0, 1.0, 1.0, 1.0, 0.95, 0.25, 0.2])   # Monday first


@dataclass(frozen=True, slots=True)
class Person:
    first_name: str
    last_name: str
    email: str
    title: str

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"


@dataclass(slots=True)
class TicketPlan:
    created: int
    updated: int
    solved: int | None
    status: str
    priority: str | None
    type: str | None
    subject: str
    description: str
    requester: int                 # any number: the exporter takes it modulo len(people(company))
    agent: int                     # index into vocabulary.SUPPORT_AGENTS
    tags: list[str]
    csat: str | None               # good | bad | offered | None (not offered)
    csat_comment: str | None


@dataclass(frozen=True, slots=True)
class UsageSeries:
    days: np.ndarray               # unix day numbers (seconds // 86400), ascending, possibly with gaps
    active_users: np.ndarray
    logins: np.ndarray
    events: np.ndarray

    def mean_active_users(self, first_day: int, last_day: int) -> float:
        """Mean daily active users over [first_day, last_day], days without a row counting as 0."""
        mask = (self.days >= first_day) & (self.days <= last_day)
        return float(self.active_users[mask].sum()) / max(1, last_day - first_day + 1)


def people(world: World, company: Company) -> list[Person]:
    rng = world.rng(company, "people")
    count = 1 + min(3, company.seats // 8) + (rng.random() < 0.5)
    domains = [company.domain] + ([company.alt_domain] if company.alt_domain in company.zendesk_domains else [])
    tag = "" if company.keeps_domain else "." + company.name.split()[-1].lower()   # sisters share the domain
    result, taken = [], set()
    for i in range(count):
        first, last = rng.choice(V.FIRST_NAMES), rng.choice(V.LAST_NAMES)
        local = f"{first}.{last}".lower() + tag
        while local in taken:
            local += str(rng.randrange(10))
        taken.add(local)
        domain = domains[-1] if i == count - 1 and len(domains) > 1 else domains[0]
        result.append(Person(first, last, f"{local}@{domain}", rng.choice(V.TITLES)))
    return result


def active_until(company: Company, world: World) -> int:
    """When the company stopped being a customer (now for those still active)."""
    return company.event_at if company.churned and company.event_at is not None else world.now


def _in_warning(company: Company, t: float) -> bool:
    if company.warning_from is None or t < company.warning_from:
        return False
    end = company.event_at if company.event_at is not None and company.fate is not Fate.SILENT else None
    return end is None or t < end


def _rate_change_after(company: Company, t: float) -> float | None:
    """The next moment after `t` where the warning window starts or ends (the ticket rate changes)."""
    if company.warning_from is None:
        return None
    if t < company.warning_from:
        return float(company.warning_from)
    end = company.event_at if company.event_at is not None and company.fate is not Fate.SILENT else None
    return float(end) if end is not None and t < end else None


def _absent(company: Company, t: float) -> bool:
    """Between a cancellation and a reactivation nobody uses the product or files tickets."""
    return company.reactivated_at is not None and company.event_at is not None and \
        company.event_at <= t < company.reactivated_at


def support_tickets(world: World, company: Company) -> list[TicketPlan]:
    rng = world.rng(company, "tickets")
    per_second = (0.25 + 0.08 * company.seats ** 0.5) / 30 * (0.7 + company.propensity) / DAY
    t, end = float(max(company.created, world.start)), active_until(company, world)
    tickets: list[TicketPlan] = []
    while True:
        burst = TICKET_BURST[company.fate] if _in_warning(company, t) else 1.0
        step = rng.expovariate(per_second * burst)
        change = _rate_change_after(company, t)
        if change is not None and t + step > change:
            t = change   # the rate changes here: draw again from it (exact, the process is memoryless)
            continue
        t += step
        if t >= end:
            break
        if not _absent(company, t):
            tickets.append(_ticket(rng, world, company, int(t)))
    if company.requested_at is not None and rng.random() < 0.6 and company.requested_at < world.now:
        tickets.append(_ticket(rng, world, company, company.requested_at, cancel=True))
    if company.failing is not None and rng.random() < 0.5:
        first_fail = _failure_time(world, company)
        if first_fail is not None:
            tickets.append(_ticket(rng, world, company, first_fail + int(rng.uniform(2, 30) * 3600), payment=True))
    tickets.sort(key=lambda ticket: ticket.created)
    return tickets


def _failure_time(world: World, company: Company) -> int | None:
    anchor = company.reactivated_at or company.created
    until = company.event_at if company.fate is Fate.INVOLUNTARY and company.event_at else world.now
    renewal = last_period_start(anchor, company.interval, until)
    return renewal if renewal + 3 * 3600 < world.now else None


def _ticket(rng: random.Random, world: World, company: Company, created: int, *,
            cancel: bool = False, payment: bool = False) -> TicketPlan:
    unhappy = _in_warning(company, created)
    negative = cancel or rng.random() < (0.65 if unhappy else 0.06 + 0.1 * company.propensity)
    if cancel:
        subject, text = V.NEGATIVE_TICKETS[7]
    elif payment:
        subject, text = rng.choice(V.PAYMENT_TICKETS)
    else:
        subject, text = rng.choice(V.NEGATIVE_TICKETS if negative else V.NEUTRAL_TICKETS)
    description = text.format(product=V.PRODUCT, feature=rng.choice(V.FEATURES))
    priority = rng.choices(("urgent", "high", "normal", "low", None),
                           weights=(20, 45, 30, 5, 0) if negative else (2, 10, 60, 23, 5))[0]
    kind = rng.choices(("problem", "incident", "question", "task", None),
                       weights=(4, 3, 1, 1, 1) if negative else (1, 1, 6, 2, 1))[0]
    age_days = (world.now - created) / DAY
    hours_to_solve = rng.expovariate(1 / (40 if negative else 14))
    solved = created + int(hours_to_solve * 3600) + 600
    if solved > world.now or age_days < 7 and rng.random() < 0.7:
        status = rng.choice(("new", "open", "open", "pending", "hold")) if age_days < 3 else \
            rng.choice(("open", "pending", "pending", "hold"))
        solved_at, updated = None, min(world.now - 60, created + int(rng.uniform(0.1, 1) * (world.now - created)))
    else:
        closed = solved + 4 * DAY <= world.now and rng.random() < 0.6
        status, solved_at = ("closed" if closed else "solved"), solved
        updated = solved + 4 * DAY if closed else solved
    csat, comment = None, None
    if solved_at is not None and rng.random() < 0.5:
        if rng.random() < 0.6:
            bad = rng.random() < (0.6 if negative or unhappy else 0.08)
            csat = "bad" if bad else "good"
            comment = rng.choice(V.BAD_CSAT_COMMENTS if bad else V.GOOD_CSAT_COMMENTS)
        else:
            csat = "offered"
    tags = (["churn_risk"] if cancel else []) + (["billing"] if payment else []) + \
        (["escalated"] if negative and priority == "urgent" else [])
    return TicketPlan(created, max(updated, created), solved_at, status, priority, kind, subject, description,
                      rng.randrange(1 << 16), rng.randrange(len(V.SUPPORT_AGENTS)), tags, csat, comment)


def usage_series(world: World, company: Company) -> UsageSeries:
    """Daily product usage from the first observed day to yesterday (or the churn date)."""
    first = max(company.created, world.start) // DAY
    last = active_until(company, world) // DAY - 1
    days = np.arange(first, max(first, last + 1), dtype=np.int64)
    rng = np.random.default_rng([world.seed & 0xFFFFFFFF, company.index, 17])
    seconds = days * DAY
    level = np.ones(len(days))
    if company.warning_from is not None:
        end = company.event_at if company.event_at is not None and company.fate is not Fate.SILENT else world.now
        if company.fate is Fate.SILENT:
            end = company.warning_from + 60 * DAY   # decays over two months, then stays low
        floor = USAGE_FLOOR[company.fate]
        span = max(DAY, end - company.warning_from)
        progress = np.clip((seconds - company.warning_from) / span, 0.0, 1.0)
        level = 1.0 - (1.0 - floor) * progress
    if company.reactivated_at is not None and company.event_at is not None:
        keep = (seconds < company.event_at) | (seconds >= company.reactivated_at)
        days, seconds, level = days[keep], seconds[keep], level[keep]
        level[seconds >= company.reactivated_at] = 0.7
    wobble = np.repeat(rng.normal(1.0, 0.08, len(days) // 7 + 1), 7)[: len(days)]   # weekly ups and downs
    weekday = WEEKDAY_FACTOR[(days + 3) % 7]       # 1970-01-01 was a Thursday
    expected = company.seats * company.engagement * level * np.clip(wobble, 0.5, 1.5) * weekday
    active = np.minimum(rng.poisson(np.maximum(expected, 0.0)), company.seats + 2)
    logins = rng.poisson(active * 1.8)
    events = rng.poisson(logins * (6 + 14 * company.engagement))
    return UsageSeries(days, active, logins, events)
