"""The sandbox org's OAuth: the token endpoint's two grants and the sessions they open.

    POST /services/oauth2/token
      grant_type=client_credentials&client_id=..&client_secret=..
      grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<RS256 JWT>
    -> 200 {"access_token", "instance_url", "id", "token_type": "Bearer", "issued_at", "signature"}
    -> 400 {"error": "invalid_grant", "error_description": "authentication failure"}

A JWT assertion must be signed (RS256) by the private key whose public key the connected app
holds, with `iss` = consumer key, `sub` = the integration username, `aud` one of the login
audiences and `exp` in the future but no more than 3 minutes ahead (checked on the sandbox clock).
Sessions expire `session_seconds` after they were issued; an expired or unknown token is refused
with `401 INVALID_SESSION_ID`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_MAX_AHEAD = 180 + 30   # 3 minutes, and the clock skew Salesforce tolerates
ORG_ID = "00DSB0000000001EAA"


class OAuthError(Exception):
    """A refused token request: `{"error": code, "error_description": description}` with `status`."""

    def __init__(self, code: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.code, self.description, self.status = code, description, status

    def body(self) -> dict[str, str]:
        return {"error": self.code, "error_description": self.description}


@dataclass(frozen=True)
class ConnectedApp:
    """What the org knows about the integration's connected app."""

    client_id: str = "3MVG9sandbox.churnhub.consumer.key"
    client_secret: str = "sandbox-consumer-secret-0123456789"
    username: str = "integration@churnhub.sandbox"               # the JWT `sub` it may act as
    public_key: str | bytes | None = None                        # PEM of the certificate's key (JWT grant)
    audiences: Sequence[str] = ("https://login.salesforce.com", "https://test.salesforce.com")


@dataclass
class Session:
    token: str
    user_id: str
    issued_at: float
    expires_at: float


@dataclass
class Sessions:
    """Issues and checks access tokens on the sandbox clock."""

    app: ConnectedApp
    clock: Callable[[], float]
    user_id: str
    session_seconds: float = 7200.0
    login_url: str = ""             # the sandbox's own origin, added to the accepted audiences
    open: dict[str, Session] = field(default_factory=dict)
    issued: int = 0                 # tokens handed out

    def audiences(self) -> set[str]:
        return {a.rstrip("/") for a in self.app.audiences} | ({self.login_url.rstrip("/")} if self.login_url else set())

    def grant(self, form: Mapping[str, str], instance_url: str) -> dict[str, Any]:
        """The token response for a token request's form, or `OAuthError`."""
        grant_type = form.get("grant_type", "")
        if grant_type == "client_credentials":
            self.check_client(form)
        elif grant_type == JWT_GRANT:
            self.check_assertion(form.get("assertion", ""))
        else:
            raise OAuthError("unsupported_grant_type", "grant type not supported")
        return self.issue(instance_url)

    def check_client(self, form: Mapping[str, str]) -> None:
        if form.get("client_id") != self.app.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        given = form.get("client_secret", "")
        if not hmac.compare_digest(given.encode(), self.app.client_secret.encode()):
            raise OAuthError("invalid_client", "invalid client credentials")

    def check_assertion(self, assertion: str) -> None:
        if self.app.public_key is None:
            raise OAuthError("invalid_grant", "no certificate is configured for this connected app")
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            raise OAuthError("invalid_grant", "invalid assertion") from None
        if header.get("alg") != "RS256":
            raise OAuthError("invalid_grant", "invalid assertion: the signing algorithm must be RS256")
        try:   # the expiry is checked below on the sandbox clock, not the machine's
            claims = jwt.decode(assertion, self.app.public_key, algorithms=["RS256"],
                                options={"verify_exp": False, "verify_aud": False, "verify_iat": False,
                                         "verify_nbf": False})
        except jwt.PyJWTError:
            raise OAuthError("invalid_grant", "invalid assertion: signature verification failed") from None
        if claims.get("iss") != self.app.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if not any(isinstance(a, str) and a.rstrip("/") in self.audiences() for a in audiences):
            raise OAuthError("invalid_grant", "audience is invalid")
        expires = claims.get("exp")
        now = self.clock()
        if not isinstance(expires, int | float) or expires <= now:
            raise OAuthError("invalid_grant", "expired authorization code")
        if expires > now + ASSERTION_MAX_AHEAD:
            raise OAuthError("invalid_grant", "invalid assertion: exp is more than 3 minutes ahead")
        if claims.get("sub") != self.app.username:
            raise OAuthError("invalid_grant", "user hasn't approved this consumer")

    def issue(self, instance_url: str) -> dict[str, Any]:
        now = self.clock()
        token = f"{ORG_ID[:15]}!AQsandbox.{secrets.token_urlsafe(24)}"
        self.open[token] = Session(token, self.user_id, now, now + self.session_seconds)
        self.issued += 1
        identity = f"{self.login_url or instance_url}/id/{ORG_ID}/{self.user_id}"
        issued_at = str(int(now * 1000))
        signature = base64.b64encode(hmac.new(self.app.client_secret.encode(), (identity + issued_at).encode(),
                                              hashlib.sha256).digest()).decode()
        return {"access_token": token, "instance_url": instance_url, "id": identity, "token_type": "Bearer",
                "issued_at": issued_at, "signature": signature, "scope": "api"}

    def session_of(self, authorization: str | None) -> Session | None:
        """The live session an `Authorization: Bearer ...` header names (expired ones are dropped)."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        session = self.open.get(authorization[len("Bearer "):].strip())
        if session is None:
            return None
        if self.clock() >= session.expires_at:
            self.open.pop(session.token, None)
            return None
        return session

    def expire_all(self) -> None:
        """End every session now, as an admin revoking them (or a password change) would."""
        self.open.clear()
