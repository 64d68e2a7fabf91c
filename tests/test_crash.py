"""SIGKILL the hub at random points of a sync and of a playbook/dunning outbox run, then restart it.

The hub runs in a separate process (`tests/hub_process.py crash-server` forks one per run) against
sandboxes served by this test process, so the sandboxes outlive the killed hub and count what
the providers really did. Each seed picks the moment of death among every database COMMIT and
both sides of every HTTP call and SMTP send. After a restart:

- sync: the database equals a clean sync's (every row, every field) and holds exactly the
  sandbox's objects — no record lost, none twice, no state ahead of its rows;
- outbox: every action is final; Zendesk created one ticket per key and the tags once; Stripe
  applied each coupon once and attempted the invoice payment once (a repeat after the crash is
  a replay of the same idempotency key); no email arrived twice, and the one email that may
  have left in the crash window is `dead` "delivery uncertain", never sent again.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import insert, select

from connectors.email.sandbox import start_sandbox as start_smtp
from connectors.stripe.sandbox import start_sandbox as start_stripe
from connectors.zendesk.sandbox import start_sandbox as start_zendesk
from hub import Record, db
from hub.models import Customer, CustomerLink, SentMessage, SourceRecord, utcnow
from hub.outbox import DEAD, FINAL, SUCCEEDED, Intent, enqueue, list_actions
from hub.store import write_records

HELPER = Path(__file__).with_name("hub_process.py")
SYNC_SEEDS = range(10)
OUTBOX_SEEDS = range(100, 110)


class CrashServer:
    """The helper process: send a job, get back how its hub ended."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-P", str(HELPER), "crash-server"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, bufsize=1)

    def run(self, **job: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Returns (how the process ended, what the hub reported if it got to the end)."""
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        reported = None
        while True:
            line = self.process.stdout.readline()
            assert line, "the crash server died"
            message = json.loads(line)
            if "pid" in message:
                return message, reported
            reported = message

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def server() -> Iterator[CrashServer]:
    helper = CrashServer()
    yield helper
    helper.close()


def fresh_database(tmp_path: Path, template: Path, name: str) -> str:
    path = tmp_path / f"{name}.db"
    shutil.copy(template, path)
    return f"sqlite:///{path}"


def write_config(tmp_path: Path, name: str, database: str, connectors: dict[str, dict[str, Any]]) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"database": database, "connectors": connectors}))
    return str(path)


def moment_of_death(seed: int, seeds: range, events: int) -> int:
    """A random moment within the seed's slice of the run, so the seeds together cover all of it."""
    width = (events - 1) / len(seeds)
    low = 1 + int(seeds.index(seed) * width)
    return random.Random(seed).randint(low, max(low, int(low + width) - 1))


def kill_and_restart(server: CrashServer, config: str, job: str, kill_at: int, *, restart_after: float = 0,
                     **extra: Any) -> dict[str, Any]:
    """Kill the hub at moment `kill_at`, then run it again `restart_after` seconds later (its clock)."""
    ended, _ = server.run(config=config, job=job, kill_at=kill_at, **extra)
    assert ended["signal"] == 9, f"the hub was not killed at moment {kill_at}: {ended}"
    ended, report = server.run(config=config, job=job, kill_at=None, clock_offset=restart_after, **extra)
    assert ended["exit"] == 0 and report and "result" in report, (ended, report)
    return report


# -- sync -------------------------------------------------------------------------------------

def zendesk_world(organizations: int = 9, users: int = 14, tickets: int = 23) -> dict[str, Any]:
    def stamp(n: int) -> str:
        return f"2026-0{1 + n % 9}-{1 + n % 27:02d}T{n % 24:02d}:00:00Z"

    return {
        "organizations": [{"id": o, "name": f"Org {o}", "domain_names": [f"org{o}.example"], "tags": ["t"],
                           "created_at": stamp(o), "updated_at": stamp(o + 1)} for o in range(1, organizations + 1)],
        "users": [{"id": 100 + u, "name": f"User {u}", "email": f"u{u}@org{1 + u % organizations}.example",
                   "organization_id": 1 + u % organizations, "created_at": stamp(u), "updated_at": stamp(u + 2)}
                  for u in range(users)],
        "tickets": [{"id": 1000 + t, "subject": f"Ticket {t}", "status": ("open", "solved", "pending")[t % 3],
                     "requester_id": 100 + t % users, "organization_id": 1 + t % organizations,
                     "created_at": stamp(t), "updated_at": stamp(t + 3)} for t in range(tickets)],
    }


@pytest.fixture(scope="module")
def sync_sandboxes() -> Iterator[dict[str, Any]]:
    zendesk = start_zendesk(zendesk_world(), rate_limits=False, export_page_size=5)
    # Exports show only what changed over a minute ago (like Zendesk): move past the seeding, so
    # the ground truth does not change while the test runs.
    zendesk.advance_clock(300)
    stripe = start_stripe(None, rate_limit=None)       # the demo account: customers, cards, dunning
    yield {"zendesk": zendesk, "stripe": stripe}
    zendesk.stop()
    stripe.stop()


def sync_connectors(sandboxes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"helpdesk": {"type": "zendesk", **sandboxes["zendesk"].settings()},
            "billing": {"type": "stripe", **sandboxes["stripe"].settings(), "page_size": 6}}


def stored_rows(url: str) -> dict[tuple[str, str, str], tuple[Any, bool]]:
    engine = db.make_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(select(SourceRecord.connector, SourceRecord.kind, SourceRecord.external_id,
                                         SourceRecord.data, SourceRecord.deleted)).all()
    engine.dispose()
    return {(c, k, e): (d, bool(x)) for c, k, e, d, x in rows}


def sandbox_ids(sandboxes: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """What the providers hold, straight from the sandboxes (not from our code)."""
    world = sandboxes["zendesk"].world
    stripe = sandboxes["stripe"].store.objects.values()
    return {
        ("helpdesk", "account"): {str(i) for i in world.organizations.objects},
        ("helpdesk", "ticket"): {str(i) for i in world.tickets.objects},
        ("billing", "account"): {o["id"] for o in stripe if o.get("object") == "customer"},
        ("billing", "subscription"): {o["id"] for o in stripe if o.get("object") == "subscription"},
        ("billing", "invoice"): {o["id"] for o in stripe if o.get("object") == "invoice"},
    }


@pytest.fixture(scope="module")
def sync_reference(server: CrashServer, sync_sandboxes: dict[str, Any], sqlite_template: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[Any, Any]]:
    """A clean sync: how many crash points it has, and the rows it stores."""
    tmp = tmp_path_factory.mktemp("sync-reference")
    url = fresh_database(tmp, sqlite_template, "reference")
    ended, report = server.run(config=write_config(tmp, "reference", url, sync_connectors(sync_sandboxes)),
                               job="sync", kill_at=None)
    assert ended["exit"] == 0 and report and set(report["result"]) == {"succeeded"}, report
    rows = stored_rows(url)
    for (connector, kind), ids in sandbox_ids(sync_sandboxes).items():
        assert {e for c, k, e in rows if (c, k) == (connector, kind)} == ids, (connector, kind)
    return report["events"], rows


@pytest.mark.parametrize("seed", SYNC_SEEDS)
def test_sync_killed_anywhere_resumes_to_the_ground_truth(seed: int, server: CrashServer, sync_sandboxes: Any,
                                                          sync_reference: Any, sqlite_template: Path,
                                                          tmp_path: Path) -> None:
    events, reference = sync_reference
    kill_at = moment_of_death(seed, SYNC_SEEDS, events)
    url = fresh_database(tmp_path, sqlite_template, "hub")
    config = write_config(tmp_path, "hub", url, sync_connectors(sync_sandboxes))
    report = kill_and_restart(server, config, "sync", kill_at)
    assert set(report["result"]) == {"succeeded"}
    rows = stored_rows(url)
    assert sorted(reference.keys() - rows.keys()) == [] and sorted(rows.keys() - reference.keys()) == []
    assert rows == reference                     # and every field as the provider has it


# -- outbox: a playbook and a dunning run -----------------------------------------------------

STRIPE_DATASET = {
    "prices": [{"id": "price_growth", "unit_amount": 49900, "currency": "usd",
                "recurring": {"interval": "month", "interval_count": 1}}],
    "coupons": [{"id": "WINBACK20", "percent_off": 20, "duration": "once"}],
    "customers": [{"id": f"cus_{n}", "email": f"ap@{n}.example", "name": n.title()} for n in ("acme", "beta")],
    "subscriptions": [{"id": f"sub_{n}", "customer": f"cus_{n}", "status": "active",
                       "items": [{"price": "price_growth", "quantity": 1}]} for n in ("acme", "beta")],
}
CUSTOMERS = {"c1": ("Acme", 7, "acme"), "c2": ("Beta", 8, "beta")}
EMAIL_VARIABLES = {"product": {"name": "Acme Analytics"},
                   "links": {"app": "https://app.example", "book_call": "https://cal.example/sam",
                             "help": "https://help.example", "billing": "https://app.example/billing"}}


def playbook_requests() -> list[list[Any]]:
    """What two playbooks want for two customers: tickets, tags, coupons, check-in emails."""
    requests = []
    for customer in CUSTOMERS:
        base = f"pb|{customer}|2026-03-02"
        requests += [
            [f"{base}|ticket", "playbook:at-risk", "create_helpdesk_ticket",
             {"subject": "Check in with {{ customer.name }}", "body": "usage fell", "requester": "billing_email"},
             customer, {}],
            [f"{base}|tag", "playbook:at-risk", "tag_helpdesk_org", {"tags": ["at-risk"]}, customer, {}],
            [f"{base}|coupon", "playbook:win-back", "stripe_apply_coupon", {"coupon": "WINBACK20"}, customer, {}],
            [f"{base}|email", "playbook:at-risk", "send_email", {"template": "checkin", "to": "billing_email"},
             customer, EMAIL_VARIABLES],
        ]
    return requests


class OutboxWorld:
    """Fresh sandboxes and a seeded database for one outbox run."""

    def __init__(self, tmp_path: Path, template: Path) -> None:
        self.zendesk = start_zendesk({"organizations": [{"id": o, "name": name, "tags": ["vip"]}
                                                        for name, o, _ in CUSTOMERS.values()]}, rate_limits=False)
        self.stripe = start_stripe(STRIPE_DATASET, rate_limit=None)
        self.smtp = start_smtp()
        self.url = fresh_database(tmp_path, template, "hub")
        self.config = write_config(tmp_path, "hub", self.url, {
            "helpdesk": {"type": "zendesk", **self.zendesk.settings()},
            "billing": {"type": "stripe", **self.stripe.settings()},
            "mail": {"type": "smtp", **self.smtp.settings()}})
        self.engine = db.make_engine(self.url)
        self.invoice = self._open_invoice()
        self._seed()

    def _open_invoice(self) -> str:
        """A month passes with a declining card: Acme's renewal invoice stays open (dunning)."""
        self.stripe.add_card("cus_acme", brand="visa", last4="4242", exp_month=12, exp_year=2030)
        self.stripe.set_card_scenario("cus_acme", "insufficient_funds")
        self.stripe.add_card("cus_beta", brand="visa", last4="4242", exp_month=12, exp_year=2030)
        self.stripe.advance_clock(32 * 86400)
        [invoice] = [o for o in self.stripe.store.objects.values()
                     if o.get("object") == "invoice" and o["status"] == "open"]
        return str(invoice["id"])

    def _seed(self) -> None:
        with self.engine.begin() as connection:
            for cid, (name, org, slug) in CUSTOMERS.items():
                write_records(connection, "helpdesk", [Record("account", str(org), {"name": name})], now=utcnow())
                write_records(connection, "billing", [
                    Record("account", f"cus_{slug}", {"name": name, "email": f"ap@{slug}.example"}),
                    Record("subscription", f"sub_{slug}", {"account_id": f"cus_{slug}", "status": "active",
                                                           "mrr": 49900})], now=utcnow())
                connection.execute(insert(Customer.__table__).values(id=cid, name=name, status="Active", mrr=49900))
                connection.execute(insert(CustomerLink.__table__), [
                    {"customer_id": cid, "connector": connector, "kind": "account", "external_id": ext, "rule": "seed"}
                    for connector, ext in (("helpdesk", str(org)), ("billing", f"cus_{slug}"))])
            enqueue(connection, [Intent("dunning|c1|retry|1", "dunning", "retry_invoice", "c1", "billing",
                                        "retry_invoice", {"invoice_id": self.invoice})], now=utcnow())

    def stop(self) -> None:
        self.engine.dispose()
        for sandbox in (self.zendesk, self.stripe, self.smtp):
            sandbox.stop()


@pytest.fixture
def outbox_world(tmp_path: Path, sqlite_template: Path) -> Iterator[OutboxWorld]:
    world = OutboxWorld(tmp_path, sqlite_template)
    yield world
    world.stop()


@pytest.fixture(scope="module")
def outbox_events(server: CrashServer, sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> int:
    """How many crash points a clean playbook + dunning run has."""
    world = OutboxWorld(tmp_path_factory.mktemp("outbox-reference"), sqlite_template)
    try:
        ended, report = server.run(config=world.config, job="outbox", kill_at=None, requests=playbook_requests())
        assert ended["exit"] == 0 and report and "result" in report, report
        assert report["result"] == {"succeeded": 8, "dead": 1}      # the declined invoice is dead
        assert_acted_once(world, crashed=False)
        return int(report["events"])
    finally:
        world.stop()


@pytest.mark.parametrize("seed", OUTBOX_SEEDS)
def test_outbox_killed_anywhere_never_acts_twice(seed: int, server: CrashServer, outbox_events: int,
                                                 outbox_world: OutboxWorld) -> None:
    kill_at = moment_of_death(seed, OUTBOX_SEEDS, outbox_events)
    # Restarted after the predecessor's leases (5 minutes) have run out.
    kill_and_restart(server, outbox_world.config, "outbox", kill_at, requests=playbook_requests(),
                     restart_after=600)
    assert_acted_once(outbox_world, crashed=True)


def assert_acted_once(world: OutboxWorld, *, crashed: bool) -> None:
    with world.engine.connect() as connection:
        rows = {row["key"]: row for row in list_actions(connection)}
        logged = dict(connection.execute(select(SentMessage.action_id, SentMessage.message_id)).all())
    assert len(rows) == 9 and all(row["status"] in FINAL for row in rows.values()), \
        {k: (r["status"], r["error"]) for k, r in rows.items()}

    # Zendesk: one ticket per key (a repeat found the first by its external_id), tags once.
    tickets = Counter(t.get("external_id") for t in world.zendesk.created_tickets())
    ticket_keys = [k for k in rows if k.endswith("|ticket")]
    assert {k: tickets[k] for k in ticket_keys} == {k: 1 for k in ticket_keys}
    for _name, org, _ in CUSTOMERS.values():
        assert sorted(world.zendesk.organization_tags(org)) == ["at-risk", "vip"]

    # Stripe: each coupon and the invoice payment acted on once per key; repeats were replays.
    posts = [r for r in world.stripe.requests if r.method == "POST" and r.idempotency_key]
    acted = Counter(r.idempotency_key for r in posts if not r.replayed)
    assert all(n == 1 for n in acted.values()), acted
    for _, _, slug in CUSTOMERS.values():
        assert len(world.stripe.get(f"sub_{slug}")["discounts"]) == 1
    pays = [r for r in posts if r.path == f"/v1/invoices/{world.invoice}/pay"]
    assert sum(1 for r in pays if not r.replayed) == 1
    assert rows["dunning|c1|retry|1"]["status"] == DEAD
    assert rows["dunning|c1|retry|1"]["error_code"] == "insufficient_funds"

    # Email: never twice; what the hub calls sent arrived, what arrived is sent or "uncertain".
    messages = world.smtp.messages()
    assert all(n == 1 for n in Counter(m.rcpt_tos[0] for m in messages).values())
    arrived = {m.message_id for m in messages}
    for key in (k for k in rows if k.endswith("|email")):
        row = rows[key]
        if row["status"] == SUCCEEDED:
            assert logged[row["id"]] in arrived
        else:
            assert crashed and row["status"] == DEAD and row["error_code"] == "uncertain", row
    assert set(logged.values()) <= arrived
    assert len(arrived) >= len(logged)
    if not crashed:
        assert {r["status"] for k, r in rows.items() if not k.startswith("dunning")} == {SUCCEEDED}
