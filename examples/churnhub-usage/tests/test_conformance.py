"""The churnhub conformance suite against the usage sandbox: check, reads, resumes, idempotency, errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub import AuthError, PermanentError, RetryPolicy, TransientError
from hub.testing import ConnectorConformance, ErrorSample, FakeTime, OperationSample, StreamSample

from churnhub_usage.connector import UsageConnector
from churnhub_usage.plugin import CONNECTOR_TYPE
from churnhub_usage.sandbox_world import demo_dataset
from churnhub_usage.settings import UsageSettings


def messages_of(account_id: str):
    return lambda sandbox: len(sandbox.messages(account_id))


class TestUsageConformance(ConnectorConformance):
    connector_type = CONNECTOR_TYPE
    plugin_module = "churnhub_usage.plugin"
    dataset = demo_dataset(accounts=5, days=4)       # 5 accounts, 20 usage rows
    settings_overrides = {"page_size": 6}
    stream_samples = {
        "accounts": StreamSample(expected=lambda sandbox: sandbox.account_ids(), unchanged_requests=1, min_pages=1),
        "daily_usage": StreamSample(expected=lambda sandbox: sandbox.usage_ids(), unchanged_requests=1, min_pages=4),
    }
    operation_samples = (
        OperationSample("send_in_app_message", {"account_id": "acct_0001", "text": "Your weekly report is ready"},
                        messages_of("acct_0001"), repeatable=True),
    )
    error_samples = (
        ErrorSample("a 500 on every attempt", lambda sandbox: sandbox.fail_next(10), TransientError,
                    stream="daily_usage"),
        ErrorSample("a 401 for a revoked token", lambda sandbox: sandbox.fail_next(1, status=401),
                    AuthError, stream="accounts"),
        ErrorSample("an account the export does not have", lambda sandbox: None, PermanentError,
                    operation=OperationSample("send_in_app_message", {"account_id": "acct_missing", "text": "Hi"},
                                              messages_of("acct_missing"))),
    )

    def connect(self, settings: Mapping[str, Any], sandbox: Any) -> UsageConnector:
        fake = FakeTime()  # retries and the rate limit sleep on fake time: nothing waits
        return UsageConnector(UsageSettings(**settings), sleep=fake.sleep, clock=fake.clock,
                              retry=RetryPolicy(max_attempts=3, jitter=0))
