"""The sandbox org's records: per-object tables kept sorted by (SystemModstamp, Id), and every write.

Records are plain dicts of API field values (`SystemModstamp` as `2024-05-01T12:00:00.000+0000`)
and are replaced, never changed in place, so an open query keeps the versions it selected. Each
table keeps `order`, the sorted list of (SystemModstamp epoch, Id), which lets a query that starts
at a SystemModstamp bisect straight to its first record.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .sandbox_schema import (
    SObject,
    api_datetime,
    check_value,
    check_write,
    derived_fields,
    epoch_of,
    error,
    guess_type,
    id_suffix,
    make_id,
    standard_objects,
)

Errors = list[dict[str, Any]]


@dataclass
class Table:
    sobject: SObject
    records: dict[str, dict[str, Any]] = field(default_factory=dict)     # 18-char Id -> record
    by_id15: dict[str, str] = field(default_factory=dict)
    order: list[tuple[int, str]] = field(default_factory=list)           # sorted (SystemModstamp, Id)
    stamps: dict[str, int] = field(default_factory=dict)
    external: dict[str, dict[str, set[str]]] = field(default_factory=dict)  # field -> folded value -> ids

    def find(self, record_id: str) -> dict[str, Any] | None:
        full = self.by_id15.get(str(record_id)[:15]) if len(str(record_id)) in (15, 18) else None
        return self.records.get(full) if full else None

    def put(self, record: dict[str, Any], stamp: int, *, sort: bool = True) -> None:
        record_id = record["Id"]
        old = self.records.get(record_id)
        if record_id in self.stamps and sort:
            key = (self.stamps[record_id], record_id)
            del self.order[bisect.bisect_left(self.order, key)]
        for name, index in self.external.items():
            if old is not None and old.get(name) is not None:
                index.get(str(old[name]).casefold(), set()).discard(record_id)
            if record.get(name) is not None:
                index.setdefault(str(record[name]).casefold(), set()).add(record_id)
        self.records[record_id] = record
        self.by_id15[record_id[:15]] = record_id
        self.stamps[record_id] = stamp
        if sort:
            bisect.insort(self.order, (stamp, record_id))
        else:
            self.order.append((stamp, record_id))

    def remove(self, record_id: str) -> None:
        record = self.records.pop(record_id)
        del self.order[bisect.bisect_left(self.order, (self.stamps.pop(record_id), record_id))]
        del self.by_id15[record_id[:15]]
        for name, index in self.external.items():
            if record.get(name) is not None:
                index.get(str(record[name]).casefold(), set()).discard(record_id)

    def matching(self, name: str, value: Any) -> list[str]:
        if name == "Id":
            found = self.find(str(value))
            return [found["Id"]] if found else []
        return sorted(self.external.get(name, {}).get(str(value).casefold(), set()))


class OrgStore:
    """All tables of one org, a lock around every change, and the clock that stamps them."""

    def __init__(self, clock: Callable[[], float], *, custom_fields: Mapping[str, Mapping[str, str]] | None = None,
                 external_ids: Mapping[str, Iterable[str]] | None = None) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.objects = standard_objects()
        for sobject, fields in (custom_fields or {}).items():
            for name, kind in fields.items():
                self.objects[sobject].add_field(name, kind)
        for sobject, names in (external_ids or {}).items():
            for name in names:
                self.objects[sobject].add_field(name, "string")
                self.objects[sobject].external_ids.add(name)
        self.tables = {name: Table(obj) for name, obj in self.objects.items()}
        for table in self.tables.values():
            table.external = {name: {} for name in table.sobject.external_ids}
        self.running_user = make_id("005", 0)   # the API user the tokens act as (not a User record)
        self.next_number = 1
        self.created: dict[str, list[str]] = {name: [] for name in self.objects}   # ids created through the API

    def now(self) -> int:
        return int(self.clock())

    def table(self, sobject: str) -> Table:
        return self.tables[sobject]

    def new_id(self, sobject: str) -> str:
        table = self.tables[sobject]
        while True:
            candidate = make_id(table.sobject.prefix, self.next_number)
            self.next_number += 1
            if candidate not in table.records:
                return candidate

    # -- seeding ------------------------------------------------------------------------------

    def seed(self, dataset: Mapping[str, Iterable[Mapping[str, Any]]]) -> None:
        unknown = set(dataset) - set(self.objects)
        if unknown:
            raise ValueError(f"unknown objects in the Salesforce dataset: {sorted(unknown)}; "
                             f"it holds {sorted(self.objects)}")
        with self.lock:
            for sobject, rows in dataset.items():
                table = self.tables[sobject]
                names: dict[str, str] = {}   # dataset key -> API name, resolved once per key
                for row in rows:
                    self._seed_one(table, row, names)
                table.order.sort()

    def _seed_one(self, table: Table, row: Mapping[str, Any], names: dict[str, str]) -> None:
        obj = table.sobject
        record: dict[str, Any] = {**obj.defaults}
        for given, value in row.items():
            if given == "attributes":
                continue
            name = names.get(given)
            if name is None:
                if obj.resolve(given) is None:
                    obj.add_field(given, guess_type(value))
                name = names[given] = obj.resolve(given) or given
            stored, problem = check_value(obj, name, value)
            if problem:
                raise ValueError(f"{obj.name} {row.get('Id', '(no Id)')}: {problem['message']}")
            record[name] = stored
        given = str(record.get("Id") or "")
        record["Id"] = given + id_suffix(given) if len(given) == 15 else (given or self.new_id(obj.name))
        if record["Id"] in table.records:
            raise ValueError(f"{obj.name} {record['Id']} appears twice in the dataset")
        stamp = epoch_of(str(record.get("SystemModstamp") or record.get("LastModifiedDate")
                             or record.get("CreatedDate") or api_datetime(self.now())))
        stamp = int(stamp if stamp is not None else self.now())
        record["SystemModstamp"] = api_datetime(stamp)
        record.setdefault("CreatedDate", record["SystemModstamp"])
        record.setdefault("LastModifiedDate", record["SystemModstamp"])
        if obj.soft_deletes:
            record["IsDeleted"] = bool(record.get("IsDeleted"))
        if "OwnerId" in obj.fields:
            record.setdefault("OwnerId", self.running_user)
        if (obj.name == "Opportunity" and not {"IsClosed", "IsWon"} <= set(record)) or \
                (obj.name == "User" and not record.get("Name")):
            derived_fields(obj, record)   # what Salesforce computes, unless the dataset says it
        table.put(record, stamp, sort=False)

    # -- writes (callers hold the lock) ---------------------------------------------------------

    def check_references(self, obj: SObject, values: Mapping[str, Any]) -> tuple[dict[str, Any], Errors]:
        """Each reference must name a live record of an allowed object; owners must be active."""
        clean = dict(values)
        for name, targets in obj.references.items():
            value = values.get(name)
            if value is None:
                continue
            found = next((r for t in targets if (r := self.tables[t].find(str(value))) is not None
                          and not r.get("IsDeleted")), None)
            if found is None and name == "OwnerId" and str(value)[:15] == self.running_user[:15]:
                clean[name] = self.running_user
                continue
            if found is None:
                return {}, [error("INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {value}", name)]
            if name == "OwnerId" and found.get("IsActive") is False:
                return {}, [error("INACTIVE_OWNER_OR_USER",
                                  f"operation performed with inactive user [{found['Id']}] as owner of "
                                  f"{obj.name.lower()}", name)]
            clean[name] = found["Id"]
        return clean, []

    def create(self, sobject: str, values: Mapping[str, Any], *,
               allow: frozenset[str] = frozenset()) -> tuple[str | None, Errors]:
        obj = self.objects[sobject]
        clean, errors = check_write(obj, values, creating=True, allow=allow)
        if not errors:
            clean, errors = self.check_references(obj, clean)
        if errors:
            return None, errors
        stamp = self.now()
        record = {**obj.defaults, **clean, "Id": self.new_id(sobject), "SystemModstamp": api_datetime(stamp),
                  "CreatedDate": api_datetime(stamp), "LastModifiedDate": api_datetime(stamp),
                  "CreatedById": self.running_user, "LastModifiedById": self.running_user}
        if obj.soft_deletes:
            record["IsDeleted"] = False
        if "OwnerId" in obj.fields and not record.get("OwnerId"):
            record["OwnerId"] = self.running_user
        derived_fields(obj, record)
        self.tables[sobject].put(record, stamp)
        self.created[sobject].append(record["Id"])
        return record["Id"], []

    def update(self, sobject: str, record_id: str, values: Mapping[str, Any], *,
               modstamp: float | None = None, allow: frozenset[str] = frozenset()) -> Errors:
        obj = self.objects[sobject]
        table = self.tables[sobject]
        current = table.find(record_id)
        if current is None:
            return [error("INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {record_id}")]
        if current.get("IsDeleted"):
            return [error("ENTITY_IS_DELETED", "entity is deleted")]
        clean, errors = check_write(obj, values, creating=False, allow=allow)
        if not errors:
            clean, errors = self.check_references(obj, clean)
        if errors:
            return errors
        self.stamp(table, {**current, **clean}, modstamp)
        return []

    def stamp(self, table: Table, record: dict[str, Any], modstamp: float | None = None) -> None:
        """Store a changed record with a new SystemModstamp (now, or the one given)."""
        stamp = int(modstamp if modstamp is not None else self.now())
        derived_fields(table.sobject, record)
        record.update(SystemModstamp=api_datetime(stamp), LastModifiedDate=api_datetime(stamp),
                      LastModifiedById=self.running_user)
        table.put(record, stamp)

    def upsert(self, sobject: str, key_field: str, key: Any,
               values: Mapping[str, Any]) -> tuple[str | None, bool, Errors, list[str]]:
        """(id, created, errors, ids when the key matched several records)."""
        table = self.tables[sobject]
        matches = [m for m in table.matching(key_field, key) if not table.records[m].get("IsDeleted")]
        if len(matches) > 1:
            return None, False, [error("DUPLICATE_EXTERNAL_ID", f"{key_field}: more than one record found for "
                                       f"external id field: {matches}", key_field)], matches
        fields = {k: v for k, v in values.items() if k != "attributes"}
        if matches:
            fields.pop(key_field, None)
            return matches[0], False, self.update(sobject, matches[0], fields), []
        if key_field == "Id":
            return None, False, [error("NOT_FOUND", f"Provided external ID field does not exist or is not "
                                       f"accessible: {key}", "Id")], []
        record_id, errors = self.create(sobject, {**fields, key_field: key})
        return record_id, record_id is not None, errors, []

    def soft_delete(self, sobject: str, record_id: str) -> None:
        table = self.tables[sobject]
        if not table.sobject.soft_deletes:
            raise ValueError(f"{sobject} records cannot be deleted (deactivate users instead)")
        current = table.find(record_id)
        if current is None or current.get("IsDeleted"):
            raise KeyError(f"no live {sobject} {record_id}")
        self.stamp(table, {**current, "IsDeleted": True})

    def purge(self, sobject: str, record_id: str) -> None:
        table = self.tables[sobject]
        current = table.find(record_id)
        if current is None:
            raise KeyError(f"no {sobject} {record_id}")
        table.remove(current["Id"])
