"""The matching rules of identity resolution: union-find over account records, phase by phase. Pure.

Phases, in priority order (`Matcher.run`; each but the manual ones switchable under `identity:`):

0. manual `same_as` links from the config: always applied, never a conflict (the user's word);
1. explicit links: `fields.links = {"<type>_<object>_id": id}` names a record of a connector of that
   type (`salesforce_account_id` -> every configured `salesforce` connector); both ends join;
2. domains: `fields.domains`, `fields.website` and the domain of `fields.email`, normalised
   (`hub.domains`), never a free-mail or ISP domain;
3. company names, normalised, only with `name_matching: true`;
4. manual `domain` links: the record (whose own links and domains are then ignored) joins the one
   customer holding that domain, or gives its customer that domain when nobody holds it.

The conflict rule, the same in phases 1-3 (`Matcher.run_phase`). Two clusters *clash* when each
holds a different record of the same connector instance, counting only the most authoritative kind
of system present (`SYSTEM_RANK`: CRM over helpdesk over billing; a type not listed there counts as a
CRM, the cautious choice). So two Salesforce accounts sharing acme.com clash, while two Stripe
customers at acme.com both join the one Salesforce account with that website (and clash when no CRM
or helpdesk record holds it). In phase 1 only records that are the target of a link count, so
several Stripe customers pointing at one Salesforce account are one customer. Automatic rules never
put clashing clusters together:
- a key (a link, a domain, a name) held by clusters that clash is *ambiguous*: it is not used and is
  reported (two Salesforce accounts with the website acme.com: neither gets the Zendesk organization
  acme.com; a Stripe customer explicitly linked to account B keeps B even with an email at A's domain);
- the remaining keys connect clusters into components. A component without clashes becomes one
  customer. In one with clashes (a Zendesk organization with domains acme.com and acme.io, where
  acme.com is account A's website and acme.io account B's), the clusters holding a clashing record
  are *anchors* and stay apart; every other cluster joins the anchor nearest to it through shared
  keys (its strongest match) when exactly one is nearest, and stays a customer of its own when
  several are equally near. The component is reported with each anchor's and each left-over
  cluster's records. Nothing is guessed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from hub.domains import FreeMail, email_domain, normalise_company_name, normalise_domain
from hub.sections.identity import IdentitySettings

EVIDENCE_KEYS_SHOWN = 3
# How authoritative a connector type is about which companies exist: 0 CRM, 1 helpdesk, 2 billing.
SYSTEM_RANK = {"salesforce": 0, "hubspot": 0, "pipedrive": 0, "zendesk": 1, "intercom": 1, "freshdesk": 1,
               "stripe": 2, "chargebee": 2, "recurly": 2, "paddle": 2}


class RecordKey(NamedTuple):
    connector: str
    external_id: str

    def __str__(self) -> str:
        return f"{self.connector}:{self.external_id}"


@dataclass(frozen=True)
class Account:
    """A non-deleted account-kind source record."""

    connector: str
    external_id: str
    fields: Mapping[str, Any]

    @property
    def key(self) -> RecordKey:
        return RecordKey(self.connector, self.external_id)


@dataclass(frozen=True)
class Conflict:
    """Evidence pointing at several customers that cannot be one: reported, never guessed."""

    rule: str                                       # explicit | domain | name | manual
    keys: tuple[str, ...]                           # the links, domains or names involved
    systems: tuple[str, ...]                        # connector instances held by several candidates
    candidates: tuple[tuple[RecordKey, ...], ...]   # records of each customer the evidence points at
    unmatched: tuple[tuple[RecordKey, ...], ...]    # records left apart because they point at several


class UnionFind:
    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, item: int) -> int:
        parent = self.parent
        root = item
        while parent[root] != root:
            root = parent[root]
        while parent[item] != root:  # path compression
            parent[item], item = root, parent[item]
        return root

    def union(self, first: int, second: int) -> None:
        a, b = self.find(first), self.find(second)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


@dataclass
class Phase:
    rule: str
    holders: dict[str, set[int]]                 # key -> records holding it
    counts: Callable[[int], bool]                # may this record make two clusters clash?


class Matcher:
    """Runs the phases over `accounts`; afterwards `members()`, `rule`, `evidence`, `conflicts`, `problems`."""

    def __init__(self, accounts: Iterable[Account], settings: IdentitySettings,
                 connector_types: Mapping[str, Sequence[str]]) -> None:
        self.settings = settings
        self.records = sorted({a.key: a for a in accounts}.values(), key=lambda a: a.key)
        self.keys = [a.key for a in self.records]     # index order is key order
        self.index = {key: i for i, key in enumerate(self.keys)}
        self.type_of = {name: type_name for type_name, names in connector_types.items() for name in names}
        self.instances = {type_name: sorted(names) for type_name, names in connector_types.items()}
        self.free_mail = FreeMail(settings.extra_free_mail_domains)
        self.uf = UnionFind(len(self.records))
        self.rule: list[str | None] = [None] * len(self.records)
        self.evidence: list[str | None] = [None] * len(self.records)
        self.conflicts: list[Conflict] = []
        self.problems: list[str] = []
        self.manual_domain: dict[int, str] = {}
        self.manual_same: list[tuple[int, int]] = []
        self._domains: dict[int, list[str]] = {}
        self._read_manual_links()

    # -- evidence ---------------------------------------------------------------------------------

    def _read_manual_links(self) -> None:
        for link in self.settings.manual_links:
            where = f"manual link {link.connector}:{link.external_id}"
            source = self.index.get(RecordKey(link.connector, link.external_id))
            if source is None:
                self.problems.append(f"{where}: no such account record")
            elif link.domain is not None:
                domain = normalise_domain(link.domain)
                if domain is None:
                    self.problems.append(f"{where}: {link.domain!r} is not a domain")
                else:
                    self.manual_domain[source] = domain
            else:
                target = self.index.get(RecordKey(*link.same_as_key)) if link.same_as_key else None
                if target is None:
                    self.problems.append(f"{where}: same_as {link.same_as} is not an account record")
                else:
                    self.manual_same.append((source, target))

    def domains_of(self, i: int) -> list[str]:
        """The record's usable domains, in the order it gives them (manual link first and only)."""
        if i not in self._domains:
            self._domains[i] = [self.manual_domain[i]] if i in self.manual_domain else self._read_domains(i)
        return self._domains[i]

    def _read_domains(self, i: int) -> list[str]:
        fields = self.records[i].fields
        raw = fields.get("domains") or []
        given = [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, list | tuple) else []
        found = [normalise_domain(value) for value in [*given, fields.get("website")]]
        found.append(email_domain(fields.get("email")))
        return list(dict.fromkeys(d for d in found if d and not self.free_mail.is_free(d)))

    def names_of(self, i: int) -> list[str]:
        if i in self.manual_domain:
            return []
        raw = self.records[i].fields.get("name")
        if not isinstance(raw, str) or "@" in raw or raw.strip() == self.keys[i].external_id:
            return []  # a billing system's stand-in for a missing name: the email or the id
        name = normalise_company_name(raw)
        return [name] if name else []

    def link_phase(self) -> Phase:
        by_instance: dict[str, dict[str, int]] = {}
        for i, record in enumerate(self.records):
            ids = by_instance.setdefault(record.connector, {})
            ids[record.external_id] = i
            if self.type_of.get(record.connector) == "salesforce" and len(record.external_id) == 18:
                ids.setdefault(record.external_id[:15], i)  # links may carry the 15-character form
        holders: dict[str, set[int]] = {}
        targets: set[int] = set()
        for i, record in enumerate(self.records):
            links = record.fields.get("links")
            if i in self.manual_domain or not isinstance(links, Mapping):
                continue
            for link_key, value in sorted(links.items()):
                type_name = self._link_type(link_key)
                wanted = str(value).strip() if value is not None else ""
                if type_name is None or not wanted:
                    continue
                found = sorted({by_instance.get(name, {}).get(wanted, -1) for name in self.instances[type_name]}
                               - {-1, i})
                if len(found) != 1:  # none, or one in each of several connectors of that type: ambiguous
                    matches = ", ".join(str(self.keys[t]) for t in found) or f"no such {type_name} account"
                    self.problems.append(f"{self.keys[i]} {link_key}={wanted}: {matches}"
                                         + (" (ambiguous: ignored)" if found else ""))
                    continue
                for target in found:
                    holders[f"{self.keys[i]} {link_key}={wanted} -> {self.keys[target]}"] = {i, target}
                    targets.add(target)
        return Phase("explicit", holders, targets.__contains__)

    def _link_type(self, link_key: str) -> str | None:
        """`salesforce_account_id` -> "salesforce" when connectors of that type are configured."""
        if not link_key.endswith("_id"):
            return None
        matches = [t for t in self.instances if link_key.startswith(t + "_")]
        return max(matches, key=len) if matches else None

    def keyed_phase(self, rule: str, keys_of: Callable[[int], Iterable[str]]) -> Phase:
        holders: dict[str, set[int]] = {}
        for i in range(len(self.records)):
            for key in keys_of(i):
                holders.setdefault(key, set()).add(i)
        return Phase(rule, holders, lambda _i: True)

    # -- matching ---------------------------------------------------------------------------------

    def run(self) -> None:
        for source, target in self.manual_same:
            evidence = f"manual link in config: same as {self.keys[target]}"
            self.merge([source, target], "manual", evidence)
            self.mark([source], "manual", evidence, force=True)
        if self.settings.explicit_links:
            self.run_phase(self.link_phase())
        domains = self.keyed_phase("domain", self.domains_of)
        if self.settings.domain_matching:
            self.run_phase(domains)
        if self.settings.name_matching:
            self.run_phase(self.keyed_phase("name", self.names_of))
        self._attach_manual_domains(domains.holders)

    def merge(self, records: Sequence[int], rule: str, evidence: str) -> None:
        for other in records[1:]:
            self.uf.union(records[0], other)
        self.mark(records, rule, evidence)

    def mark(self, records: Iterable[int], rule: str, evidence: str, *, force: bool = False) -> None:
        for i in records:
            if force or self.rule[i] is None:
                self.rule[i], self.evidence[i] = rule, evidence

    def members(self) -> dict[int, list[int]]:
        """Root -> its records, each list in index (= key) order."""
        members: dict[int, list[int]] = {}
        find = self.uf.find
        for i in range(len(self.records)):
            members.setdefault(find(i), []).append(i)
        return members

    def run_phase(self, phase: Phase) -> None:
        members = self.members()
        counted = {root: {self.records[i].connector for i in group if phase.counts(i)}
                   for root, group in members.items()}
        clean: dict[str, list[int]] = {}
        ambiguous: dict[str, list[int]] = {}
        for key in sorted(phase.holders):
            roots = sorted({self.uf.find(i) for i in phase.holders[key]})
            if len(roots) >= 2:
                (ambiguous if self.clashes(roots, counted) else clean)[key] = roots
        for keys in _components(clean):
            self._resolve_component(phase.rule, keys, clean, members, counted)
        for keys in _components(ambiguous):
            roots = sorted({root for key in keys for root in ambiguous[key]})
            systems = self.clashes(roots, counted)
            anchors = [root for root in roots if counted[root] & set(systems)]
            self._report(phase.rule, keys, systems, anchors, [r for r in roots if r not in anchors], members)

    def clashes(self, roots: Sequence[int], counted: Mapping[int, set[str]]) -> list[str]:
        """Connector instances of the most authoritative rank present with counted records in 2+ roots."""
        present = {name for root in roots for name in counted[root]}
        if not present:
            return []
        top = min(map(self.rank, present))
        seen: set[str] = set()
        clashing: set[str] = set()
        for root in roots:
            mine = {name for name in counted[root] if self.rank(name) == top}
            clashing |= seen & mine
            seen |= mine
        return sorted(clashing)

    def rank(self, connector: str) -> int:
        return SYSTEM_RANK.get(self.type_of.get(connector, ""), 0)

    def _resolve_component(self, rule: str, keys: list[str], edges: dict[str, list[int]],
                           members: dict[int, list[int]], counted: dict[int, set[str]]) -> None:
        roots = sorted({root for key in keys for root in edges[key]})
        keys_of_root: dict[int, list[str]] = {}
        for key in keys:
            for root in edges[key]:
                keys_of_root.setdefault(root, []).append(key)
        systems = self.clashes(roots, counted)
        if not systems:
            self._merge_roots(rule, roots, keys, members)
            return
        anchors = [root for root in roots if counted[root] & set(systems)]
        nearest: dict[int, set[int]] = {anchor: {anchor} for anchor in anchors}
        frontier = anchors
        while frontier:  # breadth-first from every anchor at once: who is nearest to whom
            reached: dict[int, set[int]] = {}
            for root in frontier:
                for key in keys_of_root[root]:
                    for other in edges[key]:
                        if other not in nearest:
                            reached.setdefault(other, set()).update(nearest[root])
            nearest.update(reached)
            frontier = sorted(reached)
        joining: dict[int, list[int]] = {}
        left_over = []
        for root in roots:
            if root not in anchors:
                if len(nearest[root]) == 1:
                    joining.setdefault(min(nearest[root]), []).append(root)
                else:
                    left_over.append(root)
        for anchor, joined in joining.items():
            used = sorted({key for root in joined for key in keys_of_root[root]})
            self._merge_roots(rule, [anchor, *joined], used, members)
        self._report(rule, keys, systems, anchors, left_over, members)

    def _report(self, rule: str, keys: list[str], systems: list[str], anchors: list[int],
                left_over: list[int], members: dict[int, list[int]]) -> None:
        def records(root: int) -> tuple[RecordKey, ...]:
            return tuple(self.keys[i] for i in sorted(members[root]))

        self.conflicts.append(Conflict(rule, tuple(keys), tuple(systems), tuple(map(records, anchors)),
                                       tuple(map(records, left_over))))

    def _merge_roots(self, rule: str, roots: list[int], keys: list[str], members: dict[int, list[int]]) -> None:
        if len(roots) < 2:
            return
        shown = ", ".join(keys[:EVIDENCE_KEYS_SHOWN])
        more = f" (+{len(keys) - EVIDENCE_KEYS_SHOWN} more)" if len(keys) > EVIDENCE_KEYS_SHOWN else ""
        self.merge([i for root in roots for i in members[root]], rule, f"{rule} {shown}{more}")

    def _attach_manual_domains(self, domain_holders: Mapping[str, set[int]]) -> None:
        for source, domain in sorted(self.manual_domain.items()):
            own = self.uf.find(source)
            holders = sorted({self.uf.find(i) for i in domain_holders.get(domain, ()) if i != source})
            if own not in holders and len(holders) == 1:
                self.uf.union(source, holders[0])
            elif own not in holders and len(holders) > 1:
                self._report("manual", [domain], [], holders, [own], self.members())
            self.mark([source], "manual", f"manual link in config: domain {domain}", force=True)


def _components(edges: Mapping[str, list[int]]) -> list[list[str]]:
    """Keys grouped by the clusters they connect (keys sharing a cluster land together)."""
    parent: dict[int, int] = {}

    def find(item: int) -> int:
        while parent.setdefault(item, item) != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    for roots in edges.values():
        for root in roots[1:]:
            a, b = find(roots[0]), find(root)
            if a != b:
                parent[max(a, b)] = min(a, b)
    grouped: dict[int, list[str]] = {}
    for key, roots in edges.items():
        grouped.setdefault(find(roots[0]), []).append(key)
    return list(grouped.values())
