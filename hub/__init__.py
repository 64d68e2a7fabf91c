"""churnhub: the public face for plugins, connectors and actions.

Connectors and actions import only from here, never from `hub.models`, `hub.db`, `hub.store`,
`hub.sync` or `hub.app`: a connector knows its API, not the hub's database.
"""

from hub.connector import (
    CheckResult,
    Connector,
    ConnectorSettings,
    ConnectorType,
    Operation,
    OperationResult,
    Sandbox,
    Stream,
    WebhookEvent,
)
from hub.errors import (
    AuthError,
    ConfigError,
    ConnectorError,
    HubError,
    NotFoundError,
    PermanentError,
    PluginError,
    QuotaExhaustedError,
    RateLimitedError,
    TransientError,
)
from hub.extensions import ActionType, HealthFactor
from hub.faults import FaultProfile
from hub.hookspecs import hookimpl
from hub.http import (
    USER_AGENT,
    ApiClient,
    RateLimiter,
    RetryPolicy,
    WindowLimiter,
    default_error_message,
    error_for_status,
    parse_retry_after,
    redact,
)
from hub.pagination import CursorFromLastItem, NextUrl, Offset, Paginator, paginate
from hub.records import Kind, Page, Record
from hub.sandbox import AdjustableClock, RunningServer, serve_in_thread

__all__ = [
    "USER_AGENT", "ActionType", "AdjustableClock", "FaultProfile", "ApiClient", "AuthError", "CheckResult", "ConfigError", "Connector",
    "ConnectorError", "ConnectorSettings", "ConnectorType", "CursorFromLastItem", "HealthFactor",
    "HubError", "Kind", "NextUrl", "NotFoundError", "Offset", "Operation", "OperationResult", "Page",
    "Paginator", "PermanentError", "PluginError", "QuotaExhaustedError", "RateLimitedError",
    "RateLimiter", "Record", "RetryPolicy", "RunningServer", "Sandbox", "Stream", "TransientError", "WebhookEvent", "WindowLimiter",
    "default_error_message", "error_for_status", "hookimpl", "paginate", "parse_retry_after", "redact",
    "serve_in_thread",
]
