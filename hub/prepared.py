"""Records made ready to store: canonical JSON text and checksum, computed once, anywhere.

Preparing a record is pure CPU work (serialising and hashing), so it can run where the record
was read — in a reader process beside the writer (`hub.readers`) — and the writer only looks up
checksums and upserts. A prepared record is a plain tuple because it crosses a process boundary
once per record: tuples are pickled five times faster than dataclass instances.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from hub.jsontext import canonical
from hub.records import Record

# (kind, external_id, account_ref, data_text, checksum, deleted, bare, updated_at):
# `data_text` is the canonical JSON of the fields, `checksum` its digest with the deleted flag,
# `bare` says the record has no fields at all (a tombstone that keeps what was known before).
PreparedRecord = tuple[str, str, str | None, str, str, bool, bool, datetime | None]


def digest(text: str, deleted: bool) -> str:
    """The checksum of a record whose canonical JSON is `text`: what is stored is what is hashed."""
    return hashlib.blake2b(text.encode() + (b"\x00D" if deleted else b""), digest_size=16).hexdigest()


def checksum(fields: dict[str, Any], deleted: bool) -> str:
    return digest(canonical(fields), deleted)


def prepare(record: Record) -> PreparedRecord:
    fields = record.fields
    text = canonical(fields)
    account = fields.get("account_id")
    return (record.kind, record.external_id, str(account) if account is not None else None, text,
            digest(text, record.deleted), record.deleted, not fields, record.updated_at)
