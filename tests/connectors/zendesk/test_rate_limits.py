"""Both budgets are kept client-side, and the server's 429s are waited out without failing a sync."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import httpx

from connectors.zendesk.connector import ZendeskConnector
from connectors.zendesk.sandbox import ZendeskSandbox
from connectors.zendesk.settings import ZendeskSettings
from hub import RetryPolicy

Start = Callable[..., ZendeskSandbox]
Connect = Callable[..., ZendeskConnector]


def _tickets(zd: SimpleNamespace, count: int) -> dict[str, Any]:
    return {"tickets": [zd.ticket(i, zd.NOW - zd.DAY + i, requester_id=1) for i in range(1, count + 1)]}


def test_client_spaces_export_requests_and_the_server_never_says_429(
        sandboxes: Start, connect: Connect, zd: SimpleNamespace, clock: Any) -> None:
    sandbox = sandboxes(_tickets(zd, 40), export_page_size=2)   # 20 export pages at 10 a minute
    connector = connect(sandbox)
    started = clock.now
    records, pages = zd.read_all(connector, "tickets")
    assert sorted(int(r.external_id) for r in records) == list(range(1, 41))
    assert [status for _, _, status in sandbox.request_log] == [200] * 20
    # the first ten go at once, the next ten when the first leave the minute: never a 429
    assert clock.now - started >= 60
    assert max(clock.sleeps) <= 60.0 + 1e-6


def test_plan_limit_is_kept_too(sandboxes: Start, connect: Connect, zd: SimpleNamespace, clock: Any) -> None:
    orgs = {"organizations": [zd.org(i, zd.NOW - zd.DAY) for i in range(1, 1201)]}
    sandbox = sandboxes(orgs, plan_per_minute=5, export_page_size=100)   # the crowded second is listed
    connector = connect(sandbox)
    records, _ = zd.read_all(connector, "organizations")
    assert len({r.external_id for r in records}) == len(records) == 1200
    assert {status for _, _, status in sandbox.request_log} == {200}
    requests = len(sandbox.request_log)
    assert requests >= 12 and clock.now - zd.NOW >= (requests - 1) // 5 * 60   # five per minute


def test_server_429s_are_waited_out_with_retry_after(sandboxes: Start, connect: Connect, zd: SimpleNamespace,
                                                     clock: Any) -> None:
    sandbox = sandboxes(_tickets(zd, 40), export_page_size=2)
    connector = connect(sandbox, export_requests_per_minute=100_000)  # a client that trusts the server
    records, _ = zd.read_all(connector, "tickets")
    assert sorted(int(r.external_id) for r in records) == list(range(1, 41))
    statuses = [status for _, _, status in sandbox.request_log]
    assert statuses.count(429) >= 1 and statuses.count(200) == 20
    assert any(wait >= 10 for wait in clock.sleeps)  # Retry-After, not a short backoff


def test_text_plain_429_with_retry_after_then_success() -> None:
    waits: list[float] = []
    answers = iter([httpx.Response(429, text="Too Many Requests", headers={"Retry-After": "17"}),
                    httpx.Response(200, json={"user": {"id": 1, "name": "A", "email": "a@x", "role": "admin"}})])
    connector = ZendeskConnector(
        ZendeskSettings(subdomain="acme", email="a@x.com", api_token="t0ken-value"),
        transport=httpx.MockTransport(lambda request: next(answers)), sleep=waits.append,
        retry=RetryPolicy(jitter=0))
    assert connector.check().ok
    assert 17.0 in waits
    connector.close()
