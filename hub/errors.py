"""The hub's error tree.

    HubError                      anything churnhub raises on purpose
    ├── ConfigError               bad YAML, unknown keys, unset env vars (carries file/line/path)
    ├── PluginError               duplicate type names, a plugin that fails to load
    ├── ConnectorError            something a connector's API said or did
    │   ├── AuthError             bad credentials, expired token that could not be renewed
    │   ├── TransientError        5xx, timeouts, dropped connections: worth retrying later
    │   │   └── RateLimitedError  429 after the retry budget was spent
    │   ├── PermanentError        4xx the API will answer the same way every time
    │   │   └── NotFoundError     404
    │   └── QuotaExhaustedError   a daily budget is spent: stop cleanly, keep state
    └── StoreError                database problems the user can act on

Every message is safe to print: connectors put the API's own words in it, never a secret.
"""

from __future__ import annotations


class HubError(Exception):
    """Base of every error churnhub raises deliberately."""


class ConfigError(HubError):
    """The configuration is wrong; the message names file, line and dotted path."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 path: str | None = None) -> None:
        self.file, self.line, self.path, self.detail = file, line, path, message
        where = ""
        if file:
            where = f"{file}:{line}" if line else file
        if path:
            where = f"{where} {path}" if where else path
        super().__init__(f"{where}: {message}" if where else message)


class PluginError(HubError):
    """A plugin could not be loaded or registered something invalid."""


class ConnectorError(HubError):
    """An error reported by, or while talking to, an external system."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 request_id: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.request_id = request_id
        self.retry_after = retry_after


class AuthError(ConnectorError):
    """Credentials were refused."""


class TransientError(ConnectorError):
    """A failure that may well succeed later (5xx, timeout, dropped connection)."""


class RateLimitedError(TransientError):
    """The API kept answering 429 after every allowed retry."""


class PermanentError(ConnectorError):
    """A request the API will refuse every time it is sent as is."""


class NotFoundError(PermanentError):
    """The object does not exist (404)."""


class QuotaExhaustedError(ConnectorError):
    """A daily or plan-wide budget is spent; the stream stops and keeps its state."""


class StoreError(HubError):
    """The database refused something the user can fix (wrong URL, unreachable server)."""
