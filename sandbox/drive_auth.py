"""Google's OAuth 2.0 token endpoint, emulated: service-account JWT grants and refresh tokens.

The sandbox generates one RSA key pair per workspace; `service_account_info` hands the private key
to clients, and the token endpoint checks RS256 assertions with the public key, as Google does.
Access tokens live in `AuthState.tokens`; tests expire them (`expire_tokens`) or revoke the
credentials (`revoke`) to drive the client's 401 -> refresh -> error paths. A subject listed in
`AuthState.undelegated` is one the domain-wide delegation does not cover: Google's
`unauthorized_client` refusal, as is a delegated token asked for a scope outside
`AuthState.delegated_scopes` (the scopes the Admin console granted the client; None: any). Each token
carries the scopes it was issued for (a service account's assertion's `scope`; an authorized user's
consent, `AuthState.user_scopes`), and every API checks them (`has_scope`): a token without the
API's scope is answered 403 `insufficientPermissions`, as Google does.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .drive_state import state
from .faults import BrokenAnswer

TOKEN_PATH = "/google/oauth2/token"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # the audience google-auth always signs for
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_TTL = 3600
CLIENT_EMAIL = "inlet-sync@sandbox-project.iam.gserviceaccount.com"


DRIVE_SCOPES = frozenset(
    {
        "https://www.googleapis.com/auth/drive",
        "https://www.googleapis.com/auth/drive.readonly",
        "https://www.googleapis.com/auth/drive.metadata.readonly",
    }
)
GMAIL_SCOPE = "https://www.googleapis.com/auth/gmail.readonly"


@dataclass
class Issued:
    principal: str  # service account email, delegated subject, or the authorized user's client id
    expires: float
    scopes: frozenset[str] = frozenset()


@dataclass
class AuthState:
    private_pem: str
    public_key: Any
    key_id: str
    client_email: str = CLIENT_EMAIL
    client_id: str = "sandbox-client.apps.googleusercontent.com"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    refresh_token: str = field(default_factory=lambda: "1//" + secrets.token_urlsafe(24))
    tokens: dict[str, Issued] = field(default_factory=dict)
    revoked: bool = False
    grants: int = 0
    undelegated: set[str] = field(default_factory=set)  # subjects the domain-wide delegation does not cover
    delegated_scopes: set[str] | None = None  # scopes the domain-wide delegation grants; None: any
    user_scopes: frozenset[str] = frozenset({"https://www.googleapis.com/auth/drive.readonly", GMAIL_SCOPE})
    user_email: str = ""  # who granted the refresh token (about.get); "": the workspace's first user


def auth(ws: Any) -> AuthState:
    """The workspace's key pair and issued tokens (an RSA key is generated on first use)."""
    with ws.lock:
        st = state(ws)
        if st.auth is None:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import rsa

            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ).decode()
            st.auth = AuthState(pem, key.public_key(), secrets.token_hex(20))
        return st.auth


def service_account_info(ws: Any, token_uri: str) -> dict[str, str]:
    a = auth(ws)
    return {
        "type": "service_account",
        "project_id": "sandbox-project",
        "private_key_id": a.key_id,
        "private_key": a.private_pem,
        "client_email": a.client_email,
        "client_id": "1000000000001",
        "token_uri": token_uri,
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
    }


def authorized_user_info(ws: Any, token_uri: str) -> dict[str, str]:
    a = auth(ws)
    return {
        "type": "authorized_user",
        "client_id": a.client_id,
        "client_secret": a.client_secret,
        "refresh_token": a.refresh_token,
        "token_uri": token_uri,
    }


def expire_tokens(ws: Any) -> int:
    """Every access token issued so far answers 401 from now on; returns how many."""
    with ws.lock:
        a = auth(ws)
        for issued in a.tokens.values():
            issued.expires = 0.0
        return len(a.tokens)


def revoke(ws: Any, revoked: bool = True) -> None:
    """Refuse the key and the refresh token (invalid_grant) and expire issued tokens."""
    with ws.lock:
        auth(ws).revoked = revoked
        expire_tokens(ws)


def token_valid(ws: Any, faults: Any, header: str) -> bool:
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    with ws.lock:
        issued = auth(ws).tokens.get(token)
        return bool(issued and issued.expires > ws.clock() and token not in faults.expired_tokens)


def has_scope(ws: Any, header: str, wanted: frozenset[str]) -> bool:
    """Whether the (valid) bearer token of `header` was issued for one of the `wanted` scopes."""
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    with ws.lock:
        issued = auth(ws).tokens.get(token)
        return bool(issued and issued.scopes & wanted)


def token_principal(ws: Any, header: str) -> str:
    """Who the (valid) bearer token of `header` acts as."""
    with ws.lock:
        return str(auth(ws).tokens[header[7:].strip()].principal)


def token_user(ws: Any, header: str) -> str:
    """The address of the user the (valid) bearer token of `header` acts as, as Drive's `about.get`
    names it: the delegated subject, the service account, or the authorized user who granted the
    refresh token (`AuthState.user_email`, by default the workspace's first user)."""
    principal = token_principal(ws, header)
    with ws.lock:
        a = auth(ws)
        if principal != a.client_id:
            return principal
        return a.user_email or next((u.email for u in ws.users.values()), "")


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _verify_jwt(ws: Any, assertion: str, audiences: tuple[str, ...]) -> tuple[dict[str, Any] | None, str]:
    """The claims of a valid assertion, or None and why not."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    try:
        head, body, sig = assertion.split(".")
        header, claims = json.loads(_b64(head)), json.loads(_b64(body))
        signature = _b64(sig)
    except ValueError:
        return None, "Invalid JWT: malformed assertion."
    if header.get("alg") != "RS256":
        return None, "Invalid JWT: unsupported algorithm."
    try:
        auth(ws).public_key.verify(signature, f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return None, "Invalid JWT Signature."
    now = ws.clock()
    if claims.get("iss") != auth(ws).client_email:
        return None, "Invalid JWT: unknown issuer."
    if claims.get("aud") not in (*audiences, GOOGLE_TOKEN_URI):
        return None, "Invalid JWT: Failed audience check."
    if not (claims.get("iat", 0) - 300 <= now < claims.get("exp", 0) + 300):
        return None, "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
    if not claims.get("scope"):
        return None, "Invalid OAuth scope or ID token audience provided."
    return claims, ""


def _issue(ws: Any, principal: str, scopes: frozenset[str]) -> JSONResponse:
    token = "ya29.sandbox-" + secrets.token_urlsafe(24)
    with ws.lock:
        a = auth(ws)
        a.tokens[token] = Issued(principal, ws.clock() + TOKEN_TTL, scopes)
        a.grants += 1
    return JSONResponse({"access_token": token, "expires_in": TOKEN_TTL, "token_type": "Bearer"})


def token_route(ctx: Any) -> Any:
    async def token(request: Request) -> Response:
        fault = ctx.faults.check("drive", "token")
        if fault and fault.network:
            return BrokenAnswer(fault)
        if fault:
            return _oauth_error(
                fault.status,
                "temporarily_unavailable" if fault.status >= 500 else "invalid_request",
                fault.reason or "injected fault",
            )
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        ws, a = ctx.ws, auth(ctx.ws)
        grant = form.get("grant_type", "")
        if grant == JWT_GRANT:
            audiences = (ctx.http_url + TOKEN_PATH, ctx.https_url + TOKEN_PATH)
            claims, why = _verify_jwt(ws, form.get("assertion", ""), audiences)
            if claims is None or a.revoked:
                return _oauth_error(400, "invalid_grant", why or "Invalid JWT Signature.")
            subject = claims.get("sub")
            if subject and ws.user_by_email(subject) is None:
                return _oauth_error(400, "invalid_grant", "Invalid email or User ID")
            scopes = frozenset(str(claims["scope"]).split())
            outside = a.delegated_scopes is not None and not scopes <= a.delegated_scopes
            if subject and (subject.lower() in a.undelegated or outside):
                return _oauth_error(
                    401,
                    "unauthorized_client",
                    "Client is unauthorized to retrieve access "
                    "tokens using this method, or client not authorized for any of the scopes "
                    "requested.",
                )
            return _issue(ws, subject or claims["iss"], scopes)
        if grant == "refresh_token":
            if form.get("client_id") != a.client_id or form.get("client_secret") != a.client_secret:
                return _oauth_error(401, "invalid_client", "The OAuth client was not found.")
            if form.get("refresh_token") != a.refresh_token or a.revoked:
                return _oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
            asked = frozenset(form["scope"].split()) if form.get("scope") else a.user_scopes
            if not asked <= a.user_scopes:
                return _oauth_error(400, "invalid_scope", "Bad Request")
            return _issue(ws, a.client_id, asked)
        return _oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant}")

    return token
