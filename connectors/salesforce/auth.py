"""OAuth for Salesforce as an `httpx.Auth`: log in, send every call to the org's instance, renew once.

    POST {login_url}/services/oauth2/token  grant_type=client_credentials&client_id=..&client_secret=..
                                            or grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=..
    -> {"access_token": "00D..!AQ..", "instance_url": "https://acme.my.salesforce.com", "token_type": "Bearer", ...}

Neither grant returns a refresh token, so on `401 INVALID_SESSION_ID` the flow logs in again and
sends the request once more. API paths are written relative (`/services/data/v61.0/query`): the flow
points them at the `instance_url` of the current token, which is where the org lives.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from hub import AuthError, TransientError, redact

from .settings import ClientCredentials, JwtBearer, SalesforceSettings

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME = 180   # seconds: Salesforce refuses assertions that expire later than 3 minutes ahead


def is_invalid_session(response: httpx.Response) -> bool:
    """`401 [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]`."""
    if response.status_code != 401:
        return False
    try:
        body = response.json()
    except ValueError:
        return True   # a 401 without Salesforce's body still means the token was refused
    codes = [e.get("errorCode") for e in body if isinstance(e, dict)] if isinstance(body, list) else []
    return not codes or "INVALID_SESSION_ID" in codes


def jwt_assertion(auth: JwtBearer, now: float) -> str:
    """The signed RS256 assertion: iss = consumer key, sub = username, aud, exp 3 minutes ahead."""
    try:
        key = Path(auth.private_key_file).expanduser().read_bytes()
    except OSError as exc:
        raise AuthError(f"cannot read private_key_file {auth.private_key_file}: {exc.strerror}") from None
    claims = {"iss": auth.client_id, "sub": auth.username, "aud": auth.audience,
              "exp": int(now) + ASSERTION_LIFETIME}
    import jwt  # here: PyJWT and its cryptography cost 20 MB in every process, and few use this grant

    try:
        return jwt.encode(claims, key, algorithm="RS256")
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        raise AuthError(f"private_key_file {auth.private_key_file} is not a usable RSA private key: {exc}") from None


class SalesforceAuth(httpx.Auth):
    """Bearer token from either grant; `instance_url` of the token is where requests go."""

    requires_response_body = True   # the 401 body tells an expired session from other refusals

    def __init__(self, settings: SalesforceSettings, *, now: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.now = now
        self.access_token: str | None = None
        self.instance_url: str | None = None
        self.logins = 0            # token requests made
        self.session_retries = 0   # requests sent again after a 401

    @property
    def token_url(self) -> str:
        return f"{self.settings.login_url}/services/oauth2/token"

    def token_request(self) -> httpx.Request:
        auth = self.settings.auth
        if isinstance(auth, ClientCredentials):
            form = {"grant_type": "client_credentials", "client_id": auth.client_id,
                    "client_secret": auth.client_secret.get_secret_value()}
        else:
            form = {"grant_type": JWT_GRANT, "assertion": jwt_assertion(auth, self.now())}
        return httpx.Request("POST", self.token_url, data=form, headers={"Accept": "application/json"})

    def accept_token(self, response: httpx.Response) -> None:
        """Keep the token and instance from a 200, or raise with the OAuth error's own words:
        `{"error": "invalid_grant", "error_description": "authentication failure"}`."""
        self.logins += 1
        try:
            body: Any = response.json()
        except ValueError:
            body = {}
        if response.status_code == 200 and isinstance(body, dict) and body.get("access_token"):
            self.access_token = str(body["access_token"])
            self.instance_url = str(body.get("instance_url") or self.settings.login_url).rstrip("/")
            return
        body = body if isinstance(body, dict) else {}
        code = body.get("error")
        words = body.get("error_description") or code or response.text[:200] or response.reason_phrase
        detail = f"{code}: {words}" if code and words != code else words
        message = redact(f"Salesforce login ({self.settings.auth.grant}) at {self.token_url} refused: "
                         f"HTTP {response.status_code} {detail}", self.settings.secrets())
        # a 5xx, a 429 or a 200 whose body is not a token (cut short, a proxy's page) is worth retrying
        transient = response.status_code >= 500 or response.status_code in (200, 429)
        error_type = TransientError if transient else AuthError
        raise error_type(message, status=response.status_code, code=code)

    def on_instance(self, request: httpx.Request) -> None:
        """Point a request written against any host at the current instance, with its token."""
        assert self.instance_url is not None and self.access_token is not None
        target = urlsplit(self.instance_url)
        request.url = request.url.copy_with(scheme=target.scheme, netloc=target.netloc.encode("ascii"))
        request.headers["Host"] = target.netloc
        request.headers["Authorization"] = f"Bearer {self.access_token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.access_token is None:
            self.accept_token((yield self.token_request()))
        used = self.access_token
        self.on_instance(request)
        response = yield request
        if not is_invalid_session(response):
            return
        if self.access_token == used:          # nobody renewed it meanwhile
            self.access_token = None
            self.accept_token((yield self.token_request()))
        self.session_retries += 1
        self.on_instance(request)
        yield request                          # once: a second 401 goes back to the caller
