"""The demo world: one SaaS vendor's customers, seeded and deterministic, before any API shape.

    world = generate_world(customers=500, seed=7)          # now = DEFAULT_NOW unless given
    world.companies[0].fate, world.companies[0].sf_id

A `Company` holds what is true about a customer (its size, plan, hidden churn propensity, fate and
the dates that drive its story) and how messy its identity is in each system (website spelling,
Zendesk domains and external id, the Stripe email and metadata link). Per-company histories
(invoices, tickets, usage) are derived lazily from `World.rng(company, topic)` in `timeline.py`
and `activity.py`, so a world of 100,000 customers stays a list of small objects.

The propensity drives everything: churners get a warning window before their churn date in which
usage declines, tickets burst, CSAT and NPS turn bad and payments fail. Some retained customers are
in such a window right now (`at_risk`): heading for a churn that has not happened yet.
"""

from __future__ import annotations

import calendar
import hashlib
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from hub.demo import vocabulary as V

DAY = 86_400
DEFAULT_NOW = datetime(2026, 1, 1, tzinfo=UTC)
DEFAULT_CUSTOMERS = 500
DEFAULT_SEED = 7
HISTORY_DAYS = 540                 # 18 months of invoices, tickets and usage end at `now`
RETRY_SCHEDULE_DAYS = (0, 3, 8, 15)  # Smart-Retries-like attempts after a renewal fails
MIN_OBSERVED_DAYS = 100            # a churner is observed this long before churning


class Fate(StrEnum):
    RETAINED = "retained"
    VOLUNTARY = "voluntary"        # canceled on request, with feedback
    INVOLUNTARY = "involuntary"    # renewal kept failing -> canceled with reason payment_failed
    CONTRACTION = "contraction"    # downgraded (fewer seats or a cheaper plan)
    SILENT = "silent"              # usage decays while the subscription keeps paying
    REACTIVATED = "reactivated"    # canceled on request, came back on a new subscription


@dataclass(frozen=True)
class Plan:
    key: str
    name: str
    monthly_per_seat: int          # cents
    annual_per_seat: int           # cents
    min_seats: int
    max_seats: int


PLANS = {p.key: p for p in (
    Plan("starter", "Lumen Starter", 2_900, 29_000, 1, 5),
    Plan("growth", "Lumen Growth", 5_900, 59_000, 3, 40),
    Plan("business", "Lumen Business", 9_900, 99_000, 10, 250),
)}
CHEAPER_PLAN = {"business": "growth", "growth": "starter"}

DECLINE_CODES = ("insufficient_funds", "expired_card", "do_not_honor", "generic_decline",
                 "lost_card", "stolen_card", "fraudulent")
DECLINE_WEIGHTS = (35, 20, 15, 15, 5, 5, 5)
FEEDBACK = ("too_expensive", "missing_features", "switched_service", "unused", "customer_service",
            "too_complex", "low_quality", "other")
FEEDBACK_WEIGHTS = (26, 16, 16, 14, 9, 8, 6, 5)
CHURN_TYPE_WEIGHTS = {Fate.VOLUNTARY: 40, Fate.INVOLUNTARY: 18, Fate.CONTRACTION: 17, Fate.SILENT: 17,
                      Fate.REACTIVATED: 8}

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SF_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_TOKEN_ALPHABET = bytes(ord(_BASE62[byte % 62]) for byte in range(256))   # byte -> base62 character


@dataclass(slots=True)
class Company:
    index: int
    name: str
    domain: str
    alt_domain: str
    industry: str
    country: str
    employees: int
    created: int                   # unix seconds: the subscription started (the billing anchor)
    owner: int                     # index into vocabulary.CRM_USERS
    plan: str
    interval: str                  # month | year
    seats: int
    engagement: float              # share of seats active on a normal weekday
    propensity: float              # hidden: how likely this customer is to churn
    fate: Fate = Fate.RETAINED
    event_at: int | None = None    # churn/downgrade takes effect; silent: usage decay starts
    warning_from: int | None = None
    requested_at: int | None = None  # a voluntary cancellation was asked for
    feedback: str | None = None
    reactivated_at: int | None = None
    new_seats: int | None = None   # contraction: seats after the downgrade
    new_plan: str | None = None    # contraction: plan after the downgrade
    failing: str | None = None     # decline code of the invoice failing right now
    paused_from: int | None = None
    pending_cancel_at: int | None = None  # active, cancel_at_period_end requested at this time
    coupon: str | None = None
    nps: int | None = None
    nps_at: int | None = None
    # identity, as messy as each system has it
    sf_id: str = ""
    website: str | None = None
    zendesk: bool = True
    zendesk_external_id: str | None = None
    zendesk_domains: tuple[str, ...] = ()
    stripe_email: str = ""
    stripe_link: str | None = None  # metadata.salesforce_account_id as written (15 or 18 chars)
    sister_of: int | None = None   # shares its domain with that company: a true identity conflict
    keeps_domain: bool = True      # of two sisters, the one whose Zendesk organization maps the domain

    @property
    def churned(self) -> bool:
        """Without an active subscription at `now`."""
        return self.fate in (Fate.VOLUNTARY, Fate.INVOLUNTARY)

    @property
    def at_risk(self) -> bool:
        """Live, with warning signs showing now (heading out, about to cancel, failing or fading)."""
        if self.churned:
            return False
        heading_out = self.fate is Fate.RETAINED and self.warning_from is not None   # pending cancels too
        return heading_out or self.fate is Fate.SILENT or self.failing is not None

    @property
    def free_mail_payer(self) -> bool:
        return self.stripe_email.endswith("@gmail.com")


@dataclass
class World:
    seed: int
    now: int                       # unix seconds
    companies: list[Company] = field(default_factory=list)

    @property
    def start(self) -> int:
        return self.now - HISTORY_DAYS * DAY

    @property
    def now_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)

    def rng(self, company: Company, topic: str) -> random.Random:
        """An RNG for one company and one topic: histories do not depend on generation order."""
        return random.Random(f"{self.seed}:{company.index}:{topic}")

    def __len__(self) -> int:
        return len(self.companies)


# --- ids -------------------------------------------------------------------------------------

def salesforce_id(prefix: str, number: int, salt: int) -> str:
    """A valid 18-character Salesforce id (15 characters + the case-safe checksum suffix)."""
    value = (number * 1_000_003 + salt) % 62 ** 6
    body = "".join(_BASE62[(value // 62 ** i) % 62] for i in range(5, -1, -1))
    return with_checksum(f"{prefix}Dn0000{body}")


def with_checksum(id15: str) -> str:
    suffix = "".join(
        _SF_SUFFIX[sum(1 << i for i, char in enumerate(id15[start:start + 5]) if "A" <= char <= "Z")]
        for start in (0, 5, 10))
    return id15 + suffix


def token(seed: int, *parts: object, length: int = 14) -> str:
    """A deterministic random-looking id part, e.g. the `NffrFeUfNV2Hib` of `cus_NffrFeUfNV2Hib`."""
    digest = hashlib.blake2b(":".join(map(str, (seed, *parts))).encode(), digest_size=max(16, length)).digest()
    return digest[:length].translate(_TOKEN_ALPHABET).decode()


def add_months(timestamp: int, months: int) -> int:
    """The same day-of-month and time `months` later (clamped to the month's last day)."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    month0 = moment.month - 1 + months
    year, month = moment.year + month0 // 12, month0 % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())


def period_index(anchor: int, interval: str, moment: int) -> int:
    """The number of the billing period containing `moment` (0: the one starting at `anchor`)."""
    start, at = datetime.fromtimestamp(anchor, UTC), datetime.fromtimestamp(moment, UTC)
    step = 12 if interval == "year" else 1
    k = max(0, ((at.year - start.year) * 12 + at.month - start.month) // step)
    while k > 0 and add_months(anchor, k * step) > moment:
        k -= 1
    return k


def period_starts(anchor: int, interval: str, until: int, since: int | None = None) -> list[int]:
    """Billing period starts from `anchor` up to `until` (inclusive), those before `since` left out."""
    step = 12 if interval == "year" else 1
    k = period_index(anchor, interval, since) if since is not None and since > anchor else 0
    starts = []
    while (moment := add_months(anchor, k * step)) <= until:
        if since is None or moment >= since:
            starts.append(moment)
        k += 1
    return starts


def last_period_start(anchor: int, interval: str, moment: int) -> int:
    return add_months(anchor, period_index(anchor, interval, moment) * (12 if interval == "year" else 1))


def period_end(anchor: int, interval: str, start: int) -> int:
    """The end of the billing period that begins at `start` (counted from the anchor, so the 31st stays)."""
    return add_months(anchor, (period_index(anchor, interval, start) + 1) * (12 if interval == "year" else 1))


# --- generation ------------------------------------------------------------------------------

def generate_world(customers: int = DEFAULT_CUSTOMERS, seed: int = DEFAULT_SEED,
                   now: datetime | None = None) -> World:
    """A world of `customers` companies; the same arguments always give the same world."""
    if customers < 1:
        raise ValueError("a world needs at least one customer")
    moment = now or DEFAULT_NOW
    if moment.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    world = World(seed=seed, now=int(moment.timestamp()))
    rng = random.Random(f"churnhub-demo:{seed}")
    salt = rng.randrange(62 ** 6)
    names: set[str] = set()
    domains: set[str] = set()
    for index in range(customers):
        company = _company(rng, index, world, names, domains)
        company.sf_id = salesforce_id("001", index, salt)
        world.companies.append(company)
    _add_sister_conflicts(rng, world, names)
    for company in world.companies:
        _assign_fate(rng, company, world)
        _assign_identity(rng, company)
        _assign_nps(rng, company, world)
    return world


def _unique_name(rng: random.Random, taken: set[str]) -> str:
    name = f"{rng.choice(V.NAME_FIRST)} {rng.choice(V.NAME_SECOND)} {rng.choice(V.NAME_THIRD)}"
    candidate, n = name, 1
    while candidate in taken:
        extra = V.DISAMBIGUATORS[(n - 1) % len(V.DISAMBIGUATORS)]
        candidate = f"{name} {extra}" if n <= len(V.DISAMBIGUATORS) else f"{name} {extra} {n}"
        n += 1
    taken.add(candidate)
    return candidate


def _unique_domain(rng: random.Random, name: str, taken: set[str]) -> str:
    words = [w.lower() for w in name.split() if w.isalpha()]
    stem = "".join(words[:2]) if rng.random() < 0.6 else "-".join(words[:3])
    tld = rng.choice(V.TLDS)
    candidate, n = f"{stem}.{tld}", 2
    while candidate in taken:
        candidate = f"{stem}{n}.{tld}"
        n += 1
    taken.add(candidate)
    return candidate


def _company(rng: random.Random, index: int, world: World, names: set[str], domains: set[str]) -> Company:
    name = _unique_name(rng, names)
    domain = _unique_domain(rng, name, domains)
    stem, tld = domain.rsplit(".", 1)
    alt_domain = f"{stem}.{'io' if tld != 'io' else 'com'}"
    employees = max(2, int(rng.lognormvariate(3.6, 1.3)))
    plan_key = rng.choices(("starter", "growth", "business"),
                           weights=(7, 3, 0.5) if employees < 30 else (2, 6, 3) if employees < 300 else (0.5, 4, 6))[0]
    plan = PLANS[plan_key]
    seats = min(plan.max_seats, max(plan.min_seats, int(employees * rng.uniform(0.05, 0.4))))
    if rng.random() < 0.55:   # a long-time customer: signed up before the 18 months of history
        created = world.start - int(rng.uniform(1, 900) * DAY)
    else:
        created = world.start + int(rng.uniform(0, HISTORY_DAYS - 45) * DAY)
    created = created - created % 3600 + rng.randrange(3600)
    propensity = rng.betavariate(2, 5)
    return Company(
        index=index, name=name, domain=domain, alt_domain=alt_domain, industry=rng.choice(V.INDUSTRIES),
        country=rng.choice(V.COUNTRIES), employees=employees, created=created,
        owner=rng.randrange(len(V.CRM_USERS)), plan=plan_key,
        interval="year" if rng.random() < 0.25 else "month", seats=seats,
        engagement=min(0.95, max(0.15, rng.gauss(0.8 - 0.6 * propensity, 0.08))), propensity=propensity)


def _add_sister_conflicts(rng: random.Random, world: World, names: set[str]) -> None:
    """A few sister companies share one domain (two Salesforce accounts with the same website)."""
    if len(world.companies) < 10:
        return
    pairs = max(1, len(world.companies) // 200)
    chosen = rng.sample(range(len(world.companies)), 2 * pairs)
    for parent_index, sister_index in zip(chosen[::2], chosen[1::2], strict=True):
        parent, sister = world.companies[parent_index], world.companies[sister_index]
        root = " ".join(parent.name.split()[:2])
        candidate, n = f"{root} {rng.choice(V.DIVISIONS)}", 2
        while candidate in names:
            candidate = f"{root} {V.DIVISIONS[n % len(V.DIVISIONS)]} {n}"
            n += 1
        names.add(candidate)
        sister.name, sister.domain, sister.alt_domain = candidate, parent.domain, parent.alt_domain
        sister.sister_of, parent.sister_of, sister.keeps_domain = parent.index, sister.index, False


def _boundaries(company: Company, world: World, earliest: int, latest: int) -> list[int]:
    return [b for b in period_starts(company.created, company.interval, latest, since=earliest) if b > company.created]


def _assign_fate(rng: random.Random, company: Company, world: World) -> None:
    p = company.propensity
    observed_from = max(company.created, world.start) + MIN_OBSERVED_DAYS * DAY
    if rng.random() < min(0.9, p * 0.95):
        fate = rng.choices(list(CHURN_TYPE_WEIGHTS), weights=list(CHURN_TYPE_WEIGHTS.values()))[0]
        if fate is Fate.SILENT:
            onset = world.now - int(rng.uniform(75, 200) * DAY)
            if onset >= company.created + 60 * DAY:
                company.fate, company.event_at, company.warning_from = fate, onset, onset
        else:
            last = world.now - (20 if fate is Fate.INVOLUNTARY else 2) * DAY
            if fate is Fate.REACTIVATED:
                last = world.now - 70 * DAY
            candidates = _boundaries(company, world, observed_from, last)
            if candidates:
                _churn_at(rng, company, fate, rng.choice(candidates), world)
    if company.fate in (Fate.RETAINED, Fate.SILENT, Fate.CONTRACTION, Fate.REACTIVATED):
        _current_trouble(rng, company, world)
    if company.fate is Fate.RETAINED and company.created >= world.start and rng.random() < 0.15:
        company.coupon = "WELCOME20"
    elif company.interval == "year" and rng.random() < 0.3:
        company.coupon = "ANNUAL10"


def _churn_at(rng: random.Random, company: Company, fate: Fate, boundary: int, world: World) -> None:
    company.fate = fate
    company.warning_from = boundary - int(rng.uniform(60, 120) * DAY)
    if fate is Fate.INVOLUNTARY:
        company.event_at = boundary + RETRY_SCHEDULE_DAYS[-1] * DAY + 3600
        company.failing = rng.choices(DECLINE_CODES, weights=DECLINE_WEIGHTS)[0]
        return
    company.event_at = boundary
    if fate is Fate.CONTRACTION:
        cheaper = CHEAPER_PLAN.get(company.plan)
        if cheaper and rng.random() < 0.35:
            company.new_plan, company.new_seats = cheaper, company.seats
        else:
            company.new_seats = max(1, int(company.seats * rng.uniform(0.3, 0.7)))
            if company.new_seats == company.seats:
                company.new_seats, company.seats = company.seats, company.seats + 2
        return
    company.requested_at = boundary - int(rng.uniform(1, 25) * DAY)
    company.feedback = rng.choices(FEEDBACK, weights=FEEDBACK_WEIGHTS)[0]
    if fate is Fate.REACTIVATED:
        back = boundary + int(rng.uniform(25, 60) * DAY)
        company.reactivated_at = back - back % 3600


def _current_trouble(rng: random.Random, company: Company, world: World) -> None:
    """Some active customers are failing a payment, paused or about to cancel right now."""
    p = company.propensity
    anchor = company.reactivated_at or company.created
    last_renewal = last_period_start(anchor, company.interval, world.now)
    days_since = (world.now - last_renewal) / DAY
    if last_renewal > anchor and days_since < RETRY_SCHEDULE_DAYS[-1] - 0.5 and rng.random() < 0.08 + 0.2 * p:
        company.failing = rng.choices(DECLINE_CODES, weights=DECLINE_WEIGHTS)[0]
        return
    roll = rng.random()
    if roll < 0.02 and company.fate is Fate.RETAINED:
        company.paused_from = world.now - int(rng.uniform(5, 40) * DAY)
    elif roll < 0.02 + 0.06 * p and company.fate is Fate.RETAINED:
        company.pending_cancel_at = world.now - int(rng.uniform(1, 12) * DAY)
        company.feedback = rng.choices(FEEDBACK, weights=FEEDBACK_WEIGHTS)[0]
        company.warning_from = world.now - int(rng.uniform(45, 90) * DAY)
    elif roll > 0.97 and p > 0.3:
        company.coupon = "RETAIN25"
    if company.fate is Fate.RETAINED and company.warning_from is None and rng.random() < 0.35 * p:
        # heading for churn after `now`: the warning signs have started, the churn has not happened yet
        company.warning_from = world.now - int(rng.uniform(20, 90) * DAY)


def _website(rng: random.Random, domain: str) -> str:
    style = rng.randrange(8)
    return (f"https://www.{domain}", f"http://{domain}", f"www.{domain}", domain, f"WWW.{domain.upper()}",
            f"https://{domain}/", f"https://www.{domain}/en/home", f"HTTPS://{domain.capitalize()}")[style]


def _assign_identity(rng: random.Random, company: Company) -> None:
    sister = company.sister_of is not None   # both sisters: every record carries an explicit link
    company.website = None if (rng.random() < 0.05 and not sister) else _website(rng, company.domain)
    company.zendesk = sister or rng.random() < 0.88
    if company.zendesk:
        if sister or rng.random() < 0.55:
            company.zendesk_external_id = company.sf_id[:15] if rng.random() < 0.1 else company.sf_id
        shape = rng.random()
        if sister:   # Zendesk maps a domain to one organization only
            company.zendesk_domains = (company.domain,) if company.keeps_domain else ()
        elif shape < 0.2:
            company.zendesk_domains = (company.domain, company.alt_domain)
        elif shape < 0.28 and company.zendesk_external_id:
            company.zendesk_domains = ()
        else:
            company.zendesk_domains = (company.domain,)
    person = f"{rng.choice(V.FIRST_NAMES).lower()}.{rng.choice(V.LAST_NAMES).lower()}"
    roll = rng.random()
    if roll < 0.10 and not sister:
        company.stripe_email = f"{person}{rng.randrange(10, 99)}@gmail.com"
    elif roll < 0.16 and company.alt_domain in company.zendesk_domains:
        company.stripe_email = f"{rng.choice(V.BILLING_MAILBOXES)}@{company.alt_domain}"
    elif roll < 0.30:
        company.stripe_email = f"{person}@{company.domain}"
    else:
        company.stripe_email = f"{rng.choice(V.BILLING_MAILBOXES)}@{company.domain}"
    if sister or rng.random() < 0.45 or company.website is None:
        company.stripe_link = company.sf_id[:15] if rng.random() < 0.1 else company.sf_id
    if company.website is None and company.zendesk and not company.zendesk_external_id:
        company.zendesk_external_id = company.sf_id   # nothing else would tie them together


def _assign_nps(rng: random.Random, company: Company, world: World) -> None:
    if rng.random() >= 0.65:
        return
    troubled = company.fate not in (Fate.RETAINED, Fate.INVOLUNTARY) or company.warning_from is not None
    unhappy_from = company.warning_from if troubled else None
    if unhappy_from is not None and company.event_at is not None and company.fate is not Fate.SILENT:
        at = int(rng.uniform(unhappy_from, company.event_at - 5 * DAY))
    else:
        at = world.now - int(rng.uniform(5, 150) * DAY)
    at = max(at, company.created + 14 * DAY)
    if at >= world.now:
        return
    unhappy = unhappy_from is not None and at >= unhappy_from
    if unhappy:
        company.nps = rng.choices(range(11), weights=(6, 5, 6, 8, 9, 10, 9, 5, 2, 1, 1))[0]
    else:
        detractor = rng.random() < 0.08 + 0.25 * company.propensity
        company.nps = rng.randint(2, 6) if detractor else rng.choices(range(7, 11), weights=(2, 3, 4, 3))[0]
    company.nps_at = at
