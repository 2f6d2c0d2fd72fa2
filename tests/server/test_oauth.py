"""OAuth access tokens (docs/agents.md: remote agents), end to end: the `mcp` SDK's own OAuth client signs two
sandbox users in at the sandbox identity provider (discovery, registration, PKCE, browserless) and
calls the tools on a real uvicorn server over streamable HTTP; forged tokens of every kind are
refused with the right challenge; the JWKS is refetched for a rotated key, at a bounded rate."""

from __future__ import annotations

import asyncio
import hashlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import hmac
import json
import logging
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import anyio
import httpx
import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from inlet.config import OAuthConfig, parse_config
from inlet.errors import ConfigError
from inlet.index.store import Index
from inlet.sandbox.idp import IdentityProvider, SigningKey, new_key, provider
from inlet.sandbox.server import Sandbox
from inlet.sandbox.workspace import Workspace
from inlet.server.app import create_app
from inlet.server.oauth import (
    MAX_DOCUMENT_BYTES,
    IdentityProviderUnavailable,
    JwtVerifier,
    TokenRejected,
    _KeySetClient,
    audiences,
)

from .conftest import ALICE, KEYS, OPS, serve, settings_for
from .test_mcp import check_as_member, check_as_outsider, tool_session
from .test_slow_clients import run_asgi

ALICE_EMAIL, BOB_EMAIL = "alice@example.com", "bob@other.org"
REDIRECT = "http://127.0.0.1:1/callback"  # never contacted: the callback handler reads the redirect


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    ws = Workspace()
    ws.add_user(ALICE_EMAIL, "alice", "Alice")
    ws.add_user(BOB_EMAIL, "bob", "Bob")
    with Sandbox(ws=ws) as sb:
        yield sb


@pytest.fixture(scope="module")
def idp(sandbox: Sandbox) -> IdentityProvider:
    return provider(sandbox.ctx)


@pytest.fixture(scope="module")
def base_url(sandbox: Sandbox, idp: IdentityProvider, index: Index) -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    oauth = OAuthConfig(issuer=idp.issuer, audience=url, scopes=["inlet.read"], resource_url=url)
    app = create_app(settings_for(index.path, oauth=oauth), index=index, env=KEYS)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    assert app.state.retrieval.ready.wait(60)
    yield url
    server.should_exit = True
    thread.join(30)
    sock.close()


class Memory:
    """The SDK's TokenStorage, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


def oauth_client(base_url: str, email: str, storage: Memory, metadata_url: str | None = None) -> Client:
    """An MCP client whose 'browser' follows the authorize URL with login_hint=email (no person)."""
    redirected: dict[str, str] = {}

    async def redirect_handler(authorize_url: str) -> None:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{authorize_url}&{urlencode({'login_hint': email})}")
        assert response.status_code == 302, response.text
        redirected["location"] = response.headers["location"]

    async def callback_handler() -> AuthorizationCodeResult:
        query = {k: v[0] for k, v in parse_qs(urlsplit(redirected["location"]).query).items()}
        assert "code" in query, redirected["location"]
        return AuthorizationCodeResult(code=query["code"], state=query.get("state"), iss=query.get("iss"))

    auth = OAuthClientProvider(
        f"{base_url}/mcp",
        OAuthClientMetadata(
            client_name="inlet tests",
            redirect_uris=[REDIRECT],  # type: ignore[list-item]
            token_endpoint_auth_method="none",
        ),
        storage,
        redirect_handler,
        callback_handler,
        client_metadata_url=metadata_url,
    )
    return Client(streamable_http_client(f"{base_url}/mcp", http_client=create_mcp_http_client(auth=auth)))


# --- the whole flow with the SDK's client --------------------------------------------------------
def test_sdk_client_signs_in_two_users_who_see_different_things(base_url: str, idp: IdentityProvider) -> None:
    alice, bob = Memory(), Memory()
    check_as_member(anyio.run(tool_session, oauth_client(base_url, ALICE_EMAIL, alice)))
    check_as_outsider(anyio.run(tool_session, oauth_client(base_url, BOB_EMAIL, bob)))
    assert alice.client is not None and alice.client.client_id in idp.clients  # registered (RFC 7591)
    claims = jwt.decode(alice.tokens.access_token if alice.tokens else "", options={"verify_signature": False})
    assert claims["aud"] == base_url and claims["email"] == ALICE_EMAIL and claims["iss"] == idp.issuer
    # the same token on the REST API acts as alice, like her user key
    token = {"Authorization": f"Bearer {alice.tokens.access_token if alice.tokens else ''}"}
    found = httpx.post(f"{base_url}/v1/search", json={"query": "Falcon launch date"}, headers=token)
    assert found.status_code == 200 and "eng:C2/200" in [r["doc_id"] for r in found.json()["results"]]
    other = httpx.post(f"{base_url}/v1/search", json={"query": "x", "user": BOB_EMAIL}, headers=token)
    assert other.status_code == 403


def test_client_id_metadata_document_instead_of_registration(
    base_url: str, sandbox: Sandbox, idp: IdentityProvider
) -> None:
    url = idp.publish_client_document("desktop-agent", [REDIRECT], sandbox.ctx.https_url)
    storage = Memory()
    check_as_outsider(anyio.run(tool_session, oauth_client(base_url, BOB_EMAIL, storage, metadata_url=url)))
    assert storage.client is not None and storage.client.client_id == url


def test_refresh_tokens_rotate(base_url: str, idp: IdentityProvider) -> None:
    storage = Memory()
    anyio.run(tool_session, oauth_client(base_url, ALICE_EMAIL, storage))
    assert storage.tokens is not None and storage.client is not None
    form = {
        "grant_type": "refresh_token",
        "refresh_token": storage.tokens.refresh_token,
        "client_id": storage.client.client_id,
    }
    fresh = httpx.post(f"{idp.issuer}/token", data=form)
    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["refresh_token"] != storage.tokens.refresh_token
    reused = httpx.post(f"{idp.issuer}/token", data=form)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    found = httpx.post(
        f"{base_url}/v1/search",
        json={"query": "Falcon launch date"},
        headers={"Authorization": f"Bearer {fresh.json()['access_token']}"},
    )
    assert found.status_code == 200


def test_authorize_requires_pkce(idp: IdentityProvider) -> None:
    client = OAuthClientInformationFull(
        client_id="no-pkce",
        redirect_uris=[REDIRECT],  # type: ignore[list-item]
        token_endpoint_auth_method="none",
    )
    anyio.run(idp.register_client, client)
    response = httpx.get(
        f"{idp.issuer}/authorize",
        params={"response_type": "code", "client_id": "no-pkce", "redirect_uri": REDIRECT, "login_hint": ALICE_EMAIL},
    )
    assert response.status_code == 302 and "error=invalid_request" in response.headers["location"]
    assert "code=" not in response.headers["location"]


# --- forged and wrong tokens --------------------------------------------------------------------
def claims(idp: IdentityProvider, audience: str, **changes: Any) -> dict[str, Any]:
    base = idp.access_claims(ALICE_EMAIL, "tests", ["inlet.read"], audience)
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def hs256_with_public_key(idp: IdentityProvider, payload: dict[str, Any]) -> str:
    """The classic key-confusion forgery: HMAC keyed with the verifier's public key (PEM)."""
    secret = (
        idp.signing_key()
        .private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    head = {"alg": "HS256", "typ": "JWT", "kid": idp.signing_key().kid}
    signing_input = b".".join(jwt.utils.base64url_encode(json.dumps(p).encode()) for p in (head, payload))
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + jwt.utils.base64url_encode(signature)).decode()


def forged(idp: IdentityProvider, audience: str) -> dict[str, str]:
    now = int(time.time())
    good = claims(idp, audience)
    return {
        "expired": idp.sign(claims(idp, audience, iat=now - 7200, nbf=now - 7200, exp=now - 120)),
        "not yet valid": idp.sign(claims(idp, audience, nbf=now + 600)),
        "wrong audience": idp.sign(claims(idp, "https://other.example")),
        "wrong issuer": idp.sign(claims(idp, audience, iss="https://evil.example/idp")),
        "unknown kid": idp.sign(good, key=new_key()),
        "alg none": jwt.encode(good, None, algorithm="none", headers={"kid": idp.signing_key().kid}),
        "hmac with public key": hs256_with_public_key(idp, good),
        "no user claim": idp.sign(claims(idp, audience, email=None)),
        "malformed": "eyJhbGciOi.not-a-jwt",
        "tampered": idp.sign(good)[:-6] + "AAAAAA",
    }


@pytest.mark.parametrize(
    "case",
    [
        "expired",
        "not yet valid",
        "wrong audience",
        "wrong issuer",
        "unknown kid",
        "alg none",
        "hmac with public key",
        "no user claim",
        "malformed",
        "tampered",
    ],
)
def test_bad_tokens_are_401_with_the_challenge(base_url: str, idp: IdentityProvider, case: str) -> None:
    token = forged(idp, base_url)[case]
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
    api = httpx.post(f"{base_url}/v1/search", json={"query": "Falcon"}, headers=headers)
    mcp = httpx.post(f"{base_url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=headers)
    for response in (api, mcp):
        assert response.status_code == 401, (case, response.text)
        assert response.json()["error"]["code"] == "invalid_token"
        assert response.headers["www-authenticate"] == (
            f'Bearer error="invalid_token", resource_metadata="{base_url}/.well-known/oauth-protected-resource"'
        )


def test_no_token_is_401_pointing_at_the_metadata(base_url: str) -> None:
    response = httpx.post(f"{base_url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        f'Bearer resource_metadata="{base_url}/.well-known/oauth-protected-resource"'
    )


def test_token_without_the_scope_is_403(base_url: str, idp: IdentityProvider) -> None:
    token = idp.sign(claims(idp, base_url, scope="openid email"))
    response = httpx.post(
        f"{base_url}/v1/search", json={"query": "Falcon"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 403 and response.json()["error"]["code"] == "insufficient_scope"
    assert response.headers["www-authenticate"].startswith('Bearer error="insufficient_scope"')
    scp = idp.sign(claims(idp, base_url, scope=None, scp=["inlet.read"]))  # Entra/Okta spelling
    assert (
        httpx.post(
            f"{base_url}/v1/search", json={"query": "Falcon"}, headers={"Authorization": f"Bearer {scp}"}
        ).status_code
        == 200
    )


@pytest.mark.parametrize("path", ["/v1/search", "/mcp"])
@pytest.mark.parametrize("declared", ["stalled", "too large"])
def test_a_token_without_the_scope_has_its_body_read_under_the_body_bounds(
    idp: IdentityProvider, index: Index, tmp_path: Any, path: str, declared: str
) -> None:
    """The 403 of a token without the scope is audited with what its body asks, so its body is read
    (probe33h #6): under `BodyLimit`'s bounds, as a caller let through. A body declared and never
    sent is a 408 after `body_timeout` (it held the connection for ever); one declared over
    `max_body_bytes` is a 413 without a byte read. Either way a /v1 route's audit line names the
    token's user."""
    url = "http://127.0.0.1:8484"
    log = tmp_path / "audit.jsonl"
    oauth = OAuthConfig(issuer=idp.issuer, audience=url, scopes=["inlet.read"], resource_url=url)
    settings = settings_for(index.path, oauth=oauth, audit_log=str(log), body_timeout=0.2, max_body_bytes=1024)
    app = create_app(settings, index=index, env=KEYS)
    scopeless = idp.sign(idp.access_claims(ALICE_EMAIL, "tests", ["openid"], url))
    length = b"100" if declared == "stalled" else b"1000000"
    headers = [
        (b"authorization", f"Bearer {scopeless}".encode()),
        (b"content-type", b"application/json"),
        (b"accept", b"application/json, text/event-stream"),
        (b"content-length", length),
    ]
    reads: list[int] = []

    async def receive() -> dict[str, Any]:  # the body never comes
        reads.append(1)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    sent = run_asgi(app, headers, receive, path=path, within=NEVER)  # the bound is the test's failure, not a wait
    status, body = sent[0]["status"], json.loads(sent[1]["body"])
    if declared == "stalled":
        assert (status, body["error"]["code"]) == (408, "request_timeout") and reads
    else:
        assert (status, body["error"]["code"]) == (413, "payload_too_large") and not reads
    assert (b"connection", b"close") in sent[0]["headers"]
    app.state.audit.close()
    lines = [json.loads(text) for text in log.read_text().splitlines()] if log.exists() else []
    if path == "/mcp":  # a body never read names no tool call: no line (the tools write the others)
        assert lines == []
    else:
        assert [(line["status"], line["user"], line["issuer"]) for line in lines] == [(status, ALICE_EMAIL, idp.issuer)]


def test_a_token_without_the_scope_spends_its_users_rate_limit_token(idp: IdentityProvider, index: Index) -> None:
    """Probe 34g F4: a token refused its scope (403) spent no token, on /v1 as on /mcp: the same
    user's good token then had its whole burst. Each spends one, and over the limit it is a 429."""
    url = "http://127.0.0.1:8484"
    oauth = OAuthConfig(issuer=idp.issuer, audience=url, scopes=["inlet.read"], resource_url=url)
    app = create_app(settings_for(index.path, oauth=oauth, rate_limit="1/h", rate_burst=3), index=index, env=KEYS)
    scopeless = {"Authorization": f"Bearer {idp.sign(idp.access_claims(ALICE_EMAIL, 'tests', ['openid'], url))}"}
    good = {"Authorization": f"Bearer {idp.sign(idp.access_claims(ALICE_EMAIL, 'tests', ['inlet.read'], url))}"}
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    mcp = {"Accept": "application/json, text/event-stream"}
    with TestClient(app) as client:
        assert app.state.retrieval.ready.wait(30)
        answers = [
            client.post("/v1/search", json={"query": "Falcon"}, headers=scopeless),
            client.post("/mcp", json=listing, headers={**scopeless, **mcp}),
            client.post("/v1/search", json={"query": "Falcon"}, headers=good),
            client.post("/v1/search", json={"query": "Falcon"}, headers=scopeless),
            client.post("/mcp", json=listing, headers={**good, **mcp}),
        ]
    assert [a.status_code for a in answers] == [403, 403, 200, 429, 429]
    assert answers[3].json()["error"]["code"] == "rate_limited"


def test_api_keys_keep_working_beside_tokens(base_url: str) -> None:
    response = httpx.post(f"{base_url}/v1/search", json={"query": "Falcon launch date"}, headers=ALICE)
    assert response.status_code == 200 and "eng:C2/200" in [r["doc_id"] for r in response.json()["results"]]


@pytest.mark.parametrize("suffix", ["", "/mcp"])
def test_protected_resource_metadata_needs_no_key(base_url: str, idp: IdentityProvider, suffix: str) -> None:
    response = httpx.get(f"{base_url}/.well-known/oauth-protected-resource{suffix}")
    assert response.status_code == 200
    assert response.json() == {
        "resource": base_url + suffix,
        "authorization_servers": [idp.issuer],
        "scopes_supported": ["inlet.read"],
        "bearer_methods_supported": ["header"],
        "resource_name": "inlet",
    }
    assert response.headers["cache-control"] == "no-store"  # what it names follows the request's host


# --- the key set: rotation and a bounded refetch rate ---------------------------------------------
def test_rotated_key_is_fetched_once_and_unknown_kids_do_not_refetch(sandbox: Sandbox) -> None:
    with Sandbox(ws=sandbox.ws) as own:  # a provider of its own: rotating it disturbs no other test
        idp = provider(own.ctx)
        config = OAuthConfig(issuer=idp.issuer, audience="urn:test")
        eager, bounded = JwtVerifier(config, refresh_cooldown=0), JwtVerifier(config, refresh_cooldown=3600)
        fetches = own.ctx.faults.calls
        first = idp.sign(claims(idp, "urn:test"))
        assert eager.verify(first).claims and bounded.verify(first).claims
        assert fetches["idp:jwks"] == 2  # one fetch each, then cached
        for _ in range(5):
            eager.verify(first)
        assert fetches["idp:jwks"] == 2
        idp.rotate_key()
        second = idp.sign(claims(idp, "urn:test"))
        assert (eager.verify(second).claims or {})["email"] == ALICE_EMAIL  # refetched for the new kid
        assert fetches["idp:jwks"] == 3
        # the first unknown kid refetches at once, although the set was fetched moments ago
        assert (bounded.verify(second).claims or {})["email"] == ALICE_EMAIL
        assert fetches["idp:jwks"] == 4
        for _ in range(20):  # then, within the cooldown, unknown kids refetch nothing
            with pytest.raises(TokenRejected):
                bounded.verify(idp.sign(claims(idp, "urn:test"), key=new_key()))
        assert fetches["idp:jwks"] == 4
        idp.rotate_key()
        with pytest.raises(TokenRejected):  # a second rotation within the cooldown waits for it
            bounded.verify(idp.sign(claims(idp, "urn:test")))
        assert fetches["idp:jwks"] == 4


def test_ca_bundle_trusts_a_private_ca(sandbox: Sandbox, idp: IdentityProvider) -> None:
    jwks = f"{sandbox.ctx.https_url}/idp/jwks"  # the sandbox's TLS port, signed by its own CA
    token = idp.sign(claims(idp, "urn:test"))
    trusted = OAuthConfig(issuer=idp.issuer, audience="urn:test", jwks_url=jwks, ca_bundle=sandbox.ctx.ca_path)
    assert (JwtVerifier(trusted).verify(token).claims or {})["email"] == ALICE_EMAIL
    with pytest.raises(IdentityProviderUnavailable):
        JwtVerifier(OAuthConfig(issuer=idp.issuer, audience="urn:test", jwks_url=jwks)).verify(token)


def test_an_unreachable_key_set_is_not_refetched_per_request(sandbox: Sandbox, idp: IdentityProvider) -> None:
    config = OAuthConfig(issuer=idp.issuer, audience="urn:test", jwks_url=f"{sandbox.ctx.http_url}/idp/jwks")
    verifier = JwtVerifier(config, refresh_cooldown=3600)
    token = idp.sign(claims(idp, "urn:test"))
    before = sandbox.ctx.faults.calls["idp:jwks"]
    sandbox.ctx.faults.fail("idp", "jwks", 503, times=1)
    for _ in range(5):
        with pytest.raises(IdentityProviderUnavailable):
            verifier.verify(token)
    assert sandbox.ctx.faults.calls["idp:jwks"] == before + 1
    dead = JwtVerifier(OAuthConfig(issuer="http://127.0.0.1:9/idp", audience="urn:test"), refresh_cooldown=3600)
    with pytest.raises(IdentityProviderUnavailable, match="cannot reach"):
        dead.verify(token)
    with pytest.raises(IdentityProviderUnavailable, match="moments ago"):  # no second attempt yet
        dead.verify(token)


def test_the_last_key_set_stays_in_use_while_the_issuer_is_down(sandbox: Sandbox, idp: IdentityProvider) -> None:
    from inlet.server.oauth import _KeySetClient

    keys = _KeySetClient(f"{sandbox.ctx.http_url}/idp/jwks", retry_after=3600, ssl_context=None)
    fetched = keys.fetch_data()
    assert fetched["keys"]
    sandbox.ctx.faults.fail("idp", "jwks", 503, times=2)
    assert keys.fetch_data() == fetched  # the provider fails: the keys it signed with still verify
    assert keys.fetch_data() == fetched  # within retry_after: not asked again, still the same keys
    fresh = _KeySetClient(f"{sandbox.ctx.http_url}/idp/jwks", retry_after=0)
    sandbox.ctx.faults.fail("idp", "jwks", 503, times=1)
    with pytest.raises(jwt.PyJWKClientConnectionError):  # never fetched: nothing to fall back on
        fresh.fetch_data()


def test_concurrent_requests_fetch_the_key_set_once(sandbox: Sandbox, idp: IdentityProvider) -> None:
    verifier = JwtVerifier(OAuthConfig(issuer=idp.issuer, audience="urn:test"), refresh_cooldown=3600)
    tokens = [idp.sign(claims(idp, "urn:test")) for _ in range(20)]
    before = sandbox.ctx.faults.calls["idp:jwks"]
    with ThreadPoolExecutor(max_workers=20) as pool:
        emails = list(pool.map(lambda token: (verifier.verify(token).claims or {})["email"], tokens))
    assert emails == [ALICE_EMAIL] * 20
    assert sandbox.ctx.faults.calls["idp:jwks"] == before + 1


def answering(
    body: bytes | Callable[[], bytes], content_type: str = "application/json", before: Callable[[], None] = lambda: None
) -> tuple[ThreadingHTTPServer, list[str]]:
    """A key-set endpoint answering 200 with `body` (a callable: what it returns at each request)
    once `before()` returned, and the list of requests it got."""
    asked: list[str] = []

    class Fixed(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            before()
            answer = body() if callable(body) else body
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Fixed)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, asked


@pytest.mark.parametrize(
    "body,content_type,refusal",
    [
        (b'{"keys": []}', "application/json", TokenRejected),  # no key: a 401, not a 500
        (b"<html>Down for maintenance</html>", "text/html", IdentityProviderUnavailable),  # a 503, not a 500
    ],
)
def test_an_issuer_answering_no_usable_key_set_refuses_and_is_not_asked_per_request(
    idp: IdentityProvider, body: bytes, content_type: str, refusal: type[Exception]
) -> None:
    server, asked = answering(body, content_type)
    try:
        jwks = f"http://127.0.0.1:{server.server_address[1]}/jwks"
        verifier = JwtVerifier(OAuthConfig(issuer=idp.issuer, audience="urn:test", jwks_url=jwks))
        for _ in range(5):
            with pytest.raises(refusal):
                verifier.verify(idp.sign(claims(idp, "urn:test")))
        assert len(asked) == 1  # within the cooldown the same answer stands
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("body", [b"<html>Sign in</html>", b"[]", b'"text"'])
def test_a_discovery_document_that_is_not_a_json_object_is_unavailable_not_a_500(body: bytes) -> None:
    """A sign-in proxy answering every path with its page, or `[]`: the provider is unusable (503
    `idp_unavailable`, asked again only after the cooldown), not an internal error per token."""
    server, asked = answering(body, "text/html")
    try:
        issuer = f"http://127.0.0.1:{server.server_address[1]}/idp"
        verifier = JwtVerifier(OAuthConfig(issuer=issuer, audience="urn:test"))
        with pytest.raises(IdentityProviderUnavailable, match="without a JSON object"):
            verifier.jwks_url()
        assert asked == ["/idp/.well-known/openid-configuration", "/.well-known/oauth-authorization-server/idp"]
    finally:
        server.shutdown()
        server.server_close()


def test_a_discovered_jwks_uri_over_plain_http_is_refused_before_any_fetch(
    idp: IdentityProvider, index: Index, caplog: pytest.LogCaptureFixture
) -> None:
    """RFC 8414 §2: a jwks_uri uses https. A discovery document naming a plain-http key set on a host
    that is not a loopback address (0.0.0.0: it would reach this machine, where an "attacker" serves
    a key set of their own) is refused by the rule a configured `jwks_url` passes: the key set is
    never fetched, the token its key signed gets 503 `idp_unavailable`, and one warning names the
    setting and the URL."""
    attacker = new_key()
    keys, fetched = answering(json.dumps({"keys": [attacker.jwk()]}).encode())
    jwks_uri = f"http://0.0.0.0:{keys.server_address[1]}/jwks.json"
    document: dict[str, str] = {}
    discovery, asked = answering(lambda: json.dumps(document).encode())
    issuer = f"http://127.0.0.1:{discovery.server_address[1]}/idp"
    document.update(issuer=issuer, jwks_uri=jwks_uri)
    try:
        oauth = OAuthConfig(issuer=issuer, audience="urn:test", scopes=["inlet.read"])
        token = idp.sign(claims(idp, "urn:test", iss=issuer), key=attacker)
        app = create_app(settings_for(index.path, oauth=oauth), index=index, env=KEYS)
        with contextmanager(serve)(app) as address, caplog.at_level(logging.INFO, logger="inlet.server.oauth"):
            bearer = {"Authorization": f"Bearer {token}"}
            answer = httpx.post(f"http://{address}/v1/search", json={"query": "Falcon"}, headers=bearer, timeout=60)
        assert answer.status_code == 503 and answer.json()["error"]["code"] == "idp_unavailable"
        said = [r for r in caplog.records if jwks_uri in r.getMessage()]
        assert len(said) == 1 and said[0].levelno == logging.WARNING
        assert "[server.oauth] issuer" in said[0].getMessage() and "https://" in said[0].getMessage()
        assert fetched == [] and asked == ["/idp/.well-known/openid-configuration"]
    finally:
        for server in (keys, discovery):
            server.shutdown()
            server.server_close()


@pytest.mark.parametrize(
    "jwks_uri,ok",
    [
        ("https://tenant.b2clogin.com/tenant.onmicrosoft.com/discovery/v2.0/keys?p=b2c_1_signin", True),  # a query
        ("http://127.0.0.1:9/jwks", True),
        ("http://localhost:9/jwks", True),
        ("http://keys.example/jwks.json", False),
        ("file:///etc/passwd", False),
        ("/jwks", False),
    ],
)
def test_a_discovered_jwks_uri_passes_the_https_unless_loopback_rule(jwks_uri: str, ok: bool) -> None:
    document: dict[str, str] = {}
    discovery, _ = answering(lambda: json.dumps(document).encode())
    issuer = f"http://127.0.0.1:{discovery.server_address[1]}/idp"
    document.update(issuer=issuer, jwks_uri=jwks_uri)
    try:
        verifier = JwtVerifier(OAuthConfig(issuer=issuer, audience="urn:test"))
        if ok:
            assert verifier.jwks_url() == jwks_uri
        else:
            with pytest.raises(IdentityProviderUnavailable, match=r"\[server\.oauth\] issuer .* names jwks_uri"):
                verifier.jwks_url()
    finally:
        discovery.shutdown()
        discovery.server_close()


class HangingKeySet:
    """A loopback key-set endpoint publishing `published`; once `hang` is set, each fetch says so
    (`entered`) and is held until `release` is set (an identity provider that stopped answering)."""

    def __init__(self, *keys: Any) -> None:
        self.published = [k.jwk() for k in keys]
        self.hang, self.entered, self.release = threading.Event(), threading.Event(), threading.Event()
        self.server, self.asked = answering(lambda: json.dumps({"keys": self.published}).encode(), before=self._held)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks"

    def _held(self) -> None:
        if self.hang.is_set():
            self.entered.set()
            self.release.wait()

    @property
    def fetches(self) -> int:
        return len(self.asked)

    def __enter__(self) -> "HangingKeySet":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def published(*keys: dict[str, Any]) -> tuple[ThreadingHTTPServer, str]:
    """A loopback key-set endpoint publishing `keys` (JWKs), and its URL."""
    server, _ = answering(json.dumps({"keys": list(keys)}).encode())
    return server, f"http://127.0.0.1:{server.server_address[1]}/jwks"


def rsa_jwk(key: Any, **fields: Any) -> dict[str, Any]:
    """`key`'s public JWK with `fields` (None: left out), as an issuer may publish it."""
    jwk = {**key.jwk(), **fields}
    return {k: v for k, v in jwk.items() if v is not None}


def ec_key() -> tuple[Any, dict[str, Any]]:
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    return private, {**jwt.algorithms.ECAlgorithm.to_jwk(private.public_key(), as_dict=True), "use": "sig"}


def signed(idp: IdentityProvider, private: Any, algorithm: str, kid: str | None = None) -> str:
    return jwt.encode(claims(idp, "urn:test"), private, algorithm=algorithm, headers={"kid": kid} if kid else None)


def relabelled(token: str, algorithm: str) -> str:
    """`token` whose header names `algorithm` (its signature is another's: only the key lookup is under test)."""
    head, payload, signature = token.split(".")
    header = {**json.loads(jwt.utils.base64url_decode(head)), "alg": algorithm}
    return ".".join([jwt.utils.base64url_encode(json.dumps(header).encode()).decode(), payload, signature])


def test_a_token_naming_no_kid_is_checked_with_the_one_key_for_its_algorithm(idp: IdentityProvider) -> None:
    """RFC 7515 §4.1.4: `kid` is optional. The set's one RSA key verifies a kid-less RS256 token, its
    one EC key an ES256 one, a key published without a `kid` too; with two RSA keys which one signed
    is ambiguous: refused, saying so. A forged kid-less token is still refused by the signature."""
    rsa_private, (ec_private, ec_jwk) = new_key(), ec_key()
    server, url = published(rsa_private.jwk(), {**ec_jwk, "kid": "ec-1"})
    try:
        verifier = JwtVerifier(OAuthConfig(issuer=idp.issuer, audience="urn:test", jwks_url=url))
        assert (verifier.verify(signed(idp, rsa_private.private, "RS256")).claims or {})["email"] == ALICE_EMAIL
        assert (verifier.verify(signed(idp, ec_private, "ES256")).claims or {})["email"] == ALICE_EMAIL
        with pytest.raises(TokenRejected, match="[Ss]ignature"):
            verifier.verify(signed(idp, new_key().private, "RS256"))
        with pytest.raises(TokenRejected, match="holds none for ES384"):
            verifier.verify(relabelled(signed(idp, ec_private, "ES256"), "ES384"))
    finally:
        server.shutdown()
        server.server_close()
    server, url = published(rsa_jwk(rsa_private, kid=None))  # the issuer names no key at all
    try:
        verifier = JwtVerifier(OAuthConfig(issuer=idp.issuer, audience="urn:test", jwks_url=url))
        assert (verifier.verify(signed(idp, rsa_private.private, "RS256")).claims or {})["email"] == ALICE_EMAIL
    finally:
        server.shutdown()
        server.server_close()
    other = new_key()
    server, url = published(rsa_private.jwk(), other.jwk())
    try:
        verifier = JwtVerifier(OAuthConfig(issuer=idp.issuer, audience="urn:test", jwks_url=url))
        with pytest.raises(TokenRejected, match="holds 2 keys for RS256: which one signed it is ambiguous"):
            verifier.verify(signed(idp, rsa_private.private, "RS256"))
        assert verifier.verify(signed(idp, other.private, "RS256", kid=other.kid)).claims  # with a kid: as ever
    finally:
        server.shutdown()
        server.server_close()


def test_a_key_naming_no_alg_verifies_every_accepted_algorithm_of_its_type(idp: IdentityProvider) -> None:
    """RFC 7517 §4.4: a JWK without `alg` (Microsoft Entra publishes none) may verify any algorithm of
    its type: RS384, RS512, PS256 tokens of an RSA key, not only PyJWT's default RS256; never another
    type's (ES256 naming the RSA key), nor a curve's other hash. A key naming its `alg` verifies
    only that one."""
    bare, named, (ec_private, ec_jwk) = new_key(), new_key(), ec_key()
    server, url = published(rsa_jwk(bare, alg=None), named.jwk(), {**ec_jwk, "kid": "ec-1"})
    try:
        verifier = JwtVerifier(OAuthConfig(issuer=idp.issuer, audience="urn:test", jwks_url=url))
        for algorithm in ("RS256", "RS384", "RS512", "PS256", "PS512"):
            token = signed(idp, bare.private, algorithm, kid=bare.kid)
            assert (verifier.verify(token).claims or {})["email"] == ALICE_EMAIL, algorithm
        assert verifier.verify(signed(idp, ec_private, "ES256", kid="ec-1")).claims
        with pytest.raises(TokenRejected, match="verifies only ES256"):
            verifier.verify(relabelled(signed(idp, ec_private, "ES256", kid="ec-1"), "ES384"))
        with pytest.raises(TokenRejected, match=f"signing key '{bare.kid}' \\(RSA\\) verifies only PS256"):
            verifier.verify(signed(idp, ec_private, "ES256", kid=bare.kid))
        with pytest.raises(TokenRejected, match="verifies only RS256"):
            verifier.verify(signed(idp, named.private, "RS512", kid=named.kid))
        assert verifier.verify(signed(idp, named.private, "RS256", kid=named.kid)).claims
    finally:
        server.shutdown()
        server.server_close()


def test_keys_sharing_a_kid_are_each_tried_that_fit_the_tokens_algorithm(idp: IdentityProvider) -> None:
    """Probe 34e F4 (RFC 7517 §4.5): an RSA and an EC key published under one `kid` each verify their
    tokens, in either order; a token that neither key verifies is still refused by its signature,
    and one whose `alg` no key of that `kid` may verify says why."""
    rsa_private, (ec_private, ec_jwk) = new_key(), ec_key()
    for order in ("rsa first", "ec first"):
        keys = [rsa_jwk(rsa_private, kid="shared"), {**ec_jwk, "kid": "shared", "alg": "ES256"}]
        server, url = published(*(keys if order == "rsa first" else keys[::-1]))
        try:
            verifier = JwtVerifier(OAuthConfig(issuer=idp.issuer, audience="urn:test", jwks_url=url))
            for private, algorithm in ((rsa_private.private, "RS256"), (ec_private, "ES256")):
                token = signed(idp, private, algorithm, kid="shared")
                assert (verifier.verify(token).claims or {})["email"] == ALICE_EMAIL, (order, algorithm)
            with pytest.raises(TokenRejected, match="Signature verification failed"):
                verifier.verify(signed(idp, new_key().private, "RS256", kid="shared"))
            with pytest.raises(
                TokenRejected, match=r"'shared' \((RSA, EC|EC, RSA)\) together verifies only ES256, RS256"
            ):
                verifier.verify(signed(idp, rsa_private.private, "PS256", kid="shared"))
        finally:
            server.shutdown()
            server.server_close()


def test_a_key_replaced_under_the_same_kid_is_refetched_at_once_at_a_bounded_rate(idp: IdentityProvider) -> None:
    """Probe 34e F5: a provider that replaces its key under the same `kid` (a fixed, configured key
    id) has its new tokens accepted at once: a signature no key at hand verifies refetches the set,
    as an unknown `kid` does. Within the cooldown forged tokens naming that `kid` refetch nothing,
    and a second replacement waits for it. A token naming no `kid` is refetched for alike."""
    old = new_key()
    with HangingKeySet(old) as keyset:
        verifier = JwtVerifier(
            OAuthConfig(issuer=idp.issuer, audience="urn:test", jwks_url=keyset.url), refresh_cooldown=3600
        )
        assert verifier.verify(idp.sign(claims(idp, "urn:test"), key=old)).claims
        replaced = SigningKey(kid=old.kid, private=new_key().private)
        keyset.published = [replaced.jwk()]
        assert (verifier.verify(idp.sign(claims(idp, "urn:test"), key=replaced)).claims or {})["email"] == ALICE_EMAIL
        assert keyset.fetches == 2
        for _ in range(10):  # forged signatures under the known kid: refused, no fetch within the cooldown
            with pytest.raises(TokenRejected, match="Signature verification failed"):
                verifier.verify(idp.sign(claims(idp, "urn:test"), key=SigningKey(old.kid, new_key().private)))
        assert keyset.fetches == 2
        again = SigningKey(kid=old.kid, private=new_key().private)
        keyset.published = [again.jwk()]
        with pytest.raises(TokenRejected, match="Signature verification failed"):  # within the cooldown: waits
            verifier.verify(idp.sign(claims(idp, "urn:test"), key=again))
        assert keyset.fetches == 2
    first, second = new_key(), new_key()
    with HangingKeySet() as keyset:
        keyset.published = [rsa_jwk(first, kid=None)]
        verifier = JwtVerifier(
            OAuthConfig(issuer=idp.issuer, audience="urn:test", jwks_url=keyset.url), refresh_cooldown=3600
        )
        assert verifier.verify(signed(idp, first.private, "RS256")).claims
        keyset.published = [rsa_jwk(second, kid=None)]
        assert (verifier.verify(signed(idp, second.private, "RS256")).claims or {})["email"] == ALICE_EMAIL
        assert keyset.fetches == 2


def test_tokens_with_a_kid_being_fetched_wait_for_that_fetch_and_known_kids_do_not(idp: IdentityProvider) -> None:
    """While one refetch (for an unknown kid) is held by the provider, a known kid verifies with the
    keys at hand at once; other tokens with the rotated kid, and a kid no set holds, wait for that
    fetch instead of starting their own: then the rotated ones verify (a rotation reaches every
    request carrying it) and the unknown one is refused. The set is fetched twice in all."""
    known, rotated, unknown = new_key(), new_key(), new_key()
    with HangingKeySet(known) as keyset, ThreadPoolExecutor(max_workers=8) as pool:
        verifier = JwtVerifier(OAuthConfig(issuer=idp.issuer, audience="urn:test", jwks_url=keyset.url))
        assert verifier.verify(idp.sign(claims(idp, "urn:test"), key=known)).claims  # the set is at hand
        keyset.published.append(rotated.jwk())
        keyset.hang.set()
        first = pool.submit(verifier.verify, idp.sign(claims(idp, "urn:test"), key=rotated))
        assert keyset.entered.wait(30)  # its refetch is held by the provider
        others = [pool.submit(verifier.verify, idp.sign(claims(idp, "urn:test"), key=rotated)) for _ in range(5)]
        stranger = pool.submit(verifier.verify, idp.sign(claims(idp, "urn:test"), key=unknown))
        assert (verifier.verify(idp.sign(claims(idp, "urn:test"), key=known)).claims or {})["email"] == ALICE_EMAIL
        assert not first.done()
        keyset.release.set()
        for answer in [first, *others]:
            assert (answer.result().claims or {})["email"] == ALICE_EMAIL
        with pytest.raises(TokenRejected):
            stranger.result()
        assert keyset.fetches == 2


def test_api_key_requests_never_wait_on_a_hanging_identity_provider(
    idp: IdentityProvider, index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    """60 tokens with unknown kids arrive while the provider holds a key-set fetch: an API-key
    search is answered meanwhile (token checks have threads of their own); once the fetch ends, the
    60 are refused without fetching again and the request that started it gets the rotated key."""
    # The fetch is held until the test releases it: on a loaded machine the 61 requests before the
    # release can take longer than the fetch's 5 s, which would end it early.
    monkeypatch.setattr("inlet.server.oauth.HTTP_TIMEOUT_SECONDS", 120.0)
    known, rotated, unknown = new_key(), new_key(), new_key()
    with HangingKeySet(known) as keyset, ThreadPoolExecutor(max_workers=61) as pool:
        oauth = OAuthConfig(issuer=idp.issuer, audience="urn:test", scopes=["inlet.read"], jwks_url=keyset.url)
        app = create_app(settings_for(index.path, oauth=oauth), index=index, env=KEYS)
        with contextmanager(serve)(app) as address:

            def search(headers: dict[str, str]) -> httpx.Response:
                return httpx.post(f"http://{address}/v1/search", json={"query": "Falcon"}, headers=headers, timeout=60)

            def bearer(key: Any, kid: str | None = None) -> dict[str, str]:
                token = idp.sign(claims(idp, "urn:test"), key=key, headers={"kid": kid} if kid else None)
                return {"Authorization": f"Bearer {token}"}

            assert search(bearer(known)).status_code == 200
            keyset.published.append(rotated.jwk())
            keyset.hang.set()
            first = pool.submit(search, bearer(rotated))
            assert keyset.entered.wait(30)
            burst = [pool.submit(search, bearer(unknown, f"forged-{i}")) for i in range(60)]
            assert search(ALICE).status_code == 200
            assert not first.done()
            keyset.release.set()
            assert first.result().status_code == 200  # its fetch was still in flight: the rotated key
            assert [f.result().status_code for f in burst] == [401] * 60
        assert keyset.fetches == 2


TRICKLE_SECONDS = 0.05  # between two bytes of a trickled answer: well within any per-read timeout
DEADLINE = 0.5  # the fetch deadline these tests set: a trickled fetch must end by it
NEVER = 60  # seconds after which a fetch or a token check is taken for held for ever (the test fails)


class Trickling:
    """A loopback endpoint answering 200 with `body`, or, once `trickle` is set, its headers at once
    and then white space (which JSON allows before a value), one byte every `TRICKLE_SECONDS` for as
    long as the client reads: each read gets a byte within any per-read timeout, and the answer
    never ends (probe33h #3). `asked`: the paths it was asked."""

    def __init__(self, body: bytes | Callable[[], bytes], trickle: bool = False) -> None:
        self.trickle, self.stop = threading.Event(), threading.Event()
        self.asked: list[str] = []
        if trickle:
            self.trickle.set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.asked.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if not outer.trickle.is_set():
                    answer = body() if callable(body) else body
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                    return
                self.send_header("Content-Length", str(10**9))
                self.end_headers()
                while not outer.stop.wait(TRICKLE_SECONDS):  # the pace of the trickle
                    try:
                        self.wfile.write(b" ")
                    except OSError:  # the client gave up
                        return

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> "Trickling":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("answer", ["trickled", "too large"])
def test_a_key_set_fetch_is_bounded_in_time_and_size(answer: str) -> None:
    """PyJWT's fetch times out each read only: a key set trickled byte by byte was read for as long as
    the provider liked. The whole fetch now ends by its deadline, and an answer over
    `MAX_DOCUMENT_BYTES` (white space before a valid set here) is refused as it arrives: an outage."""
    valid = json.dumps({"keys": [new_key().jwk()]}).encode()
    body = valid if answer == "trickled" else b" " * MAX_DOCUMENT_BYTES + valid
    with ThreadPoolExecutor(max_workers=1) as pool, Trickling(body, trickle=answer == "trickled") as keyset:
        # the size is under test, not the time: a loaded machine may take over DEADLINE to send a MiB
        keys = _KeySetClient(f"{keyset.url}/jwks", retry_after=3600, timeout=DEADLINE if answer == "trickled" else 30)
        fetched = pool.submit(keys.fetch_data)
        with pytest.raises(jwt.PyJWKClientConnectionError) as refused:
            fetched.result(timeout=NEVER)
        said = str(refused.value)
        assert (
            f"within {DEADLINE:.1f} s" in said if answer == "trickled" else f"over {MAX_DOCUMENT_BYTES} bytes" in said
        )
        with pytest.raises(jwt.PyJWKClientConnectionError, match="moments ago"):  # remembered: not asked again
            keys.fetch_data()
        assert len(keyset.asked) == 1


def test_tokens_with_unknown_kids_wait_at_most_the_deadline_and_a_known_kid_is_then_checked(
    idp: IdentityProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """probe33h #3: once the key set trickles, a dozen forged tokens with unknown kids used to wait on
    the endless refetch in every token-check thread (`VERIFY_THREADS`), and a token with the known
    kid queued behind them for as long. Now the refetch ends by its deadline, each waiter waits at
    most that, all are refused, and the known token is checked with the keys at hand."""
    monkeypatch.setattr("inlet.server.oauth.HTTP_TIMEOUT_SECONDS", DEADLINE)
    known, unknown = new_key(), new_key()
    # the pool outside: leaving the endpoint ends a held fetch (on failure) before the pool is joined
    with ThreadPoolExecutor(max_workers=1) as pool, Trickling(json.dumps({"keys": [known.jwk()]}).encode()) as keyset:
        verifier = JwtVerifier(OAuthConfig(issuer=idp.issuer, audience="urn:test", jwks_url=f"{keyset.url}/jwks"))
        assert verifier.verify(idp.sign(claims(idp, "urn:test"), key=known)).claims  # the set is at hand
        keyset.trickle.set()
        forged = [idp.sign(claims(idp, "urn:test"), key=unknown, headers={"kid": f"forged-{i}"}) for i in range(12)]
        outcomes: dict[str, list[str]] = {"forged": [], "known": []}

        async def check(token: str, kind: str) -> None:
            try:
                outcomes[kind].append(str((await verifier.verify_in_thread(token)).claims["email"]))
            except (TokenRejected, IdentityProviderUnavailable) as exc:
                outcomes[kind].append(type(exc).__name__)

        async def arriving() -> None:
            async with anyio.create_task_group() as checks:
                for token in forged:  # first: they take every token-check thread
                    checks.start_soon(check, token, "forged")
                checks.start_soon(check, idp.sign(claims(idp, "urn:test"), key=known), "known")

        pool.submit(anyio.run, arriving).result(timeout=NEVER)  # the bound is the test's failure, not a wait
        assert outcomes == {"forged": ["TokenRejected"] * 12, "known": [ALICE_EMAIL]}
        assert len(keyset.asked) == 2  # the first fetch, and one refetch for all unknown kids


def test_a_trickling_discovery_document_is_cut_off_at_the_deadline(
    idp: IdentityProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Discovery had only httpx's per-read timeout: a trickled discovery document held every token
    check (they wait for the discovery) for as long as it lasted. It now ends by the deadline, for
    both discovery URLs together, and tokens get the outage's 503."""
    monkeypatch.setattr("inlet.server.oauth.HTTP_TIMEOUT_SECONDS", DEADLINE)
    with ThreadPoolExecutor(max_workers=1) as pool, Trickling(b"", trickle=True) as issuer:
        verifier = JwtVerifier(OAuthConfig(issuer=f"{issuer.url}/idp", audience="urn:test"))
        checked = pool.submit(verifier.verify, idp.sign(claims(idp, "urn:test")))
        with pytest.raises(IdentityProviderUnavailable, match=f"within {DEADLINE:.1f} s"):
            checked.result(timeout=NEVER)
        assert issuer.asked == ["/idp/.well-known/openid-configuration"]


# --- Origin, probes, metrics --------------------------------------------------------------------
@pytest.mark.parametrize(
    "origin,status", [("http://evil.example", 403), (None, 200), ("own", 200), ("localhost", 200), ("rebound", 403)]
)
def test_mcp_refuses_a_foreign_origin(base_url: str, origin: str | None, status: int) -> None:
    headers = {**ALICE, "Accept": "application/json, text/event-stream"}
    port = urlsplit(base_url).port
    if origin == "rebound":  # DNS rebinding: the attacker's name is in Host and Origin alike
        headers.update(Host=f"evil.example:{port}", Origin=f"http://evil.example:{port}")
    elif origin is not None:
        headers["Origin"] = {"own": base_url, "localhost": f"http://localhost:{port}"}.get(origin, origin)
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    response = httpx.post(f"{base_url}/mcp", json=message, headers=headers)
    assert response.status_code == status, response.text


def test_metrics_public(index: Index) -> None:
    for public, status in ((True, 200), (False, 401)):
        app = create_app(settings_for(index.path, metrics_public=public), index=index, env=KEYS)
        with TestClient(app) as client:
            assert client.get("/metrics").status_code == status
            assert client.get("/readyz").status_code in (200, 503)


def test_public_metrics_on_a_loopback_listener_need_a_key_under_another_host_name(index: Index) -> None:
    """probe29e F11: a DNS-rebound page's same-origin fetch("/metrics") sends no Origin and its own
    name in Host: on 127.0.0.1 with metrics_public it read every source's series."""
    app = create_app(settings_for(index.path, metrics_public=True), index=index, env=KEYS)
    with TestClient(app, base_url="http://127.0.0.1:8484") as client:  # the socket is loopback
        assert client.get("/metrics").status_code == 200  # Host: 127.0.0.1:8484
        for host in ("localhost:8484", "[::1]:8484", "127.0.0.1"):
            assert client.get("/metrics", headers={"Host": host}).status_code == 200, host
        rebound = {"Host": "rebind.attacker.example:8484"}
        refused = client.get("/metrics", headers=rebound)
        assert refused.status_code == 401 and "inlet_" not in refused.text
        assert client.get("/metrics", headers={**rebound, **ALICE}).status_code == 403
        assert client.get("/metrics", headers={**rebound, **OPS}).status_code == 200
        assert client.get("/healthz", headers=rebound).status_code == 200  # reveals nothing
        elsewhere = "http://192.0.2.7:8484/metrics"  # a socket other hosts reach: under any name anyway
        assert client.get(elsewhere, headers={"Host": "inlet.example"}).status_code == 200


@pytest.mark.parametrize(
    "issuer,ok",
    [
        ("https://login.example.com/t/v2.0", True),
        ("http://127.0.0.1:9/idp", True),
        ("http://localhost:9", True),
        ("http://idp.example.com", False),
        ("ftp://idp.example.com", False),
    ],
)
def test_issuer_must_be_https_unless_loopback(issuer: str, ok: bool) -> None:
    raw = {"server": {"oauth": {"issuer": issuer, "audience": "api://inlet"}}}
    if ok:
        assert parse_config(raw).server.oauth.issuer == issuer  # type: ignore[union-attr]
    else:
        with pytest.raises(ConfigError, match=r"\[server\].*issuer"):
            parse_config(raw)


def test_sandbox_writes_a_valid_oauth_block_without_a_fixed_port(sandbox: Sandbox, idp: IdentityProvider) -> None:
    import tomllib

    from inlet.sandbox.idp import server_oauth_toml

    text = server_oauth_toml(sandbox.ctx)
    oauth = parse_config(tomllib.loads(text)).server.oauth
    assert oauth is not None and oauth.issuer == idp.issuer and oauth.scopes == ["inlet.read"]
    assert oauth.resource_url is None and oauth.audience is None and "8484" not in text


# --- the address the server listens on names the resource (issue 28 item 1) -------------------------
@pytest.mark.parametrize(
    ("host", "listening", "base"),
    [
        ("localhost", ("127.0.0.1", 41788), "http://localhost:41788"),  # as the server prints it
        ("127.0.0.1", ("127.0.0.1", 41788), "http://127.0.0.1:41788"),
        ("::1", ("::1", 41788, 0, 0), "http://[::1]:41788"),
        ("0.0.0.0", ("0.0.0.0", 41788), None),  # every address: the request's Host names it
    ],
)
def test_the_resource_is_named_as_the_host_was_configured(host: str, listening: tuple, base: str | None) -> None:
    """An MCP client given `http://localhost:PORT/mcp` checks that the metadata names that resource
    (RFC 9728): the resolved `127.0.0.1` would make it refuse to sign in."""
    from inlet.server.oauth import listening_base

    assert listening_base(host, listening) == base


def test_without_resource_url_the_listening_address_is_the_resource(idp: IdentityProvider, index: Index) -> None:
    from .conftest import serve

    oauth = OAuthConfig(issuer=idp.issuer, scopes=["inlet.read"])  # no resource_url, no audience
    sock = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = create_app(settings_for(index.path, oauth=oauth), index=index, env=KEYS, listening=sock.getsockname())
    sock.close()  # serve() binds its own: only the address create_app was told matters here
    served = serve(app)
    address = next(served)
    try:
        metadata = httpx.get(f"http://{address}/.well-known/oauth-protected-resource", headers={"Host": "evil.example"})
        assert metadata.json()["resource"] == url
        challenge = httpx.post(f"http://{address}/v1/search", json={"query": "x"}).headers["www-authenticate"]
        assert challenge == f'Bearer resource_metadata="{url}/.well-known/oauth-protected-resource"'
        token = idp.sign(claims(idp, url))  # an MCP client asks for the resource it was shown (RFC 8707)
        assert (
            httpx.post(
                f"http://{address}/v1/search", json={"query": "Falcon"}, headers={"Authorization": f"Bearer {token}"}
            ).status_code
            == 200
        )
        # the /mcp metadata names `url/mcp`: a token for that resource is accepted too, another one not
        mcp = httpx.get(f"http://{address}/.well-known/oauth-protected-resource/mcp").json()["resource"]
        assert mcp == f"{url}/mcp"
        # the same URIs as clients that parse them first send them (a trailing slash), not another one
        for audience, status in ((mcp, 200), (f"{url}/", 200), (f"{mcp}/", 200), (f"{url}/other", 401)):
            bearer = {"Authorization": f"Bearer {idp.sign(claims(idp, audience))}"}
            assert (
                httpx.post(f"http://{address}/v1/search", json={"query": "Falcon"}, headers=bearer).status_code
                == status
            )
    finally:
        next(served, None)


def test_a_set_audience_still_accepts_the_resources_the_metadata_names() -> None:
    # /mcp's challenge points clients at the server's metadata: they ask for its resource
    oauth = OAuthConfig(issuer="https://idp.example", audience="api://inlet", resource_url="https://inlet.example/")
    assert audiences(oauth) == [
        "api://inlet",
        "api://inlet/",
        "https://inlet.example",
        "https://inlet.example/",
        "https://inlet.example/mcp",
        "https://inlet.example/mcp/",
    ]


def test_a_loopback_resource_url_on_another_port_warns(
    idp: IdentityProvider, index: Index, caplog: pytest.LogCaptureFixture
) -> None:
    oauth = OAuthConfig(issuer=idp.issuer, audience="api://inlet", resource_url="http://127.0.0.1:8484")
    with caplog.at_level(logging.WARNING, logger="inlet.server.oauth"):
        create_app(settings_for(index.path, oauth=oauth), index=index, env=KEYS, listening=("127.0.0.1", 18502))
    assert any("8484" in r.getMessage() and "18502" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="inlet.server.oauth"):
        create_app(settings_for(index.path, oauth=oauth), index=index, env=KEYS, listening=("127.0.0.1", 8484))
    assert not [r for r in caplog.records if r.name == "inlet.server.oauth"]  # (the tests' short keys are warned about)


# --- who the token names (issue 31 item 5) ----------------------------------------------------------
@pytest.mark.parametrize(
    "changes",
    [
        {"email": "eve@evil.com@corp.example"},
        {"email": "Alice <alice@example.com>"},
        {"email": "alice"},
        {"email": "alice@example.com,eve@evil.com"},
        {"email_verified": False},
        {"email_verified": "false"},
    ],
    ids=["two-ats", "display-name", "no-at", "two-addresses", "unverified", "unverified-string"],
)
def test_the_user_must_be_one_verified_address(base_url: str, idp: IdentityProvider, changes: dict[str, Any]) -> None:
    token = idp.sign(claims(idp, base_url, **changes))
    response = httpx.post(
        f"{base_url}/v1/search", json={"query": "Falcon"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_token"


def test_email_verified_can_be_waived_for_providers_that_never_send_it(idp: IdentityProvider) -> None:
    token = idp.sign(claims(idp, "urn:test", email_verified=False))
    strict = OAuthConfig(issuer=idp.issuer, audience="urn:test", jwks_url=f"{idp.issuer}/jwks")
    with pytest.raises(TokenRejected, match="email_verified"):
        JwtVerifier(strict).verify(token)
    lenient = strict.model_copy(update={"require_email_verified": False})
    assert JwtVerifier(lenient).verify(token).claims["user"] == ALICE_EMAIL  # type: ignore[index]
    assert JwtVerifier(strict).verify(idp.sign(claims(idp, "urn:test", email_verified=True))) is not None


def test_a_wrong_api_key_is_not_called_a_bad_jwt(base_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="inlet.server.oauth"):
        response = httpx.post(
            f"{base_url}/v1/search", json={"query": "x"}, headers={"Authorization": "Bearer alice-secret-kez"}
        )
    assert response.status_code == 401 and "API key" in response.json()["error"]["message"]
    assert "JWT" not in response.json()["error"]["message"]
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "unknown API key" in said and "not a JWT" not in said


def test_the_audit_log_names_the_tokens_subject_and_issuer_never_the_token(
    sandbox: Sandbox, idp: IdentityProvider, index: Index, tmp_path: Any
) -> None:
    log = tmp_path / "audit.jsonl"
    url = "http://127.0.0.1:8484"
    oauth = OAuthConfig(issuer=idp.issuer, audience=url, scopes=["inlet.read"], resource_url=url)
    app = create_app(settings_for(index.path, oauth=oauth, audit_log=str(log)), index=index, env=KEYS)
    token = idp.sign(idp.access_claims(ALICE_EMAIL, "tests", ["inlet.read"], url))
    scopeless = idp.sign(idp.access_claims(ALICE_EMAIL, "tests", ["openid"], url))
    with TestClient(app) as client:
        assert app.state.retrieval.ready.wait(30)
        answer = client.post(
            "/v1/search", json={"query": "Falcon launch"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 200
        refused = client.post(
            "/v1/search", json={"query": "what did alice ask"}, headers={"Authorization": f"Bearer {scopeless}"}
        )
        assert refused.status_code == 403
        asked = {"name": "search", "arguments": {"query": "what did alice ask the agent"}}
        call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": asked}
        mcp = {"Authorization": f"Bearer {scopeless}", "Accept": "application/json, text/event-stream"}
        assert client.post("/mcp", json=call, headers=mcp).status_code == 403  # probe 23b F1: written too
        assert (
            client.post("/v1/search", json={"query": "x"}, headers={"Authorization": "Bearer nobody"}).status_code
            == 401
        )
    line, denied, tool = [json.loads(text) for text in log.read_text().splitlines()]  # a 401 names nobody: no line
    assert (tool["tool"], tool["status"], tool["user"]) == ("search", 403, ALICE_EMAIL)
    assert tool["query"] == "what did alice ask the agent" and tool["subject"] == denied["subject"]
    subject = jwt.decode(token, options={"verify_signature": False})["sub"]
    assert line["subject"] == subject and line["issuer"] == idp.issuer and "key" not in line
    assert line["user"] == ALICE_EMAIL and line["route"] == "POST /v1/search"
    assert (denied["status"], denied["user"], denied["issuer"]) == (403, ALICE_EMAIL, idp.issuer)
    assert denied["query"] == "what did alice ask"  # what a token without the scope was asking
    assert denied["subject"] == jwt.decode(scopeless, options={"verify_signature": False})["sub"]
    for signed in (token, scopeless):
        assert signed not in log.read_text() and signed.split(".")[2] not in log.read_text()
