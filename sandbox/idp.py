"""An OAuth 2.1 / OpenID identity provider for the sandbox users, as MCP clients meet one.

Issuer `<http_url>/idp`. The wire protocol of the authorization, token and registration endpoints
is the `mcp` SDK's authorization-server implementation (`create_auth_routes`: PKCE S256 required,
RFC 7591 dynamic registration, refresh grants); this module is the provider behind it plus what
the SDK does not serve: OpenID discovery and RFC 8414 metadata at the locations clients try, a
JWKS, client ID metadata documents (a client_id that is an https URL, or http on loopback, is
fetched and used as the client's registration), and a login.

Login: `login_hint=<email>` on the authorize request signs that sandbox user in at once (tests,
scripts); without it a page lists the sandbox users to pick from (a person trying `inlet demo` with
a desktop MCP client). Access tokens are RS256 JWTs whose `aud` is the requested `resource`
(RFC 8707), with `email`, `scope` and `client_id` claims. Refresh tokens rotate on every use.
`rotate_key()` starts signing with a new key (both stay in the JWKS), as providers do.
"""

from __future__ import annotations

import contextvars
import html
import ipaddress
import secrets
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import jwt
from mcp.server.auth.handlers.authorize import AuthorizationHandler
from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    IdentityAssertionParams,
    RefreshToken,
    TokenError,
    construct_redirect_uri,
)
from mcp.server.auth.routes import build_metadata, create_auth_routes, cors_middleware
from mcp.server.auth.settings import ClientRegistrationOptions, RevocationOptions
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyHttpUrl, ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

SCOPES = ["inlet.read", "openid", "email", "profile", "offline_access"]
DEFAULT_SCOPES = ["inlet.read"]
ACCESS_SECONDS = 3600
CODE_SECONDS = 300
_LOGIN_HINT: contextvars.ContextVar[str | None] = contextvars.ContextVar("login_hint", default=None)


@dataclass
class SigningKey:
    kid: str
    private: Any  # cryptography RSAPrivateKey

    def jwk(self) -> dict[str, Any]:
        data: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**data, "kid": self.kid, "use": "sig", "alg": "RS256"}


def new_key() -> SigningKey:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return SigningKey(kid=uuid.uuid4().hex[:16], private=rsa.generate_private_key(public_exponent=65537, key_size=2048))


def _loopback(host: str | None) -> bool:
    try:
        return host is not None and (host == "localhost" or ipaddress.ip_address(host).is_loopback)
    except ValueError:
        return False


@dataclass
class IdentityProvider:
    """The provider state (clients, codes, refresh tokens, keys) and the SDK provider protocol."""

    ctx: Any
    issuer: str
    keys: list[SigningKey] = field(default_factory=list)
    clients: dict[str, OAuthClientInformationFull] = field(default_factory=dict)
    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    refresh: dict[str, RefreshToken] = field(default_factory=dict)
    pending: dict[str, tuple[str, AuthorizationParams]] = field(default_factory=dict)
    client_documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)

    # --- keys and tokens ------------------------------------------------------------------------
    def signing_key(self) -> SigningKey:
        with self.lock:
            if not self.keys:  # generated on first use: most sandboxes never sign anything
                self.keys.append(new_key())
            return self.keys[-1]

    def rotate_key(self) -> SigningKey:
        """Sign with a new key from now on; the old one stays published (tokens it signed live on)."""
        with self.lock:
            self.signing_key()
            self.keys.append(new_key())
            return self.keys[-1]

    def jwks(self) -> dict[str, Any]:
        self.signing_key()
        with self.lock:
            return {"keys": [k.jwk() for k in self.keys]}

    def sign(self, claims: dict[str, Any], key: SigningKey | None = None, headers: dict[str, Any] | None = None) -> str:
        """A JWT of `claims` signed RS256 with `key` (default: the current signing key)."""
        key = key or self.signing_key()
        return jwt.encode(claims, key.private, algorithm="RS256", headers={"kid": key.kid, **(headers or {})})

    def access_claims(self, email: str, client_id: str, scopes: list[str], resource: str | None) -> dict[str, Any]:
        now = int(self.ctx.ws.clock())
        user = self.ctx.ws.user_by_email(email)
        return {
            "iss": self.issuer,
            "sub": user.id if user else email,
            "aud": resource or client_id,
            "email": email,
            "client_id": client_id,
            "scope": " ".join(scopes),
            "iat": now,
            "nbf": now,
            "exp": now + ACCESS_SECONDS,
            "jti": uuid.uuid4().hex,
        }

    def _tokens(self, client_id: str, email: str, scopes: list[str], resource: str | None) -> OAuthToken:
        refresh = secrets.token_urlsafe(32)
        with self.lock:
            self.refresh[refresh] = RefreshToken(
                token=refresh, client_id=client_id, scopes=scopes, resource=resource, subject=email
            )
        access = self.sign(self.access_claims(email, client_id, scopes, resource))
        return OAuthToken(
            access_token=access,
            token_type="Bearer",
            expires_in=ACCESS_SECONDS,
            scope=" ".join(scopes),
            refresh_token=refresh,
        )

    # --- clients --------------------------------------------------------------------------------
    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        with self.lock:
            known = self.clients.get(client_id)
        if known is not None:
            return known
        parts = urlsplit(client_id)
        if parts.scheme == "https" or (parts.scheme == "http" and _loopback(parts.hostname)):
            return await self._metadata_document(client_id)
        return None

    async def _metadata_document(self, url: str) -> OAuthClientInformationFull | None:
        """A client ID metadata document: the JSON at the client_id URL, naming itself."""
        verify: Any = True
        if self.ctx.ca_path is not None:
            verify = ssl.create_default_context(cafile=str(self.ctx.ca_path))
        try:
            async with httpx.AsyncClient(verify=verify, timeout=10) as client:
                response = await client.get(url)
            document = response.json()
            if response.status_code != 200 or document.get("client_id") != url:
                return None
            metadata = OAuthClientMetadata.model_validate(
                {"scope": " ".join(SCOPES), **document, "token_endpoint_auth_method": "none"}
            )
        except (httpx.HTTPError, ValueError, ValidationError):
            return None
        info = OAuthClientInformationFull(client_id=url, **metadata.model_dump(exclude_none=True))
        with self.lock:
            self.clients[url] = info
        return info

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        if client_info.client_id is None:
            raise ValueError("a registered client needs a client_id")
        with self.lock:
            self.clients[client_info.client_id] = client_info

    def publish_client_document(self, name: str, redirect_uris: list[str], base_url: str) -> str:
        """Host a client ID metadata document at `<base_url>/idp/client-documents/<name>`; its URL."""
        url = f"{base_url}/idp/client-documents/{name}"
        with self.lock:
            self.client_documents[name] = {
                "client_id": url,
                "client_name": name,
                "redirect_uris": redirect_uris,
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            }
        return url

    # --- authorization --------------------------------------------------------------------------
    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        hint = _LOGIN_HINT.get()
        if hint:
            return self.complete(str(client.client_id), params, hint)
        request_id = secrets.token_urlsafe(16)
        with self.lock:
            self.pending[request_id] = (str(client.client_id), params)
        return f"{self.issuer}/login?{urlencode({'request': request_id})}"

    def complete(self, client_id: str, params: AuthorizationParams, email: str) -> str:
        """Sign `email` in: the redirect back to the client with a fresh code."""
        user = self.ctx.ws.user_by_email(email)
        if user is None or user.is_bot or user.deleted:
            raise AuthorizeError("access_denied", f"no sandbox user {email!r}")
        code = secrets.token_urlsafe(32)
        with self.lock:
            self.codes[code] = AuthorizationCode(
                code=code,
                scopes=params.scopes or DEFAULT_SCOPES,
                expires_at=time.time() + CODE_SECONDS,
                client_id=client_id,
                code_challenge=params.code_challenge,
                redirect_uri=params.redirect_uri,
                redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly,
                resource=params.resource,
                subject=user.email,
            )
        return construct_redirect_uri(str(params.redirect_uri), code=code, state=params.state, iss=self.issuer)

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> AuthorizationCode | None:
        with self.lock:
            code = self.codes.get(authorization_code)
        return code if code is not None and code.client_id == client.client_id else None

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: AuthorizationCode
    ) -> OAuthToken:
        with self.lock:
            self.codes.pop(authorization_code.code, None)  # a code is good once
        return self._tokens(
            authorization_code.client_id,
            str(authorization_code.subject),
            authorization_code.scopes,
            authorization_code.resource,
        )

    async def load_refresh_token(self, client: OAuthClientInformationFull, refresh_token: str) -> RefreshToken | None:
        with self.lock:
            token = self.refresh.get(refresh_token)
        return token if token is not None and token.client_id == client.client_id else None

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: RefreshToken, scopes: list[str]
    ) -> OAuthToken:
        with self.lock:
            self.refresh.pop(refresh_token.token, None)  # rotation: the old one is spent
        return self._tokens(refresh_token.client_id, str(refresh_token.subject), scopes, refresh_token.resource)

    async def load_access_token(self, token: str) -> AccessToken | None:
        try:
            claims = jwt.decode(
                token, self.signing_key().private.public_key(), algorithms=["RS256"], options={"verify_aud": False}
            )
        except jwt.PyJWTError:
            return None
        return AccessToken(
            token=token,
            client_id=claims["client_id"],
            scopes=claims["scope"].split(),
            expires_at=claims["exp"],
            resource=claims["aud"],
            subject=claims["email"],
        )

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        with self.lock:
            self.refresh.pop(token.token, None)

    async def exchange_identity_assertion(
        self, client: OAuthClientInformationFull, params: IdentityAssertionParams
    ) -> OAuthToken:
        """Enterprise identity assertions (SEP-990) are beyond the sandbox (not advertised)."""
        raise TokenError("invalid_grant", "identity assertion grants are not supported by the sandbox")

    # --- metadata -------------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """RFC 8414 metadata, which also serves as the OpenID discovery document."""
        base = build_metadata(
            AnyHttpUrl(self.issuer),
            None,
            ClientRegistrationOptions(enabled=True, valid_scopes=SCOPES),
            RevocationOptions(),
        )
        data = base.model_copy(
            update={
                "scopes_supported": SCOPES,
                "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
                "client_id_metadata_document_supported": True,
                "authorization_response_iss_parameter_supported": True,
            }
        ).model_dump(mode="json", exclude_none=True)
        return {
            **data,
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}/jwks",
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": ["sub", "email"],
        }


def provider(ctx: Any) -> IdentityProvider:
    """The sandbox's identity provider (one per sandbox, made on first use)."""
    with ctx.ws.lock:
        if "idp" not in ctx.state:
            ctx.state["idp"] = IdentityProvider(ctx=ctx, issuer=f"{ctx.http_url}/idp")
        return ctx.state["idp"]  # type: ignore[no-any-return]


def routes(ctx: Any) -> list[BaseRoute]:
    idp = provider(ctx)
    sdk = create_auth_routes(
        idp,
        AnyHttpUrl(idp.issuer),
        client_registration_options=ClientRegistrationOptions(
            enabled=True, valid_scopes=SCOPES, default_scopes=DEFAULT_SCOPES
        ),
    )
    exchange = [r for r in sdk if isinstance(r, Route) and r.path in ("/token", "/register")]
    authorization = AuthorizationHandler(idp)

    async def metadata(request: Request) -> Response:
        return JSONResponse(idp.metadata(), headers={"Cache-Control": "no-store"})

    async def jwks(request: Request) -> Response:
        fault = ctx.faults.check("idp", "jwks")
        if fault is not None:
            return JSONResponse({"error": "temporarily_unavailable"}, fault.status)
        return JSONResponse(idp.jwks())

    async def authorize(request: Request) -> Response:
        token = _LOGIN_HINT.set(request.query_params.get("login_hint"))
        try:
            return await authorization.handle(request)
        finally:
            _LOGIN_HINT.reset(token)

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return HTMLResponse(_login_page(ctx, request.query_params.get("request", "")))
        form = await request.form()
        with idp.lock:
            pending = idp.pending.pop(str(form.get("request", "")), None)
        if pending is None:
            return HTMLResponse("<p>This sign-in request has expired; start again from your client.</p>", 400)
        try:
            return RedirectResponse(idp.complete(pending[0], pending[1], str(form.get("email", ""))), 302)
        except AuthorizeError as exc:
            return HTMLResponse(f"<p>{html.escape(exc.error_description or exc.error)}</p>", 400)

    async def client_document(request: Request) -> Response:
        document = idp.client_documents.get(request.path_params["name"])
        return JSONResponse(document) if document else JSONResponse({"error": "not_found"}, 404)

    async def rotate(request: Request) -> Response:
        return JSONResponse({"kid": idp.rotate_key().kid})

    meta = cors_middleware(metadata, ["GET", "OPTIONS"])
    return [
        Route("/.well-known/oauth-authorization-server/idp", meta, methods=["GET", "OPTIONS"]),
        Route("/.well-known/openid-configuration/idp", meta, methods=["GET", "OPTIONS"]),
        Route("/idp/.well-known/openid-configuration", meta, methods=["GET", "OPTIONS"]),
        Route("/idp/jwks", jwks, methods=["GET"]),
        Route("/idp/authorize", authorize, methods=["GET", "POST"]),
        Route("/idp/login", login, methods=["GET", "POST"]),
        Route("/idp/client-documents/{name}", client_document, methods=["GET"]),
        Route("/_admin/idp/rotate", rotate, methods=["POST"]),
        Mount("/idp", routes=exchange),
    ]


def _login_page(ctx: Any, request_id: str) -> str:
    """One button per sandbox user: the sandbox's stand-in for a password prompt."""
    buttons = "".join(
        f'<button name="email" value="{html.escape(u.email)}">{html.escape(u.real_name)} '
        f"&lt;{html.escape(u.email)}&gt;</button><br>"
        for u in sorted(ctx.ws.users.values(), key=lambda u: u.email)
        if not u.is_bot and not u.deleted
    )
    return (
        f"<!doctype html><title>inlet sandbox sign-in</title><h1>Sign in to the inlet sandbox as</h1>"
        f'<form method="post"><input type="hidden" name="request" value="{html.escape(request_id)}">'
        f"{buttons}</form>"
    )


def server_oauth_toml(ctx: Any, resource_url: str | None = None) -> str:
    """A `[server.oauth]` block trusting this sandbox's provider, for an inlet served at `resource_url`
    (left out: the audience and metadata name whatever address inlet listens on)."""
    idp = provider(ctx)
    fixed = f'audience = "{resource_url}"\nresource_url = "{resource_url}"\n' if resource_url else ""
    return (
        f'[server.oauth]\nissuer = "{idp.issuer}"\nuser_claim = "email"\nscopes = {DEFAULT_SCOPES!r}\n'.replace(
            "'", '"'
        )
        + fixed
    )
