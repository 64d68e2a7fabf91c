"""Reading an sObject incrementally, in `ORDER BY SystemModstamp, Id`, one page per query batch.

A *scan* is one query and the batches its `nextRecordsUrl`s lead to:

    first run   SELECT ... FROM Account ORDER BY SystemModstamp ASC, Id ASC               (queryAll)
    next runs   ... WHERE SystemModstamp >= <window start, below> ORDER BY ...
    resuming    ... WHERE (SystemModstamp > t) OR (SystemModstamp = t AND Id > 'id') ORDER BY ...

State after each page (JSON):

    {"position": {"modstamp": "2024-05-01T12:00:00.000Z", "id": "001..."},  # last record handled
     "scan_open": true, "next_records_url": "/services/data/v61.0/query/01g...-2000",
     "scan_started": 1714565000.0,                                          # when its query ran
     "recent": {"2024-05-01T12:00:00.000Z": ["001...", ...]}}

- Ties: SystemModstamp has whole seconds and is not unique, so the position is the pair (modstamp,
  Id). An open scan resumes at its `nextRecordsUrl`; when the locator has expired (15 minutes idle,
  another login) the keyset condition above resumes right after the position instead, so no record
  sharing the position's SystemModstamp is skipped or read twice.
- Lookback: a record's SystemModstamp is set when its transaction starts, but it becomes visible
  when it commits, so a record can appear *behind* a position already passed. A transaction lasts
  less than `lookback_seconds`, so a scan whose query ran at time R saw every record stamped before
  R - lookback. Each new run therefore re-reads from min(position, R - lookback) while the org is
  busy (the last `lookback_seconds`). Once it is quiet — R - lookback (and `SETTLE_SECONDS`)
  past the position — nothing at or before the position can still appear or change, and the run
  starts strictly after the position with the keyset condition, so a quiet org costs one empty
  query however many records share the position's second (a bulk load stamps thousands alike).
  R is the connector's clock, so a clock far ahead of Salesforce's narrows the window.
- Re-reads: `recent` remembers which records of that window were already handled with that
  exact SystemModstamp; they are skipped, so a run with no upstream change costs one request and
  yields nothing. Only *settled* records are remembered: one changed within `SETTLE_SECONDS` of
  the read could change again in the same second without a new SystemModstamp, so it is read
  again next time (a harmless re-yield). At most `RECENT_LIMIT` ids are kept; after a bulk change
  of more records than that inside the window, the surplus is re-yielded, unchanged, by the runs
  of the next `lookback_seconds` (until the window has moved past it).
- Deletes: `queryAll` returns soft-deleted records (`IsDeleted = true`, SystemModstamp bumped),
  yielded as tombstones. Purged records vanish; a full read (no state) marks its pages
  `full_refresh`, so the core retires records it did not see.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from hub import NotFoundError, Page, PermanentError, Record, TransientError

from .client import SalesforceClient
from .mapping import parse_datetime
from .soql import after_position, select, soql_datetime

RECENT_LIMIT = 2000
SETTLE_SECONDS = 60
ORDER = ("SystemModstamp ASC", "Id ASC")


@lru_cache(maxsize=1 << 12)
def stamp_key(moment: datetime) -> str:
    """Fixed-width UTC text, so keys sort like the moments they name."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class StreamSpec:
    sobject: str
    fields: tuple[str, ...]                   # standard fields, Id and SystemModstamp first
    mapper: Callable[..., Record]             # mapper(raw, extra=..., **options)
    soft_deletes: bool = True                 # read with queryAll (User has no IsDeleted)


@dataclass
class ScanCursor:
    """Where a stream stands in ORDER BY SystemModstamp, Id (see the module docstring)."""

    modstamp: str | None = None
    record_id: str | None = None
    scan_open: bool = False
    next_records_url: str | None = None
    scan_started: float | None = None          # unix time the current (or last) scan's query ran
    recent: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def from_state(cls, state: Mapping[str, Any] | None) -> ScanCursor:
        state = state or {}
        position = state.get("position") or {}
        return cls(modstamp=position.get("modstamp"), record_id=position.get("id"),
                   scan_open=bool(state.get("scan_open")) and bool(position),
                   next_records_url=state.get("next_records_url"), scan_started=state.get("scan_started"),
                   recent={key: set(ids) for key, ids in (state.get("recent") or {}).items()})

    def to_state(self) -> dict[str, Any]:
        position = {"modstamp": self.modstamp, "id": self.record_id} if self.modstamp else None
        return {"position": position, "scan_open": self.scan_open,
                "next_records_url": self.next_records_url if self.scan_open else None,
                "scan_started": self.scan_started,
                "recent": {key: sorted(ids) for key, ids in sorted(self.recent.items())}}

    @property
    def position_time(self) -> datetime:
        assert self.modstamp is not None
        return datetime.fromisoformat(self.modstamp.replace("Z", "+00:00"))

    def window_start(self, lookback: float) -> datetime:
        """Where the next run's re-read starts (see Lookback in the module docstring)."""
        back = timedelta(seconds=lookback)
        if self.scan_started is None:
            return self.position_time - back
        started = datetime.fromtimestamp(int(self.scan_started), UTC)   # whole seconds, like SystemModstamp
        return min(self.position_time, started - back)

    def quiet_after_position(self, lookback: float) -> bool:
        """Whether the last scan's query ran so long after the position that nothing stamped at or
        before it can still appear or change within its second: the next run starts strictly after it."""
        if self.scan_started is None or self.modstamp is None:
            return False
        return int(self.scan_started) - max(lookback, SETTLE_SECONDS) > self.position_time.timestamp()

    def already_handled(self, key: str, record_id: str) -> bool:
        return record_id in self.recent.get(key, ())

    def advance(self, key: str, record_id: str, *, settled: bool) -> None:
        self.modstamp, self.record_id = key, record_id
        if settled:
            self.recent.setdefault(key, set()).add(record_id)

    def prune(self, lookback: float) -> None:
        """Keep only what the next run's lookback window can show again, at most RECENT_LIMIT ids."""
        if not self.recent or self.modstamp is None:
            return
        oldest = stamp_key(self.window_start(lookback))
        pairs = sorted((key, rid) for key, ids in self.recent.items() if key >= oldest for rid in ids)
        self.recent = {}
        for key, rid in pairs[-RECENT_LIMIT:]:
            self.recent.setdefault(key, set()).add(rid)


@dataclass
class StreamReader:
    client: SalesforceClient
    now: Callable[[], float]                  # wall-clock unix seconds (settling)
    lookback: float

    def query_for(self, spec: StreamSpec, extra: Sequence[str], cursor: ScanCursor) -> str:
        if cursor.scan_open or cursor.quiet_after_position(self.lookback):
            where: str | None = after_position(cursor.position_time, str(cursor.record_id))
        elif cursor.modstamp is None:
            where = None
        else:
            where = f"SystemModstamp >= {soql_datetime(cursor.window_start(self.lookback))}"
        fields = list(dict.fromkeys([*spec.fields, *extra]))
        return select(spec.sobject, fields, where=where, order_by=ORDER)

    def first_batch(self, spec: StreamSpec, extra: Sequence[str], cursor: ScanCursor) -> tuple[dict[str, Any], list[str]]:
        notes: list[str] = []
        if cursor.scan_open and cursor.next_records_url:
            try:
                return self.client.query_more(cursor.next_records_url), notes
            except PermanentError as error:   # NotFoundError included
                if not isinstance(error, NotFoundError) and error.code != "INVALID_QUERY_LOCATOR":
                    raise
                notes.append(f"{spec.sobject}: the query locator is no longer valid ({error.code}); "
                             "resumed right after the last record read")
        soql = self.query_for(spec, extra, cursor)
        if not cursor.scan_open:
            # A new scan. A keyset resume keeps the older start: the part read before it is as old.
            cursor.scan_started = self.now()
        return self.client.query(soql, include_deleted=spec.soft_deletes), notes

    def read(self, spec: StreamSpec, state: Mapping[str, Any] | None, *, extra: Sequence[str] = (),
             map_options: Mapping[str, Any] | None = None) -> Iterator[Page]:
        cursor = ScanCursor.from_state(state)
        from_scratch = cursor.modstamp is None
        options = dict(map_options or {})
        self.client.ensure_read_budget()
        before = self.client.request_count
        body, notes = self.first_batch(spec, extra, cursor)
        while True:
            settled_before = stamp_key(datetime.fromtimestamp(self.now() - SETTLE_SECONDS, UTC))
            records = []
            for raw in body.get("records") or []:
                moment = parse_datetime(raw.get("SystemModstamp"))
                if moment is None or not raw.get("Id"):
                    raise TransientError(f"{spec.sobject} record without Id/SystemModstamp in a query batch: "
                                         f"{str(raw)[:200]}")
                key, record_id = stamp_key(moment), str(raw["Id"])
                if not cursor.already_handled(key, record_id):
                    records.append(spec.mapper(raw, extra=extra, **options))
                cursor.advance(key, record_id, settled=key < settled_before)
            next_url = None if body.get("done", True) else body.get("nextRecordsUrl")
            cursor.scan_open, cursor.next_records_url = next_url is not None, next_url
            cursor.prune(self.lookback)
            yield Page(records, cursor.to_state(), notes=tuple(notes),
                       requests=self.client.request_count - before, full_refresh=from_scratch)
            if next_url is None:
                return
            notes = []
            self.client.ensure_read_budget()   # raised after the page above is safely yielded
            before = self.client.request_count
            body = self.client.query_more(next_url)
