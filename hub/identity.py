"""Identity resolution: which account records of different systems are one customer. Pure; no database.

    resolution = resolve(accounts, existing_links, settings.file.identity,
                         {"salesforce": ["crm"], "zendesk": ["helpdesk"], "stripe": ["billing"]})

The matching rules and the exact conflict rule are in `hub.matching` (manual links, explicit links,
domains, names; clashing evidence is reported, never guessed). This module turns the matched clusters
into customers: stable ids, a name and a domain.

Customer ids are stable (`_assign_ids`): a cluster keeps the existing id most of its records carry
(ties: the oldest customer, then the smallest id); a new cluster gets `cus_` + a hash of its anchor
record (its first record by system preference CRM > helpdesk > billing, then key), so a resolution
from scratch gives the same ids. The name comes from the first record by that preference that has
one; the domain from a manual `domain` link, else the first usable domain in that order.
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hub.matching import EVIDENCE_KEYS_SHOWN, SYSTEM_RANK, Account, Conflict, Matcher, RecordKey
from hub.sections.identity import IdentitySettings

__all__ = ["ACCOUNT", "Account", "Conflict", "Member", "RecordKey", "Resolution", "ResolvedCustomer",
           "customer_id_for", "resolve"]

ACCOUNT = "account"
UNKNOWN_TYPE_PREFERENCE = 3   # for names and domains, a type not in SYSTEM_RANK comes after billing

@dataclass(frozen=True)
class Member:
    key: RecordKey
    rule: str                 # manual | explicit | domain | name | single
    evidence: str | None


@dataclass(frozen=True)
class ResolvedCustomer:
    id: str
    name: str | None
    domain: str | None
    members: tuple[Member, ...]

    @property
    def connectors(self) -> list[str]:
        return sorted({m.key.connector for m in self.members})


@dataclass
class Resolution:
    customers: list[ResolvedCustomer]
    conflicts: list[Conflict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)   # dangling links, bad manual links

    def __post_init__(self) -> None:
        self.customer_of: dict[RecordKey, str] = {m.key: c.id for c in self.customers for m in c.members}

    def single_system(self) -> list[ResolvedCustomer]:
        """Customers known to one connector only: records nothing else matched."""
        return [c for c in self.customers if len(c.connectors) == 1]

    def conflict_dicts(self) -> list[dict[str, Any]]:
        """Conflicts for people and scripts: each side named by the customer its records ended in."""
        def sides(groups: tuple[tuple[RecordKey, ...], ...]) -> list[dict[str, Any]]:
            by_customer: dict[str | None, set[str]] = {}
            for group in groups:
                for key in group:
                    by_customer.setdefault(self.customer_of.get(key), set()).add(str(key))
            return [{"customer_id": cid, "records": sorted(records)} for cid, records in by_customer.items()]

        return [{
            "rule": c.rule, "keys": list(c.keys), "systems": list(c.systems), "message": conflict_message(c),
            "candidates": sides(c.candidates), "unmatched": sides(c.unmatched),
        } for c in self.conflicts]


_SHARING = {"explicit": "are joined by the links", "domain": "share the domain(s)", "name": "share the name(s)"}


def conflict_message(conflict: Conflict) -> str:
    shown = ", ".join(conflict.keys[:EVIDENCE_KEYS_SHOWN])
    if len(conflict.keys) > EVIDENCE_KEYS_SHOWN:
        shown += f" (+{len(conflict.keys) - EVIDENCE_KEYS_SHOWN} more)"
    if conflict.rule == "manual":
        return (f"manual link to domain {shown}: {len(conflict.candidates)} customers hold it; "
                "the record stays where it was")
    left = sum(len(group) for group in conflict.unmatched)
    return (f"{len(conflict.candidates)} customers holding different {', '.join(conflict.systems)} records "
            f"{_SHARING.get(conflict.rule, 'share')} {shown}: kept apart"
            + (f"; {left} record(s) matching several of them left unmatched" if left else ""))


def resolve(accounts: Iterable[Account], existing_links: Mapping[tuple[str, str], str],
            settings: IdentitySettings, connector_types: Mapping[str, Sequence[str]], *,
            customer_created: Mapping[str, datetime] | None = None) -> Resolution:
    """Match `accounts` into customers.

    `existing_links` maps (connector, external_id) to the customer id the record has now;
    `connector_types` maps a connector type to its configured instance names (`{"stripe": ["billing"]}`);
    `customer_created` (customer id -> creation time) breaks ties between existing ids.
    """
    with _collector_paused():
        matcher = Matcher(accounts, settings, connector_types)
        matcher.run()
        clusters = _clusters(matcher)
        ids = _assign_ids(clusters, matcher, existing_links, customer_created or {})
        return _resolution(matcher, clusters, ids)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Building ~10^5 small containers triggers full GC passes over a growing heap again and again
    (half the run time); nothing here forms reference cycles, so pause the cycle collector."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _resolution(matcher: Matcher, clusters: list[list[int]], ids: dict[int, str]) -> Resolution:
    customers = [
        ResolvedCustomer(ids[n], _name_of(matcher, cluster), _domain_of(matcher, cluster), tuple(
            Member(matcher.keys[i], matcher.rule[i] or "single", matcher.evidence[i]) for i in sorted(cluster)))
        for n, cluster in enumerate(clusters)
    ]
    return Resolution(sorted(customers, key=lambda c: c.id), matcher.conflicts, matcher.problems)


def _clusters(matcher: Matcher) -> list[list[int]]:
    """Each cluster's records, best first (system preference, then key); clusters by their best record."""
    def preference(i: int) -> tuple[int, int]:
        return SYSTEM_RANK.get(matcher.type_of.get(matcher.keys[i].connector, ""), UNKNOWN_TYPE_PREFERENCE), i

    return sorted((sorted(group, key=preference) for group in matcher.members().values()), key=lambda g: g[0])


def _name_of(matcher: Matcher, cluster: list[int]) -> str | None:
    for i in cluster:
        name = matcher.records[i].fields.get("name")
        if isinstance(name, str) and name.strip():
            return name.strip()
    return None


def _domain_of(matcher: Matcher, cluster: list[int]) -> str | None:
    manual = sorted(matcher.manual_domain[i] for i in cluster if i in matcher.manual_domain)
    if manual:
        return manual[0]
    for i in cluster:
        found = matcher.domains_of(i)
        if found:
            return found[0]
    return None


def customer_id_for(key: RecordKey, salt: int = 0) -> str:
    """`cus_` + a short hash of the anchor record: the same data gives the same ids."""
    text = f"{key.connector}\x1f{ACCOUNT}\x1f{key.external_id}" + (f"\x1f{salt}" if salt else "")
    return "cus_" + hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def _assign_ids(clusters: list[list[int]], matcher: Matcher, existing: Mapping[tuple[str, str], str],
                created: Mapping[str, datetime]) -> dict[int, str]:
    """Keep existing ids (most members first, then oldest, then smallest); hash the anchor otherwise."""
    claims = []
    for n, cluster in enumerate(clusters):
        counts: dict[str, int] = {}
        for i in cluster:
            current = existing.get(matcher.keys[i])
            if current is not None:
                counts[current] = counts.get(current, 0) + 1
        for customer_id, count in counts.items():
            moment = created.get(customer_id)
            claims.append((-count, _naive_utc(moment), customer_id, n))
    ids: dict[int, str] = {}
    taken: set[str] = set()
    for _count, _created, customer_id, n in sorted(claims):
        if n not in ids and customer_id not in taken:
            ids[n] = customer_id
            taken.add(customer_id)
    # an id still carried by a record that went elsewhere is not handed to a new cluster
    reserved = taken | {cid for key, cid in existing.items() if RecordKey(*key) in matcher.index}
    for n, cluster in enumerate(clusters):
        if n in ids:
            continue
        anchor, salt = matcher.keys[cluster[0]], 0
        while (candidate := customer_id_for(anchor, salt)) in reserved:
            salt += 1
        ids[n] = candidate
        reserved.add(candidate)
    return ids


def _naive_utc(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime.max
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
