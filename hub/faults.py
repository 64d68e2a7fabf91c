"""Fault injection for sandboxes: the failures real APIs produce, on demand and reproducibly.

A `FaultProfile` wraps any sandbox (an ASGI app) in `FaultInjector`. Each request draws from a
seeded random generator, so a failing test replays exactly. Faults:

- `error_rate`: 500/502/503 with a JSON body;
- `rate_429`: 429 with `Retry-After: 0`;
- `latency`: extra seconds before answering (tests keep it small);
- `drop_rate`: headers sent, then the connection is closed mid-body (a dropped connection);
- `truncate_rate`: a 200 whose JSON body is cut short (Content-Length honest, JSON broken);
- `non_json_rate`: a 200 with an HTML error page instead of JSON;
- `fail_request_numbers`: exact request numbers (1-based, counting only paths matching
  `path_prefix`) that answer 500 — "a 500 in the middle of a page sequence".
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass
class FaultProfile:
    error_rate: float = 0.0
    rate_429: float = 0.0
    latency: float = 0.0
    drop_rate: float = 0.0
    truncate_rate: float = 0.0
    non_json_rate: float = 0.0
    fail_request_numbers: frozenset[int] = field(default_factory=frozenset)
    path_prefix: str = "/"
    seed: int = 0

    @property
    def active(self) -> bool:
        return bool(self.error_rate or self.rate_429 or self.latency or self.drop_rate
                    or self.truncate_rate or self.non_json_rate or self.fail_request_numbers)


@dataclass
class FaultLog:
    """What the injector did, for assertions: counts per fault kind."""

    requests: int = 0
    injected: dict[str, int] = field(default_factory=dict)

    def note(self, kind: str) -> None:
        self.injected[kind] = self.injected.get(kind, 0) + 1


class FaultInjector:
    def __init__(self, app: Callable[..., Awaitable[None]], profile: FaultProfile) -> None:
        self.app = app
        self.profile = profile
        self.log = FaultLog()
        self._rng = random.Random(profile.seed)
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith(self.profile.path_prefix):
            await self.app(scope, receive, send)
            return
        with self._lock:
            self.log.requests += 1
            number = self.log.requests
            draw = self._rng.random()
        fault = self._choose(number, draw)
        if self.profile.latency:
            await asyncio.sleep(self.profile.latency)
        if fault is None:
            await self.app(scope, receive, send)
            return
        self.log.note(fault)
        if fault in ("error", "numbered"):
            await _respond(send, 500, b'{"error":{"type":"api_error","message":"injected server error"}}')
        elif fault == "429":
            await _respond(send, 429, b'{"error":{"message":"injected rate limit"}}', {"retry-after": "0"})
        elif fault == "non_json":
            await _respond(send, 200, b"<html><body>502 Bad Gateway</body></html>", content_type=b"text/html")
        elif fault == "truncate":
            await _respond(send, 200, b'{"data": [{"id": "x", "obj')
        elif fault == "drop":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")]})
            await send({"type": "http.response.body", "body": b'{"data": [', "more_body": True})
            raise ConnectionResetError("injected dropped connection")

    def _choose(self, number: int, draw: float) -> str | None:
        profile = self.profile
        if number in profile.fail_request_numbers:
            return "numbered"
        thresholds = [("error", profile.error_rate), ("429", profile.rate_429), ("drop", profile.drop_rate),
                      ("truncate", profile.truncate_rate), ("non_json", profile.non_json_rate)]
        cumulative = 0.0
        for kind, rate in thresholds:
            cumulative += rate
            if draw < cumulative:
                return kind
        return None


async def _respond(send: Send, status: int, body: bytes, headers: dict[str, str] | None = None,
                   content_type: bytes = b"application/json") -> None:
    raw = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def profile_from_json(text: str) -> FaultProfile:
    """`{"error_rate": 0.1, "fail_request_numbers": [3]}` -> FaultProfile (for CLI options)."""
    data = json.loads(text)
    if "fail_request_numbers" in data:
        data["fail_request_numbers"] = frozenset(data["fail_request_numbers"])
    return FaultProfile(**data)
