"""The sandbox's write resources: single sObject create/update/upsert/delete and sObject Collections.

    POST   /sobjects/{S}/                       201 {"id", "success": true, "errors": []}
    PATCH  /sobjects/{S}/{id}                   204
    PATCH  /sobjects/{S}/{ExtIdField}/{value}   201 created / 200 updated ({.., "created"}; 204 before v46.0)
                                                / 300 [urls] when several records hold the value
    DELETE /sobjects/{S}/{id}                   204 (a soft delete: queryAll shows IsDeleted = true)
    POST|PATCH|DELETE /composite/sobjects       200 [one result per record]
    PATCH  /composite/sobjects/{S}/{ExtIdField} 200 [.., "created"]

Collections take at most 200 records; with `allOrNone: true` one failure rolls every record of
the call back (`ALL_OR_NONE_OPERATION_ROLLED_BACK`). Every function here runs under the store lock
and returns (status, body); a whole-request refusal is `ApiFailure`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .sandbox_schema import SObject, epoch_of, error
from .sandbox_store import OrgStore

COLLECTION_LIMIT = 200
UPSERT_200_SINCE = 46.0
ROLLED_BACK = error("ALL_OR_NONE_OPERATION_ROLLED_BACK", "Record rolled back because not all records were valid "
                    "and the request was using AllOrNone header")
Result = tuple[int, Any]


class ApiFailure(Exception):
    """A whole request refused: `status` and `[{"message", "errorCode", "fields"?}]`."""

    def __init__(self, status: int, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body: list[dict[str, Any]] = [{"message": message, "errorCode": code,
                                            **({"fields": fields} if fields is not None else {})}]

    @classmethod
    def of(cls, status: int, errors: list[dict[str, Any]]) -> ApiFailure:
        """From per-record errors (`statusCode`) to the REST shape (`errorCode`)."""
        failure = cls(status, errors[0]["statusCode"], errors[0]["message"])
        failure.body = [{"message": e["message"], "errorCode": e["statusCode"], "fields": e.get("fields", [])}
                        for e in errors]
        return failure


NOT_FOUND = ("NOT_FOUND", "The requested resource does not exist")


def sobject_named(store: OrgStore, name: str) -> SObject:
    found = next((obj for key, obj in store.objects.items() if key.lower() == name.lower()), None)
    if found is None:
        raise ApiFailure(404, *NOT_FOUND)
    return found


def record_url(version: str, sobject: str, record_id: str) -> str:
    return f"/services/data/v{version}/sobjects/{sobject}/{record_id}"


@dataclass
class Undo:
    """What a call changed, so `allOrNone` can put it back: (object, id, the record before or None)."""

    store: OrgStore
    entries: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)

    def before_change(self, sobject: str, record_id: str) -> None:
        record = self.store.table(sobject).find(record_id)
        if record is not None:   # records are replaced, never changed in place: keeping it is enough
            self.entries.append((sobject, record["Id"], record))

    def created(self, sobject: str, record_id: str) -> None:
        self.entries.append((sobject, record_id, None))

    def rollback(self) -> None:
        for sobject, record_id, before in reversed(self.entries):
            table = self.store.table(sobject)
            if before is None:
                table.remove(record_id)
                self.store.created[sobject].remove(record_id)
            else:
                table.put(before, int(epoch_of(before["SystemModstamp"]) or 0))
        self.entries.clear()


def writable(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k not in ("attributes", "id", "Id")}


# -- one record --------------------------------------------------------------------------------

def create_one(store: OrgStore, sobject: str, body: Any) -> Result:
    obj = sobject_named(store, sobject)
    if not isinstance(body, dict):
        raise ApiFailure(400, "JSON_PARSER_ERROR", "The request body must be a JSON object of field values")
    if "id" in body or "Id" in body:
        raise ApiFailure(400, "INVALID_FIELD", "cannot specify Id in an insert call")
    record_id, errors = store.create(obj.name, writable(body))
    if errors:
        raise ApiFailure.of(400, errors)
    return 201, {"id": record_id, "success": True, "errors": []}


def update_one(store: OrgStore, sobject: str, record_id: str, body: Any) -> Result:
    obj = sobject_named(store, sobject)
    if not isinstance(body, dict):
        raise ApiFailure(400, "JSON_PARSER_ERROR", "The request body must be a JSON object of field values")
    current = store.table(obj.name).find(record_id)
    if current is None:
        raise ApiFailure(404, *NOT_FOUND)
    errors = store.update(obj.name, record_id, writable(body))
    if errors:
        raise ApiFailure.of(404 if errors[0]["statusCode"] == "ENTITY_IS_DELETED" else 400, errors)
    return 204, None


def external_id_field(obj: SObject, name: str) -> str:
    field_name = obj.resolve(name)
    if field_name is None or (field_name != "Id" and field_name not in obj.external_ids):
        raise ApiFailure(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {name}")
    return field_name


def upsert_one(store: OrgStore, sobject: str, key_field: str, key: str, body: Any, version: str) -> Result:
    obj = sobject_named(store, sobject)
    key_field = external_id_field(obj, key_field)
    if not isinstance(body, dict):
        raise ApiFailure(400, "JSON_PARSER_ERROR", "The request body must be a JSON object of field values")
    record_id, created, errors, duplicates = store.upsert(obj.name, key_field, key, writable(body))
    if duplicates:
        return 300, [record_url(version, obj.name, d) for d in duplicates]
    if errors:
        raise ApiFailure.of(404 if errors[0]["statusCode"] == "NOT_FOUND" else 400, errors)
    result = {"id": record_id, "success": True, "errors": [], "created": created}
    if created:
        return 201, result
    return (200, result) if float(version) >= UPSERT_200_SINCE else (204, None)


def delete_one(store: OrgStore, sobject: str, record_id: str) -> Result:
    obj = sobject_named(store, sobject)
    current = store.table(obj.name).find(record_id)
    if current is None:
        raise ApiFailure(404, *NOT_FOUND)
    if current.get("IsDeleted"):
        raise ApiFailure(404, "ENTITY_IS_DELETED", "entity is deleted")
    if not obj.soft_deletes:
        raise ApiFailure(400, "DELETE_FAILED", f"{obj.name} records cannot be deleted; deactivate them instead")
    store.soft_delete(obj.name, current["Id"])
    return 204, None


def get_one(store: OrgStore, sobject: str, record_id: str, version: str) -> Result:
    obj = sobject_named(store, sobject)
    current = store.table(obj.name).find(record_id)
    if current is None or current.get("IsDeleted"):
        raise ApiFailure(404, *NOT_FOUND)
    return 200, {"attributes": {"type": obj.name, "url": record_url(version, obj.name, current["Id"])},
                 **{name: current.get(name) for name in obj.fields}}


# -- collections -------------------------------------------------------------------------------

def collection_records(body: Any) -> tuple[list[Any], bool]:
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise ApiFailure(400, "JSON_PARSER_ERROR", "The request body must be {\"allOrNone\": ..., \"records\": [...]}")
    records = body["records"]
    if len(records) > COLLECTION_LIMIT:
        raise ApiFailure(400, "EXCEEDED_ID_LIMIT", f"record limit reached. cannot submit more than "
                         f"{COLLECTION_LIMIT} records into this call")
    return records, body.get("allOrNone") is True


def record_type(store: OrgStore, record: Any) -> SObject | dict[str, Any]:
    """The object a collection record names in `attributes.type`, or its per-record error."""
    kind = (record.get("attributes") or {}).get("type") if isinstance(record, dict) else None
    if not kind:
        return error("INVALID_TYPE", "Must send a concrete entity type.")
    found = next((obj for key, obj in store.objects.items() if key.lower() == str(kind).lower()), None)
    return found or error("INVALID_TYPE", f"sObject type '{kind}' is not supported.")


def failed(errors: list[dict[str, Any]], record_id: str | None = None) -> dict[str, Any]:
    return {**({"id": record_id} if record_id else {}), "success": False, "errors": errors}


def collection_write(store: OrgStore, method: str, body: Any, *, upsert_on: tuple[str, str] | None = None) -> Result:
    """POST (create), PATCH (update by `id`) or, with `upsert_on` = (object, field), upsert."""
    records, all_or_none = collection_records(body)
    target = None
    if upsert_on is not None:
        target = sobject_named(store, upsert_on[0])
        key_field = external_id_field(target, upsert_on[1])
    undo = Undo(store)
    results: list[dict[str, Any]] = []
    for record in records:
        obj = record_type(store, record)
        if isinstance(obj, dict):
            results.append(failed([obj]))
            continue
        if target is not None and obj.name != target.name:
            results.append(failed([error("INVALID_TYPE", f"{obj.name} records cannot be upserted as {target.name}")]))
            continue
        if target is not None:
            results.append(upsert_record(store, undo, obj, key_field, record))
        elif method == "POST":
            results.append(create_record(store, undo, obj, record))
        else:
            results.append(update_record(store, undo, obj, record))
    if all_or_none and not all(r["success"] for r in results):
        undo.rollback()
        results = [r if not r["success"] else failed([ROLLED_BACK], r.get("id")) for r in results]
        for r in results:
            r.pop("created", None)
    return 200, results


def create_record(store: OrgStore, undo: Undo, obj: SObject, record: dict[str, Any]) -> dict[str, Any]:
    if "id" in record or "Id" in record:
        return failed([error("INVALID_FIELD", "cannot specify Id in an insert call", "Id")])
    record_id, errors = store.create(obj.name, writable(record))
    if errors or record_id is None:
        return failed(errors)
    undo.created(obj.name, record_id)
    return {"id": record_id, "success": True, "errors": []}


def update_record(store: OrgStore, undo: Undo, obj: SObject, record: dict[str, Any]) -> dict[str, Any]:
    record_id = record.get("id") or record.get("Id")
    if not record_id:
        return failed([error("MISSING_ARGUMENT", "Id not specified in an update call", "Id")])
    mark = len(undo.entries)
    undo.before_change(obj.name, str(record_id))
    errors = store.update(obj.name, str(record_id), writable(record))
    if errors:
        del undo.entries[mark:]   # nothing changed
        return failed(errors, str(record_id))
    found = store.table(obj.name).find(str(record_id))
    return {"id": found["Id"] if found else str(record_id), "success": True, "errors": []}


def upsert_record(store: OrgStore, undo: Undo, obj: SObject, key_field: str, record: dict[str, Any]) -> dict[str, Any]:
    key = record.get(key_field)
    if key is None:
        key = next((v for k, v in record.items() if k.lower() == key_field.lower()), None)
    if key in (None, ""):
        return failed([error("MISSING_ARGUMENT", f"{key_field} not specified", key_field)])
    table = store.table(obj.name)
    mark = len(undo.entries)
    for match in table.matching(key_field, key):
        undo.before_change(obj.name, match)
    values = {k: v for k, v in writable(record).items() if k.lower() != key_field.lower()}
    record_id, created, errors, _ = store.upsert(obj.name, key_field, key, values)
    if errors or record_id is None:
        del undo.entries[mark:]   # nothing changed
        return failed(errors)
    if created:
        undo.created(obj.name, record_id)
    return {"id": record_id, "success": True, "errors": [], "created": created}


def collection_delete(store: OrgStore, ids: list[str], all_or_none: bool) -> Result:
    if len(ids) > COLLECTION_LIMIT:
        raise ApiFailure(400, "EXCEEDED_ID_LIMIT", f"record limit reached. cannot submit more than "
                         f"{COLLECTION_LIMIT} records into this call")
    undo = Undo(store)
    results = []
    for record_id in ids:
        obj = next((store.objects[name] for name, table in store.tables.items() if table.find(record_id)), None)
        current = store.table(obj.name).find(record_id) if obj else None
        if obj is None or current is None:
            results.append(failed([error("INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {record_id}")],
                                  record_id))
        elif current.get("IsDeleted"):
            results.append(failed([error("ENTITY_IS_DELETED", "entity is deleted")], record_id))
        elif not obj.soft_deletes:
            results.append(failed([error("DELETE_FAILED", f"{obj.name} records cannot be deleted")], record_id))
        else:
            undo.before_change(obj.name, current["Id"])
            store.soft_delete(obj.name, current["Id"])
            results.append({"id": current["Id"], "success": True, "errors": []})
    if all_or_none and not all(r["success"] for r in results):
        undo.rollback()
        results = [r if not r["success"] else failed([ROLLED_BACK], r["id"]) for r in results]
    return 200, results
