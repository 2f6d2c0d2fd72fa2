"""OAuth 2.1 access tokens beside API keys (docs/agents.md: remote agents): inlet as a resource server.

A Bearer value that is not a configured API key is taken for a JWT from `[server.oauth].issuer`.
Verification is PyJWT's (signature, `iss`, `aud`, `exp`/`nbf`) with the signing key picked by `kid`
from the issuer's JWKS through `PyJWKClient`, which caches the set. The set is fetched over https
only (plain http only on a loopback address): `[server.oauth] jwks_url` and a discovered `jwks_uri`
pass the same rule (`config.check_url`), the latter before anything is fetched from it, else tokens
are refused as while the provider is unreachable. An unknown `kid` refetches it at once, and so does
a signature that no key at hand verifies (a provider may replace a key under the same `kid`); then
neither refetches again for a cooldown: a key rotated in moments ago is accepted, and a stream of
forged tokens (random `kid`s, or a known `kid` and a wrong signature) cannot turn inlet into a load
generator against the identity provider. One fetch at a time, bounded in all (`HTTP_TIMEOUT_SECONDS`
for connecting, waiting and reading: a provider trickling its answer is cut off as one that hangs;
and `MAX_DOCUMENT_BYTES`), as discovery is. Once keys are at hand no request waits on a fetch
another started unless its `kid` is unknown: the others are checked with those keys, and an unknown
`kid` waits at most that deadline, then is refused (so a hanging or trickling provider holds a few
token requests for seconds, never the rest). Token checks run in worker threads of their own
(`VERIFY_THREADS`), never in those searches run in: a request with an API key never waits on the
identity provider. Only asymmetric algorithms are accepted, so `alg: none` and an HMAC token keyed
with the (public) verification key fail before any signature check. The verifier is the `mcp` SDK's
`TokenVerifier`, producing its `AccessToken`. `kid` is optional (RFC 7515 §4.1.4): a token naming
none is checked with the set's one key able to verify its `alg`, and refused when several are (which
one signed is ambiguous). Keys sharing a `kid` (RFC 7517 §4.5: of different types) are each tried
that may verify the token's `alg`. A key that names its `alg` verifies only that algorithm; one that
names none (RFC 7517 §4.4; Microsoft Entra's) any accepted algorithm of its type: RS*/PS* for an RSA
key, the ES* of an EC key's curve, EdDSA for an OKP key.

A verified token becomes a `KeyEntry` acting as its user (the `user_claim`), so the rest of the
server treats it exactly like a `user` API key: ACL filtering, and no naming of another user.
The 401/403 answers carry the `WWW-Authenticate` challenge that points MCP clients at the
RFC 9728 protected-resource metadata, from which they discover the authorization server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import jwt
from mcp.server.auth.handlers.metadata import ProtectedResourceMetadataHandler
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.routes import cors_middleware
from mcp.shared.auth import ProtectedResourceMetadata
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from inlet.config import OAuthConfig, Settings, check_url, loopback_host
from inlet.errors import ConfigError
from inlet.connectors.model import ASCII_SPACE, well_formed_user

from .auth import TOKEN_KEY, KeyEntry, KeyRing
from .errors import ApiError, CallerRefused
from .listener import local_url

log = logging.getLogger(__name__)

# Asymmetric JWS algorithms only: `none` and HS* are never in the allow-list.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
RSA_ALGORITHMS = frozenset(a for a in ALGORITHMS if a[:2] in ("RS", "PS"))  # what a key of kty RSA can verify
LEEWAY_SECONDS = 60  # clock skew tolerated on exp/nbf/iat (the contract's maximum)
JWKS_LIFESPAN_SECONDS = 300  # a cached key set is refetched after this
JWKS_COOLDOWN_SECONDS = 30.0  # at most one refetch per this for unknown kids
JWKS_STALE_SECONDS = 3600  # the last key set stays in use this long while the issuer cannot be reached
HTTP_TIMEOUT_SECONDS = 5.0  # a discovery (both its URLs) or key-set fetch in all: connecting, waiting, every read
MAX_DOCUMENT_BYTES = 1024 * 1024  # a discovery document or key set over this is an outage (real ones: a few KiB)
VERIFY_THREADS = 8  # worker threads token checks may hold at once (their own, not the searches')
PRM_PATH = "/.well-known/oauth-protected-resource"
PRM_PATHS = frozenset({PRM_PATH, PRM_PATH + "/mcp"})


class TokenRejected(Exception):
    """The token is not valid here (bad signature, issuer, audience, time, claims); says why."""


class ScopeMissing(Exception):
    """The token is valid but lacks a required scope; `access` says whose token it is."""

    def __init__(self, missing: str, access: AccessToken) -> None:
        super().__init__(missing)
        self.access = access


class IdentityProviderUnavailable(Exception):
    """The issuer's discovery document or key set could not be fetched."""


def _ssl_context(config: OAuthConfig) -> ssl.SSLContext:
    """The system's trusted CAs, plus `ca_bundle` when set (a private CA in front of the issuer)."""
    context = ssl.create_default_context()
    if config.ca_bundle is not None:
        context.load_verify_locations(cafile=str(config.ca_bundle))
    return context


def fetch_document(url: str, ssl_context: ssl.SSLContext | None, seconds: float) -> tuple[int, bytes]:
    """The status and body of `GET url` (no redirect followed), the whole within `seconds`
    (connecting, waiting and every read: a provider trickling its answer byte by byte is cut off as
    one that hangs) and `MAX_DOCUMENT_BYTES`; else `IdentityProviderUnavailable` saying which.
    Blocking (a token check's worker thread runs it): an event loop of its own bounds it in all,
    as a per-read socket timeout cannot."""
    try:
        return asyncio.run(_fetch_document(url, ssl_context, seconds))
    except TimeoutError:
        raise IdentityProviderUnavailable(
            f"cannot reach the OAuth issuer at {url}: no whole answer within {seconds:.1f} s"
        ) from None
    except httpx.HTTPError as exc:
        raise IdentityProviderUnavailable(f"cannot reach the OAuth issuer at {url}: {exc}") from exc


async def _fetch_document(url: str, ssl_context: ssl.SSLContext | None, seconds: float) -> tuple[int, bytes]:
    if seconds <= 0:
        raise TimeoutError
    verify: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
    async with asyncio.timeout(seconds), httpx.AsyncClient(verify=verify, timeout=seconds) as client:
        # httpx follows no redirect unless told to; the body is taken as sent (no decompression to
        # outgrow the bound), as PyJWT's own fetch does
        async with client.stream("GET", url, headers={"Accept-Encoding": "identity"}) as response:
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise IdentityProviderUnavailable(
                        f"cannot use the answer of {url}: it is over {MAX_DOCUMENT_BYTES} bytes"
                    )
            return response.status_code, bytes(body)


def key_algorithms(key: jwt.PyJWK) -> frozenset[str]:
    """The accepted algorithms `key` may verify: the `alg` its JWK names; without one (RFC 7517 §4.4)
    every accepted algorithm of its type: RS*/PS* for an RSA key, else the one PyJWT derives from its
    type and curve (ES256 for P-256, ..., EdDSA for Ed25519), none for a symmetric key."""
    named = key._jwk_data.get("alg")  # PyJWK keeps the JWK; its `algorithm_name` is a default when none is named
    if named:
        return frozenset({str(named)}) & frozenset(ALGORITHMS)
    if key.key_type == "RSA":
        return RSA_ALGORITHMS
    return frozenset({key.algorithm_name}) & frozenset(ALGORITHMS)


def keys_for(keys: Sequence[jwt.PyJWK], algorithm: str, kid: str | None) -> list[jwt.PyJWK]:
    """Those of `keys` that may verify `algorithm` (`key_algorithms`), each set to verify it (PyJWT
    binds a key to one algorithm, RS256 for an RSA JWK naming none); `TokenRejected` naming what
    they do verify when none may."""
    fit = [key for key in keys if algorithm in key_algorithms(key)]
    if not fit:
        usable = sorted(set().union(*(key_algorithms(key) for key in keys)))
        which = f"signing key {kid!r}" if kid else "issuer's signing key"
        types = ", ".join(str(key.key_type) for key in keys)
        together = "together " if len(keys) > 1 else ""
        can = f"verifies only {', '.join(usable)}" if usable else "verifies no accepted algorithm"
        raise TokenRejected(f"the token is signed {algorithm} but the {which} ({types}) {together}{can}")
    try:
        return [key if key.algorithm_name == algorithm else jwt.PyJWK(key._jwk_data, algorithm) for key in fit]
    except jwt.PyJWTError as exc:
        raise TokenRejected(f"the issuer's key cannot verify {algorithm} ({exc})") from None


def _among(key: jwt.PyJWK, keys: Sequence[jwt.PyJWK]) -> bool:
    """`key` is one of `keys`: the same JWK (whatever algorithm PyJWT bound either to)."""
    return any(key._jwk_data == other._jwk_data for other in keys)


class _KeySetClient(jwt.PyJWKClient):
    """PyJWT's client, except that:
    - a key without `kid` is a signing key too (PyJWT leaves it out): `only_key` finds it for a
      token naming no `kid`;
    - a fetch is `fetch_document`'s, bounded in all by `timeout` (and `MAX_DOCUMENT_BYTES`): PyJWT's own
      times out each read only, so a provider trickling its answer held it (and every token
      waiting on it) for as long as it liked. As PyJWT's, it follows no redirect;
    - one fetch at a time: while it runs, a `kid` among the keys at hand (the last set fetched,
      fresh or not) is answered from them at once; an unknown `kid` waits for that fetch (at most
      `timeout`, its deadline) and is looked up in what it brought, never starting another: a key
      rotated in moments ago is accepted by every request that carries it, and a provider that
      hangs or trickles holds only token requests (in their own threads,
      `JwtVerifier.verify_in_thread`), never one with an API key, and those for `timeout` at most;
      before any set is at hand, lookups wait for the first fetch (at most `timeout` too), which
      all of them need (concurrent first requests fetch the set once);
    - a `kid` may name several keys (of different types, RFC 7517 §4.5): `signing_keys` returns each;
    - an unknown `kid`, or a token whose signature none of the keys at hand verifies (`tried`),
      refetches the set unless one of them did so within `cooldown_duration` (PyJWT also counts
      the first and the periodic fetches, refusing a freshly rotated key for up to the cooldown
      after any fetch);
    - a failed fetch is not tried again for `retry_after` seconds (during an identity-provider
      outage each request would otherwise fetch once more): the same failure is raised again. An
      answer that is no JSON key set (a maintenance page) is an outage; one with no usable key
      refuses the token;
    - while the provider cannot be reached the last key set fetched stays in use for up to
      `JWKS_STALE_SECONDS`: an outage of the provider does not lock out tokens it already signed."""

    def __init__(self, uri: str, retry_after: float, **options: Any) -> None:
        super().__init__(uri, **options)
        self.retry_after = retry_after
        self._failure: tuple[float, Exception] | None = None  # (when, the last fetch's failure)
        self._last: tuple[float, Any] | None = None  # (when, the last key set fetched)
        self._stale = False  # serving `_last` after a failed fetch
        self._forced_at: float | None = None  # the last refetch for an unknown kid
        self._lock = threading.Lock()

    def _acquired(self, wait: bool) -> bool:
        """Whether this thread now holds the fetch lock: taken at once, or (`wait`) when the fetch
        under way ended, waiting at most its deadline (`timeout`)."""
        return self._lock.acquire(timeout=self.timeout) if wait else self._lock.acquire(blocking=False)

    def _at_hand(self, held: list[jwt.PyJWK] | None) -> list[jwt.PyJWK]:
        """The keys at hand while a fetch holds the lock: `held`, or when there were none (the lock
        was waited for, `timeout` at most), what the fetches brought meanwhile;
        `PyJWKClientConnectionError` when still none."""
        if held is None:
            held = self._held()
        if held is None:
            raise jwt.PyJWKClientConnectionError(f"{self.uri} gave no key set within {self.timeout:g} s")
        return held

    def _lookup(
        self,
        pick: Callable[[list[jwt.PyJWK]], list[jwt.PyJWK]],
        refetch: bool,
        enough: Callable[[list[jwt.PyJWK]], bool] = bool,
    ) -> list[jwt.PyJWK]:
        """The keys `pick` chooses from the set at hand (the first fetch waited for; an expired set
        refetched unless a fetch is under way). When they are not `enough` (none) and `refetch`: the
        set is fetched again, unless a refetch was forced within `cooldown_duration` (by an unknown `kid`
        or a failed signature alike), and chosen from anew; while another fetch is under way, what
        that one brings is waited for (at most `timeout`) and chosen from instead."""
        held = self._held()
        if not self._acquired(wait=held is None):  # a fetch is under way (waited for when no key is at hand)
            keys = pick(self._at_hand(held))
            if not enough(keys) and refetch and held is not None and self._acquired(wait=True):  # perhaps in the set
                try:  # being fetched: look there (no fetch of our own)
                    keys = pick(self._held() or [])
                finally:
                    self._lock.release()
            return keys
        try:
            keys = pick(self.get_signing_keys())
            now = time.monotonic()
            if (
                not enough(keys)
                and refetch
                and (self._forced_at is None or now - self._forced_at >= self.cooldown_duration)
            ):
                self._forced_at = now
                keys = pick(self.get_signing_keys(refresh=True))
        finally:
            self._lock.release()
        return keys

    def signing_keys(self, kid: str, algorithm: str, tried: Sequence[jwt.PyJWK] = ()) -> list[jwt.PyJWK]:
        """Every signing key named `kid` (RFC 7517 §4.5 lets keys of different types share one), but
        those in `tried` (keys the token's signature already failed with); when none of them may
        verify `algorithm` (`key_algorithms`), the set is refetched (`_lookup`, rate-limited): a key
        rotated in under a new `kid`, or under the same `kid` (a provider with a fixed key id), is
        found at once. `PyJWKClientError` when there is no such key."""

        def named(found: list[jwt.PyJWK]) -> list[jwt.PyJWK]:
            return [key for key in found if key.key_id == kid and not _among(key, tried)]

        keys = self._lookup(named, True, lambda keys: any(algorithm in key_algorithms(key) for key in keys))
        if not keys:
            known = " other than the one(s) it does not verify with" if tried else ""
            raise jwt.PyJWKClientError(f"no signing key {kid!r}{known} in the issuer's key set")
        return keys

    def only_key(self, algorithm: str, tried: Sequence[jwt.PyJWK] = ()) -> jwt.PyJWK:
        """For a token naming no `kid`: the one signing key able to verify `algorithm`
        (`key_algorithms`) in the set at hand, fetched as for a `kid` (the first fetch is waited
        for; an expired set is refetched unless a fetch is under way). No refetch is forced for it,
        unless the token's signature failed with that key (`tried`): then the set is refetched as
        for an unknown `kid` (`_lookup`, rate-limited), and a key that replaced it is used.
        `PyJWKClientError` when no key (but `tried`), or several keys, can verify it (which one
        signed is ambiguous)."""

        def able(keys: list[jwt.PyJWK]) -> list[jwt.PyJWK]:
            found = [key for key in keys if algorithm in key_algorithms(key)]
            return [] if tried and all(_among(key, tried) for key in found) else found

        able_keys = self._lookup(able, bool(tried))
        if len(able_keys) == 1:
            return able_keys[0]
        if not able_keys:
            raise jwt.PyJWKClientError(
                f"the token names no signing key ('kid') and the issuer's key set holds none for {algorithm}"
                + (" but the one it does not verify with" if tried else "")
            )
        raise jwt.PyJWKClientError(
            f"the token names no signing key ('kid') and the issuer's key set holds {len(able_keys)} keys for "
            f"{algorithm}: which one signed it is ambiguous (the issuer must name it in 'kid')"
        )

    @staticmethod
    def _get_signing_keys_from_jwk_set(jwk_set: jwt.PyJWKSet) -> list[jwt.PyJWK]:
        """PyJWT's, keeping the keys without `kid` (a `kid` never matches them: only `only_key` finds them)."""
        keys = [key for key in jwk_set.keys if key.public_key_use in ("sig", None)]
        if not keys:
            raise jwt.PyJWKClientError("The JWKS endpoint did not contain any signing keys")
        return keys

    def _held(self) -> list[jwt.PyJWK] | None:
        """The signing keys of the last set fetched, fresh or expired, while the stale keys may still
        be used (`JWKS_STALE_SECONDS`); None when there is none."""
        cached = self.jwk_set_cache.jwk_set_with_timestamp if self.jwk_set_cache is not None else None
        if cached is None or self._last is None or time.monotonic() - self._last[0] > JWKS_STALE_SECONDS:
            return None
        try:
            return self._get_signing_keys_from_jwk_set(cached.get_jwk_set())
        except jwt.PyJWKClientError:  # a set with no signing key
            return []

    def fetch_data(self) -> Any:
        try:
            data = self._fetched()
        except jwt.PyJWKClientConnectionError as exc:
            # PyJWT caches what this returns for JWKS_LIFESPAN_SECONDS more: stale keys end within the hour
            if self._last is None or time.monotonic() - self._last[0] > JWKS_STALE_SECONDS - JWKS_LIFESPAN_SECONDS:
                raise
            if not self._stale:  # once per outage
                log.warning("OAuth: the issuer's keys cannot be fetched (%s): the last ones fetched stay in use", exc)
            self._stale = True
            return self._last[1]
        self._last, self._stale = (time.monotonic(), data), False
        return data

    def _fetched(self) -> Any:
        """The key set, fetched as PyJWT's `fetch_data` does it but by `fetch_document` (bounded in time and
        size); a failure is remembered and raised again for `retry_after` seconds."""
        if self._failure is not None and time.monotonic() - self._failure[0] < self.retry_after:
            failure = self._failure[1]
            raise type(failure)(f"{failure} (moments ago: not fetched again yet)")
        try:
            data = self._downloaded()
        except (jwt.PyJWKClientConnectionError, jwt.PyJWKSetError) as exc:  # unreachable; no usable key
            self._failure = (time.monotonic(), exc)
            raise
        except (ValueError, RecursionError, jwt.PyJWKClientError) as exc:  # no JSON object: the issuer is broken
            error = jwt.PyJWKClientConnectionError(f"{self.uri} answered no JSON key set ({exc})")
            self._failure = (time.monotonic(), error)
            raise error from exc
        self._failure = None
        return data

    def _downloaded(self) -> Any:
        """PyJWT's `fetch_data` (a JSON object, put in the cache), the fetch `fetch_document`'s."""
        try:
            status, body = fetch_document(self.uri, self.ssl_context, self.timeout)
        except IdentityProviderUnavailable as exc:
            raise jwt.PyJWKClientConnectionError(str(exc)) from None
        if status != 200:  # a redirect too: not followed
            raise jwt.PyJWKClientConnectionError(f"{self.uri} answered HTTP {status}")
        data = self._as_jwk_set_payload(json.loads(body))  # ValueError, PyJWKClientError: no JSON object
        if self.jwk_set_cache is not None:
            self.jwk_set_cache.put(data)  # PyJWKSetError: no usable key
        self._last_successful_fetch = time.monotonic()
        return data


def _json_object(status: int, body: bytes) -> dict[str, Any] | None:
    """The body of a 200 answer when it is a JSON object (a sign-in page or `[]` is not)."""
    if status != 200:
        return None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def discovery_urls(issuer: str) -> list[str]:
    """Where the issuer's metadata may live: OpenID discovery, then RFC 8414 (path-inserted)."""
    parts = urlsplit(issuer.rstrip("/"))
    origin = f"{parts.scheme}://{parts.netloc}"
    return [
        f"{issuer.rstrip('/')}/.well-known/openid-configuration",
        f"{origin}/.well-known/oauth-authorization-server{parts.path}",
    ]


def audiences(config: OAuthConfig, listening: str | None = None) -> list[str]:
    """The `aud` values a token may carry: `audience`, and the resources the protected-resource
    metadata names, the server's and its /mcp endpoint's (an MCP client asks its issuer for a
    token for the resource it found: RFC 8707, RFC 9728), each also with a trailing slash (clients
    that parse the URL first, as the TypeScript SDK does, add one)."""
    base = (config.resource_url or listening or "").rstrip("/")
    named = [config.audience] + ([base, base + "/mcp"] if base else [])
    return list(dict.fromkeys(v for a in named if a for v in (a, a.rstrip("/"), a.rstrip("/") + "/") if v))


class JwtVerifier:
    """Verifies access tokens of one issuer (the `mcp` SDK's `TokenVerifier` protocol)."""

    def __init__(
        self, config: OAuthConfig, refresh_cooldown: float = JWKS_COOLDOWN_SECONDS, listening: str | None = None
    ) -> None:
        self.config = config
        self.refresh_cooldown = refresh_cooldown
        self.audiences = audiences(config, listening)
        self._ssl = _ssl_context(config)
        self._jwks: _KeySetClient | None = None
        self._discovery_failed_at: float | None = None
        self._lock = threading.Lock()
        self._threads = anyio.CapacityLimiter(VERIFY_THREADS)

    def jwks_url(self) -> str:
        """`jwks_url` when configured, else the `jwks_uri` of the issuer's discovery document."""
        if self.config.jwks_url:
            return self.config.jwks_url
        answers: list[str] = []
        deadline = time.monotonic() + HTTP_TIMEOUT_SECONDS  # for both URLs: token checks wait on it
        for url in discovery_urls(self.config.issuer):
            status, body = fetch_document(url, self._ssl, deadline - time.monotonic())
            document = _json_object(status, body)
            if document is None:
                answers.append(f"{url} answered {status} without a JSON object")
                continue
            if document.get("issuer") != self.config.issuer:
                raise IdentityProviderUnavailable(
                    f"{url} names issuer {document.get('issuer')!r}, not the configured {self.config.issuer!r}"
                )
            if isinstance(document.get("jwks_uri"), str):
                return self._checked_jwks_uri(url, document["jwks_uri"])
            answers.append(f"{url} has no jwks_uri")
        raise IdentityProviderUnavailable(
            f"no discovery document with a jwks_uri for issuer {self.config.issuer} ({'; '.join(answers)}; "
            "set [server.oauth] jwks_url)"
        )

    def _checked_jwks_uri(self, url: str, jwks_uri: str) -> str:
        """The discovered `jwks_uri` when it passes the rule a configured `jwks_url` does (https
        unless on a loopback address, RFC 8414 §2): keys fetched in clear would let anyone on the
        path sign tokens for any user. Otherwise the provider is unusable, as when unreachable."""
        try:
            check_url("jwks_uri", jwks_uri, https_unless_loopback=True, query_allowed=True)
        except ValueError as exc:
            raise IdentityProviderUnavailable(
                f"the discovery document of [server.oauth] issuer {self.config.issuer} ({url}) names "
                f"jwks_uri {jwks_uri!r}, which is refused: {exc}; tokens are refused until the provider "
                "publishes an https:// jwks_uri, or set [server.oauth] jwks_url to the https:// URL of its keys"
            ) from None
        return jwks_uri

    def _discover(self) -> str:
        """`jwks_url()`, not tried again within the cooldown after a failure (an outage is not a
        reason to send the provider one request per incoming token)."""
        if self._discovery_failed_at is not None and time.monotonic() - self._discovery_failed_at < max(
            self.refresh_cooldown, 1.0
        ):
            raise IdentityProviderUnavailable(f"the discovery of {self.config.issuer} failed moments ago")
        try:
            return self.jwks_url()
        except IdentityProviderUnavailable:
            self._discovery_failed_at = time.monotonic()
            raise

    def _client(self) -> _KeySetClient:
        with self._lock:
            if self._jwks is None:
                url = self._discover()
                log.info("OAuth: verifying tokens of %s with the keys at %s", self.config.issuer, url)
                self._jwks = _KeySetClient(
                    url,
                    retry_after=max(self.refresh_cooldown, 1.0),
                    cache_jwk_set=True,
                    lifespan=JWKS_LIFESPAN_SECONDS,
                    timeout=HTTP_TIMEOUT_SECONDS,
                    ssl_context=self._ssl,
                    cooldown_duration=self.refresh_cooldown,
                )
            return self._jwks

    def verify(self, token: str) -> AccessToken:
        """The token's `AccessToken`, or `TokenRejected` / `ScopeMissing` / `IdentityProviderUnavailable`."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenRejected(f"not a JWT ({exc})") from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise TokenRejected(f"algorithm {algorithm!r} is not accepted")
        kid = header.get("kid")
        if kid is not None and (not isinstance(kid, str) or not kid):
            raise TokenRejected("the token's 'kid' is not a key id")
        keys = self._keys(kid, algorithm)
        try:
            claims = self._decoded(token, keys, algorithm)
        except jwt.InvalidSignatureError as exc:
            # no key at hand verifies it: perhaps the provider replaced one under the same kid (or,
            # naming none, its one key): the set is refetched, rate-limited as for an unknown kid
            try:
                fresh = self._keys(kid, algorithm, tried=keys)
            except (TokenRejected, IdentityProviderUnavailable):  # no other key: the signature is wrong
                raise TokenRejected(str(exc)) from None
            try:
                claims = self._decoded(token, fresh, algorithm)
            except jwt.InvalidSignatureError as again:
                raise TokenRejected(str(again)) from None
        return self._access_token(token, claims)

    def _keys(self, kid: str | None, algorithm: str, tried: Sequence[jwt.PyJWK] = ()) -> list[jwt.PyJWK]:
        """The keys to check a token of `algorithm` naming `kid` with, each set to verify that
        algorithm (`keys_for`): those named `kid` whose type and `alg` fit it (RFC 7517 §4.5: keys
        of different types may share a `kid`), or the set's one key for it when the token names no
        `kid`; never one of `tried`. `TokenRejected` (no such key, none that may verify `algorithm`:
        saying why) or `IdentityProviderUnavailable`."""
        try:
            client = self._client()
            found = (
                client.signing_keys(kid, algorithm, tried) if kid is not None else [client.only_key(algorithm, tried)]
            )
        except jwt.PyJWKClientConnectionError as exc:
            raise IdentityProviderUnavailable(f"cannot fetch the issuer's keys: {exc}") from exc
        except (jwt.PyJWKClientError, jwt.PyJWKSetError) as exc:  # also: the issuer publishes no key at all
            raise TokenRejected(f"unknown signing key {kid!r}" if kid is not None and not tried else str(exc)) from exc
        return keys_for(found, algorithm, kid)

    def _decoded(self, token: str, keys: Sequence[jwt.PyJWK], algorithm: str) -> dict[str, Any]:
        """The token's claims, verified with the first of `keys` its signature verifies with;
        `jwt.InvalidSignatureError` when none does, `TokenRejected` for any other fault."""
        failed: jwt.InvalidSignatureError | None = None
        for key in keys:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key,
                    algorithms=[algorithm],
                    audience=self.audiences,
                    issuer=self.config.issuer,
                    leeway=LEEWAY_SECONDS,
                    options={"require": ["exp", "iss", "aud"]},
                )
            except jwt.InvalidSignatureError as exc:
                failed = exc
                continue
            except jwt.PyJWTError as exc:
                raise TokenRejected(str(exc)) from None
            return claims
        raise failed or jwt.InvalidSignatureError("Signature verification failed")

    def _access_token(self, token: str, claims: dict[str, Any]) -> AccessToken:
        user = claims.get(self.config.user_claim)
        if not isinstance(user, str) or not user.strip(ASCII_SPACE):
            raise TokenRejected(f"the token has no {self.config.user_claim!r} claim naming the user")
        user = user.strip(ASCII_SPACE)
        self._check_email(user, claims)
        scopes = token_scopes(claims)
        client = claims.get("azp") or claims.get("client_id") or claims.get("appid") or ""
        access = AccessToken(
            token=token,
            client_id=str(client),
            scopes=scopes,
            expires_at=int(claims["exp"]),
            resource=self.config.audience or "",
            subject=claims.get("sub"),
            claims={**claims, "user": user},
        )
        missing = [s for s in self.config.scopes if s not in scopes]
        if missing:
            raise ScopeMissing(" ".join(missing), access)
        return access

    def _check_email(self, user: str, claims: dict[str, Any]) -> None:
        """A user named by an email address (the `email` claim, or any value with an `@`) must be one
        well-formed address (`model.well_formed_user`, the rule for users a key names too); and a
        provider that says the address is unverified is believed (unless `require_email_verified =
        false`)."""
        if self.config.user_claim != "email" and "@" not in user:
            return
        if not well_formed_user(user, address=True):
            raise TokenRejected(f"the {self.config.user_claim!r} claim is not one well-formed email address")
        verified = claims.get("email_verified")
        if self.config.require_email_verified and (verified is False or verified == "false"):
            raise TokenRejected("the token's email_verified claim is false")

    async def verify_in_thread(self, token: str) -> AccessToken:
        """`verify` in one of this verifier's own worker threads (`VERIFY_THREADS`): a fetch from the
        identity provider never holds a thread a search needs."""
        return await anyio.to_thread.run_sync(self.verify, token, limiter=self._threads)

    async def verify_token(self, token: str) -> AccessToken | None:
        """The SDK's protocol: None for any token that does not verify."""
        try:
            return await self.verify_in_thread(token)
        except (TokenRejected, ScopeMissing, IdentityProviderUnavailable):
            return None


_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def looks_like_jwt(value: str) -> bool:
    """Three base64url parts joined by dots (a JWS compact serialisation), whatever they hold."""
    return bool(_JWS.fullmatch(value))


def token_scopes(claims: dict[str, Any]) -> list[str]:
    """Scopes from `scope` (space-separated, RFC 9068) or `scp` (a string or a list: Entra, Okta)."""
    value = claims.get("scope", claims.get("scp", ""))
    if isinstance(value, list):
        return [str(v) for v in value]
    return str(value).split()


# --- who the request acts as --------------------------------------------------------------------
WILDCARDS = ("", "0.0.0.0", "::")


def listening_base(host: str, listening: tuple[Any, ...] | None) -> str | None:
    """`http://HOST:PORT` of the socket the API listens on, HOST as configured (`localhost` stays
    `localhost`: the address the server prints, that a user gives an MCP client, which checks the
    metadata names it); None when unknown or on every address (then the request's own Host is the
    best name there is)."""
    if listening is None or host in WILDCARDS:
        return None
    return local_url(host, int(listening[1]))


def warn_on_port_mismatch(config: OAuthConfig, listening: tuple[Any, ...] | None) -> bool:
    """A loopback `resource_url` whose port is not the listening one sends OAuth clients to a
    server that is not there: warn at start-up. True when it warned."""
    if not config.resource_url or listening is None:
        return False
    parts = urlsplit(config.resource_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if loopback_host(parts.hostname) and port != int(listening[1]):
        log.warning(
            "[server.oauth] resource_url %s names port %d but the server listens on port %d: OAuth "
            "clients will look for it there (remove resource_url to use the listening address)",
            config.resource_url,
            port,
            int(listening[1]),
        )
        return True
    return False


def with_audience(settings: Settings, listening: str | None) -> Settings:
    """`settings` whose `[server.oauth] audience` is set: when left out, the resource's own URL
    (`resource_url`, else the listening address), as an MCP client asks for it (RFC 8707)."""
    config = settings.server.oauth
    if config is None or config.audience is not None:
        return settings
    audience = config.resource_url or listening
    if audience is None:
        raise ConfigError(
            "[server.oauth] audience: set audience (or resource_url) when the server listens on "
            f"every address ({settings.server.host!r}): the token's aud cannot be guessed"
        )
    oauth = config.model_copy(update={"audience": audience})
    return settings.model_copy(update={"server": settings.server.model_copy(update={"oauth": oauth})})


def resource_base(config: OAuthConfig | None, scope: Scope, listening: str | None = None) -> str:
    """The public base URL: `resource_url`, else the address the server listens on, else (listening
    on every address) the scheme and Host the request came with."""
    if config is not None and config.resource_url:
        return config.resource_url
    if listening:
        return listening
    host = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == b"host"), None)
    if not host:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}"


class Authenticator:
    """API keys first (constant time), then, when `[server.oauth]` is set, the JWT verifier."""

    def __init__(
        self,
        keys: KeyRing,
        config: OAuthConfig | None,
        verifier: JwtVerifier | None = None,
        listening: str | None = None,
    ) -> None:
        self.keys = keys
        self.config = config
        self.listening = listening
        self.verifier = verifier or (JwtVerifier(config, listening=listening) if config is not None else None)

    def challenge(self, scope: Scope, error: str | None = None) -> dict[str, str]:
        """The WWW-Authenticate header of a 401/403 (RFC 6750 + RFC 9728 `resource_metadata`)."""
        if self.config is None:
            return {"WWW-Authenticate": "Bearer"}
        parts = [f'resource_metadata="{resource_base(self.config, scope, self.listening)}{PRM_PATH}"']
        if error:
            parts.insert(0, f'error="{error}"')
        if error == "insufficient_scope":
            parts.append(f'scope="{" ".join(self.config.scopes)}"')
        return {"WWW-Authenticate": "Bearer " + ", ".join(parts)}

    async def authenticate(self, authorization: str | None, scope: Scope) -> KeyEntry:
        """The key or token of `Authorization: Bearer ...`, else an `ApiError` (401/403/503)."""
        kind = "API key or access token" if self.verifier is not None else "API key"
        scheme, _, value = (authorization or "").partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            raise ApiError(
                401, "unauthorized", f"missing {kind}: send 'Authorization: Bearer ...'", headers=self.challenge(scope)
            )
        entry = self.keys.match(value)
        if entry is not None:
            return entry
        if self.verifier is None:
            raise ApiError(401, "unauthorized", "invalid API key", headers=self.challenge(scope))
        if not looks_like_jwt(value):  # neither a configured key nor a token: say so, not "not a JWT"
            log.info("a request with an unknown API key was refused")
            raise ApiError(
                401,
                "invalid_token",
                "invalid API key (not a configured key, nor an access token)",
                headers=self.challenge(scope, "invalid_token"),
            )
        return await self._token_entry(value, scope)

    async def _token_entry(self, token: str, scope: Scope) -> KeyEntry:
        assert self.verifier is not None
        try:
            access = await self.verifier.verify_in_thread(token)
        except TokenRejected as exc:
            log.info("access token refused: %s", exc)
            raise ApiError(
                401,
                "invalid_token",
                f"invalid API key or access token: {exc}",
                headers=self.challenge(scope, "invalid_token"),
            ) from None
        except ScopeMissing as exc:
            raise CallerRefused(
                self._entry(exc.access),
                403,
                "insufficient_scope",
                f"the access token lacks the scope {exc}",
                headers=self.challenge(scope, "insufficient_scope"),
            ) from None
        except IdentityProviderUnavailable as exc:
            log.warning("%s", exc)
            raise ApiError(
                503, "idp_unavailable", "the identity provider's keys cannot be fetched; try again later"
            ) from None
        return self._entry(access)

    def _entry(self, access: AccessToken) -> KeyEntry:
        """The token's holder as a key with no rights but its user's."""
        user = str((access.claims or {})["user"])
        return KeyEntry(
            name=f"{TOKEN_KEY}:{access.client_id or 'token'}",
            secret=b"",
            user=user,
            on_behalf_of=False,
            admin=False,
            subject=access.subject or user,
            issuer=self.config.issuer if self.config is not None else None,
        )


# --- RFC 9728 metadata --------------------------------------------------------------------------
def metadata_routes(config: OAuthConfig, listening: str | None = None) -> list[Route]:
    """`/.well-known/oauth-protected-resource` (the API) and `.../mcp` (the MCP endpoint), served
    with the SDK's handler and CORS wrapper (browser-based MCP clients read them cross-origin)."""

    def handler(suffix: str) -> Any:
        async def handle(request: Request) -> Response:
            base = resource_base(config, request.scope, listening)
            metadata = ProtectedResourceMetadata.model_validate(
                {  # strings: no trailing "/" added
                    "resource": base + suffix,
                    "authorization_servers": [config.issuer],
                    "scopes_supported": config.scopes or None,
                    "bearer_methods_supported": ["header"],
                    "resource_name": "inlet",
                }
            )
            response = await ProtectedResourceMetadataHandler(metadata).handle(request)
            response.headers["Cache-Control"] = "no-store"  # like every answer: it names the request's host
            return response

        return handle

    return [
        Route(PRM_PATH + suffix, cors_middleware(handler(suffix), ["GET", "OPTIONS"]), methods=["GET", "OPTIONS"])
        for suffix in ("", "/mcp")
    ]
