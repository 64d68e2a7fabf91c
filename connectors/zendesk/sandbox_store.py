"""Building blocks of the Zendesk sandbox: storage, cursors, error answers.

A `Collection` keeps one object type so that every endpoint stays fast at 100k+ objects:
listing walks a sorted id list (bisect), the incremental exports walk a sorted list of
`(timestamp, id)` keys, and each object's JSON is encoded once and reused until it changes.
"""

from __future__ import annotations

import base64
import json
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

Key = tuple[int, int]  # (unix timestamp, id)


def to_unix(value: str | None) -> int:
    if not value:
        return 0
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())


def to_iso(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def encode_cursor(payload: Any) -> str:
    """An opaque, URL-safe cursor (unpadded base64 of JSON)."""
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Any:
    """The payload of a cursor; ValueError when it is not one of ours."""
    try:
        return json.loads(base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4)))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid cursor {cursor!r}") from exc


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


class TimeIndex:
    """`(timestamp, id)` keys in order: what the incremental exports page through."""

    def __init__(self) -> None:
        self.keys: list[Key] = []
        self.key_of: dict[int, Key] = {}

    def load(self, pairs: Iterable[Key]) -> None:
        for ts, object_id in pairs:
            self.key_of[object_id] = (ts, object_id)
        self.keys = sorted(self.key_of.values())

    def put(self, object_id: int, ts: int) -> None:
        old = self.key_of.get(object_id)
        if old is not None:
            del self.keys[bisect_left(self.keys, old)]
        self.key_of[object_id] = (ts, object_id)
        insort(self.keys, (ts, object_id))

    def after(self, key: Key, limit: int, newest: int) -> tuple[list[Key], bool]:
        """Up to `limit` keys after `key` with timestamp <= `newest`, and whether more follow."""
        start = bisect_right(self.keys, key)
        window = self.keys[start:start + limit + 1]
        visible = [k for k in window if k[0] <= newest]
        return visible[:limit], len(visible) > limit


class Collection:
    """One object type: objects by id, listable ids in order, time index, cached JSON."""

    def __init__(self, name: str, timestamp: Callable[[dict[str, Any]], int]) -> None:
        self.name = name
        self.timestamp = timestamp
        self.objects: dict[int, dict[str, Any]] = {}
        self.listed: list[int] = []          # ids the list endpoints show (not deleted), ascending
        self.by_time = TimeIndex()
        self._json: dict[int, bytes] = {}
        self.next_id = 1

    def load(self, objects: Iterable[dict[str, Any]], listed: Callable[[dict[str, Any]], bool]) -> None:
        for obj in objects:
            self.objects[obj["id"]] = obj
        self.listed = sorted(i for i, obj in self.objects.items() if listed(obj))
        self.by_time.load((self.timestamp(obj), i) for i, obj in self.objects.items())
        self.next_id = max(self.objects, default=0) + 1

    def allocate_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def add(self, obj: dict[str, Any]) -> None:
        self.objects[obj["id"]] = obj
        insort(self.listed, obj["id"])
        self.by_time.put(obj["id"], self.timestamp(obj))
        self.next_id = max(self.next_id, obj["id"] + 1)

    def changed(self, object_id: int) -> None:
        """Call after mutating an object: refresh its time key and drop its cached JSON."""
        self._json.pop(object_id, None)
        self.by_time.put(object_id, self.timestamp(self.objects[object_id]))

    def unlist(self, object_id: int) -> None:
        index = bisect_left(self.listed, object_id)
        if index < len(self.listed) and self.listed[index] == object_id:
            del self.listed[index]

    def json(self, object_id: int) -> bytes:
        cached = self._json.get(object_id)
        if cached is None:
            cached = self._json[object_id] = dumps(self.objects[object_id])
        return cached

    def listed_from(self, after: int | None = None) -> Iterator[int]:
        start = 0 if after is None else bisect_right(self.listed, after)
        return (self.listed[i] for i in range(start, len(self.listed)))


class ApiProblem(Exception):
    """An error answer: HTTP status plus a Zendesk error body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status} {body}")
        self.status, self.body = status, body


def not_found() -> ApiProblem:
    return ApiProblem(404, {"error": "RecordNotFound", "description": "Not found"})


def invalid(field: str, description: str, error: str = "InvalidValue") -> ApiProblem:
    """A 422 in Zendesk's classic shape."""
    return ApiProblem(422, {"error": "RecordInvalid", "description": "Record validation errors",
                            "details": {field: [{"description": description, "error": error}]}})


def normalise_tags(tags: Iterable[Any]) -> list[str]:
    """Zendesk tags are lowercase words: "At Risk" becomes "at" and "risk"."""
    out: list[str] = []
    for tag in tags:
        for word in str(tag).lower().split():
            if word not in out:
                out.append(word)
    return out


def rating_summary(rating: dict[str, Any]) -> dict[str, Any]:
    """How a ticket embeds its satisfaction rating."""
    return {"id": rating["id"], "score": rating["score"], "comment": rating.get("comment"),
            "reason": rating.get("reason")}
