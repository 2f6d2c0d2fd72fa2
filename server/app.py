"""The retrieval API (docs/reference/api.md) as a FastAPI app, plus MCP over HTTP at /mcp.

`create_app` builds it around one shared `Index` (passed in by the daemon, or opened here) and
its one embedding model; searches run in worker threads, never on the event loop. Every route
but /healthz, /readyz and the OAuth metadata needs `Authorization: Bearer KEY` (an API key, or an
OAuth access token when `[server.oauth]` is set; checked by `KeyGuard` before routing, so a bad
key is a 401 whatever the body); what the key may do is decided per route (`caller_for`).
/openapi.json declares that check as a `bearer` security scheme, lifted on the keyless routes.

On GET routes an on_behalf_of key names the user with the `X-Inlet-User` header or `?user=`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from urllib.parse import urlsplit
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from inlet.errors import IndexUnavailable
from inlet.config import Settings
from inlet.index.search import Configured
from inlet.index.store import Index
from inlet.status import SourcesCollector, sources_status
from inlet.storage import open_backend

from . import mcp as mcp_http
from .auth import (
    USER_HEADER,
    Caller,
    KeyEntry,
    KeyRing,
    body_or_named_user,
    caller_for,
    named_user,
    require_admin,
    warn_without_keys,
)
from .console import add_console, is_console_path
from .origin import names_this_machine
from .content_type import JsonBody, unsupported_media_type
from .admin import add_admin_sync
from .audit import AuditLog, AuditMiddleware, name_refused
from .ratelimit import RateLimit, RateLimiter, refused_unread
from .oauth import PRM_PATHS, Authenticator, listening_base, metadata_routes, warn_on_port_mismatch, with_audience
from .errors import (
    STATUS_CODES,
    UNAVAILABLE,
    UNAVAILABLE_RETRY,
    ApiError,
    CallerRefused,
    ErrorBody,
    error_body,
    error_responses,
    unavailable,
)
from .hooks import HOOK_BODY_SECONDS, add_hook_routes, not_found, registered
from .hooks import refuse as refuse_hook
from .hooks import PREFIX as HOOKS_PREFIX
from .metrics import CONTENT_TYPE, AuditCollector, Metrics, last_success_reader
from .middleware import BodyLimit, HeadAsGet, ObserveMiddleware, declares_body, send_error
from .models import (
    ContextBody,
    ContextResponse,
    DocumentOut,
    Health,
    SearchBody,
    SearchResponse,
    SearchResult,
    SourcesResponse,
    document_out,
)
from .service import Retrieval


class _DocumentId(PathConvertor):
    """A document id as the rest of the path, whatever it holds: a file's name may hold a newline."""

    regex = r"[\s\S]*"


register_url_convertor("doc_id", _DocumentId())
log = logging.getLogger(__name__)
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/docs", *PRM_PATHS})  # they reveal nothing
ERRORS = error_responses(
    (400, "malformed request"),
    (401, "missing or invalid API key"),
    (403, "beyond the key's rights"),
    (415, "body not JSON"),
    (422, "invalid request"),
    (503, "index or model not loaded yet"),
)

DOCS_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'none'; "
    "base-uri 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}
DOCS_PAGE = """<!doctype html><meta charset="utf-8"><title>inlet retrieval API</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:46em;margin:2em auto;padding:0 1em}code,pre{background:#eee}
</style><h1>inlet retrieval API</h1>
<p>Every route but <code>/healthz</code>, <code>/readyz</code> and this page needs
<code>Authorization: Bearer KEY</code> (an API key from <code>[[server.api_keys]]</code>, or an OAuth access
token), so a browser that opens an API route directly is answered 401.</p>
<p>The OpenAPI description of every route is at <code>/openapi.json</code>; fetch it with a key:</p>
<pre>curl -H "Authorization: Bearer $INLET_KEY" http://HOST:PORT/openapi.json</pre>
<p>Operators: the console at <a href="/console">/console</a> asks for an admin key.
The documentation site's <em>API and MCP reference</em> describes each route.</p>
"""


class KeyGuard:
    """Rejects requests without a valid key or token (401/403) before routing; puts it in the scope.
    A 401 reads no body. A caller it can name but refuses (a token without the scope: 403) is
    audited with the user and query its body names, that body read by `BodyLimit` with the API's
    bounds (`max_body_bytes`, `body_timeout`), as every body is: one that stalls is a 408, one too
    large a 413, as for a caller let through; it spends the caller's rate-limit token (`limiter`)
    as a request let through does (over the limit: 429)."""

    def __init__(
        self,
        app: ASGIApp,
        auth: Authenticator,
        max_body_bytes: int,
        body_timeout: float,
        public: frozenset[str] = PUBLIC_PATHS,
        local: frozenset[str] = frozenset(),
        own_hosts: tuple[str, ...] = (),
        limiter: RateLimiter | None = None,
        metrics: Any = None,
    ) -> None:
        self.app = app
        self.auth = auth
        self.limiter = limiter
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.public = public
        self.local = local  # keyless only for a Host naming this machine (`origin.names_this_machine`)
        self.own_hosts = own_hosts

    def _keyless(self, scope: Scope) -> bool:
        path = scope["path"]
        if path in self.local:
            return names_this_machine(scope, self.own_hosts)
        return path in self.public or is_console_path(path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._keyless(scope) or scope.get("method") == "OPTIONS":
            if declares_body(scope):  # none of them reads one: a body is refused before it is read
                message = f"{scope['method']} {scope['path']} takes no request body"
                await send_error(send, 413, "payload_too_large", message, {"connection": "close"})
                return
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(HOOKS_PREFIX):  # webhooks check their own secret (hooks.py)
            if registered(scope.get("app"), scope["path"]):
                await self.app(scope, receive, send)
            else:  # before its body is read: a made-up hook holds no connection
                await not_found()(scope, receive, send)
            return
        if scope["path"].startswith("/.well-known/"):  # metadata a client probes for: absent, not secret
            response = JSONResponse(error_body("not_found", f"no {scope['path']} here"), 404)
            await response(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == b"authorization"), None)
        try:
            entry = await self.auth.authenticate(header, scope)
        except ApiError as exc:
            refusal = JSONResponse(error_body(exc.code, exc.message), exc.status, headers=exc.headers)
            if isinstance(exc, CallerRefused):  # someone the audit can name (a token without the scope)
                scope.setdefault("state", {})["key"] = exc.who
                answer: ASGIApp = _named(refusal, exc.who)
                counted = None
                if self.limiter is not None:  # it spends its token, as every request a caller makes
                    answer = RateLimit(answer, self.limiter, self.metrics, every_path=True)
                    counted = refused_unread(self.limiter, self.metrics)
                await BodyLimit(answer, self.max_body_bytes, self.body_timeout, counted=counted)(scope, receive, send)
                return
            await refusal(scope, receive, send)
            return
        scope.setdefault("state", {})["key"] = entry
        await self.app(scope, receive, send)


def _named(refusal: Response, who: KeyEntry) -> ASGIApp:
    """`refusal` answered once `name_refused` named in the audit what the (bounded) body asked."""

    async def answer(scope: Scope, receive: Receive, send: Send) -> None:
        await name_refused(scope, receive, who)
        await refusal(scope, receive, send)

    return answer


def configured(settings: Settings) -> Configured:
    """The source names and types `settings` configure (valid in a search's filters)."""
    return Configured(frozenset(s.name for s in settings.sources), frozenset(s.type for s in settings.sources))


def _caller(request: Request, user: str | None) -> Caller:
    entry: KeyEntry = request.state.key
    caller = caller_for(entry, user)
    request.state.caller = caller
    return caller


LOAD_WAIT_ON_STOP = 15.0  # seconds a stop waits for the index and model to finish loading
NOT_LOADED = "the index or model could not be loaded: the server's log says why"


def _judged(got: Any) -> dict[str, Any]:
    """An answer's `match` and `interpreted`, validated into the response models by pydantic."""
    return {"match": got.match, "interpreted": got.interpreted}


def create_app(
    settings: Settings,
    index: Any = None,
    state: Any = None,
    env: Mapping[str, str] | None = None,
    listening: tuple[Any, ...] | None = None,
) -> FastAPI:
    """The API around `index` (opened here, in the background, when None) and `state` (a StateStore).

    `listening` is the address of the socket it is served on (`sock.getsockname()`): without
    `[server.oauth] resource_url`, the OAuth metadata and challenges name it."""
    env = env if env is not None else os.environ
    warn_without_keys(settings, env)
    keys = KeyRing.from_settings(settings, env)
    listening_url = listening_base(settings.server.host, listening)
    if settings.server.oauth is not None:
        warn_on_port_mismatch(settings.server.oauth, listening)
        settings = with_audience(settings, listening_url)
    auth = Authenticator(keys, settings.server.oauth, listening=listening_url)
    retrieval = Retrieval(index, configured(settings))
    backend = open_backend(settings)
    if state is None and backend.shared:  # a stateless replica reads runs from the database
        state = backend.state()
    owns_index = index is None
    index_path = Path(settings.index.path)
    audit = AuditLog.from_settings(settings)
    limiter = RateLimiter.from_settings(settings, backend)
    names = settings.source_names()
    metrics = Metrics(retrieval.counts, last_success_reader(state, backend, index_path, names))
    metrics.registry.register(SourcesCollector(settings, state))  # lag, next run, failure streak, events
    metrics.registry.register(AuditCollector(lambda: audit.lost))
    mcp_app, mcp_manager = mcp_http.http_app(retrieval, settings, auth, audit, limiter, metrics)
    half_life = settings.server.recency_half_life_days

    def load() -> None:
        try:
            if retrieval.index is None:
                retrieval.index = Index(settings.index, configured=names)
            retrieval.warm()
            log.info("index and model loaded; ready")
        except Exception as exc:  # reported by /readyz and as 503s; the process stays up
            retrieval.error = f"index could not be loaded: {exc}"
            log.error("%s", retrieval.error)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loader = threading.Thread(target=load, name="inlet-load", daemon=True)
        loader.start()
        async with mcp_manager.run():
            yield
        # A stop right after the start finds the model still loading: exiting while onnxruntime builds
        # its session in that thread aborts the process ("terminate called without an active
        # exception"), so the load is let finish first (bounded: a stalled Chroma server must not
        # hold the stop).
        await run_in_threadpool(loader.join, LOAD_WAIT_ON_STOP)
        if owns_index and retrieval.index is not None:
            retrieval.index.close()
        audit.close()
        limiter.close()

    app = FastAPI(
        title="inlet retrieval API",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,  # `_handlers` redirects a trailing slash with a path, not the client's Host
        description="Permission-aware retrieval over Slack, Google Drive, Gmail and "
        "Microsoft 365. Every route but /healthz and /readyz needs `Authorization: Bearer KEY` "
        "(an API key or an OAuth access token). An on_behalf_of key names the user with the body's "
        f"`user` (POST routes), the `{USER_HEADER}` header or the `user` query parameter.",
    )
    app.state.retrieval = retrieval
    app.state.metrics = metrics
    app.state.audit = audit
    _handlers(app)

    @app.post("/v1/search", response_model=SearchResponse, responses=ERRORS, tags=["retrieval"])
    async def search(body: SearchBody, request: Request) -> SearchResponse:
        """Documents the caller may see, best first, each with its best passages and relevance."""
        request.state.audit = {"query": body.query, "doc_ids": []}  # also when the caller is refused
        caller = _caller(request, body_or_named_user(body.user, request.scope))
        got = await run_in_threadpool(retrieval.answer, body.to_request(caller.user, half_life))
        request.state.audit["doc_ids"] = [h.doc_id for h in got.hits]
        return SearchResponse(
            results=[SearchResult.of(h) for h in got.hits], took_ms=round(got.took_ms, 1), **_judged(got)
        )

    @app.post("/v1/context", response_model=ContextResponse, responses=ERRORS, tags=["retrieval"])
    async def context(body: ContextBody, request: Request) -> ContextResponse:
        """The best passages at or above `min_relevance` packed under `token_budget`, marked [n], fenced
        as quoted data; one line saying so when none qualifies."""
        request.state.audit = {"query": body.query, "doc_ids": []}  # also when the caller is refused
        caller = _caller(request, body_or_named_user(body.user, request.scope))
        packed, got = await run_in_threadpool(
            retrieval.context, body.to_request(caller.user, half_life), body.token_budget, body.min_relevance
        )
        request.state.audit["doc_ids"] = [h.doc_id for h in packed.hits]
        citations: list[Any] = packed.citations  # plain dicts, validated into the response model
        return ContextResponse(
            context=packed.context,
            citations=citations,
            results=[SearchResult.of(h) for h in packed.hits],
            tokens=packed.tokens,
            took_ms=round(got.took_ms, 1),
            **_judged(got),
        )

    @app.get(
        "/v1/documents/{doc_id:doc_id}",
        response_model=DocumentOut,
        response_model_exclude_unset=True,
        responses={**ERRORS, 404: {"model": ErrorBody, "description": "absent or not visible"}},
        tags=["retrieval"],
    )
    async def document(
        doc_id: str,
        request: Request,
        user: str | None = Query(None, pattern=r"\S", max_length=320),
        x_inlet_user: str | None = Header(None, pattern=r"\S", max_length=320),
    ) -> Any:
        """The whole document; 404 when absent or not visible to the caller (the same answer)."""
        caller = _caller(request, named_user(request.scope))  # the parameters above document it
        doc = await run_in_threadpool(retrieval.document, doc_id, caller)
        if doc is None:
            raise ApiError(404, "not_found", f"no document {doc_id!r}")
        request.state.audit = {"doc_ids": [doc.id]}
        return document_out(doc, with_acl=caller.admin)

    @app.get("/v1/sources", response_model=SourcesResponse, responses=ERRORS, tags=["operations"])
    async def sources(request: Request) -> Any:
        """Each configured source, as `inlet status --json` (admin keys only)."""
        request.state.caller = require_admin(request.state.key, "GET /v1/sources")
        return await run_in_threadpool(sources_status, settings, state)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        """Where the API is described (no key needed: the page holds no data)."""
        return Response(DOCS_PAGE, media_type="text/html", headers=DOCS_HEADERS)

    @app.get("/healthz", response_model=Health, tags=["operations"])
    async def healthz() -> Health:
        """The process is up (no key needed)."""
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, responses=ERRORS, tags=["operations"])
    async def readyz() -> Any:
        """200 once the index is open and the model loaded, while its database and Chroma server (if
        any) answer and that server still has the index's collection (by name: its vectors are not
        counted or read)."""
        if not retrieval.ready.is_set():  # why a load failed (paths, a server's address) is in the log only
            raise ApiError(503, "not_ready", NOT_LOADED if retrieval.error else "the index and model are still loading")
        if await run_in_threadpool(retrieval.unreachable):  # named in the log, not to a caller without a key
            raise ApiError(503, "index_unavailable", UNAVAILABLE, dict(UNAVAILABLE_RETRY))
        return Health(status="ready")

    @app.get(
        "/metrics",
        response_class=Response,
        tags=["operations"],
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}, **ERRORS},
    )
    async def prometheus(request: Request) -> Response:
        """Prometheus metrics (admin keys only, they name every source and its counts, unless
        `[server] metrics_public`; on a loopback listener, keyless only for a `Host` naming this
        machine, against DNS rebinding)."""
        key: KeyEntry | None = getattr(request.state, "key", None)  # checked unless keyless (`KeyGuard.local`)
        if key is None and not settings.server.metrics_public:  # KeyGuard lets none through: never served keyless
            raise ApiError(401, "unauthorized", "missing API key: send 'Authorization: Bearer KEY'")
        if key is not None:
            request.state.caller = require_admin(key, "GET /metrics")
        return Response(await run_in_threadpool(metrics.render), media_type=CONTENT_TYPE)

    add_console(app, settings, state)

    # Starlette's Route serves a non-function endpoint as an ASGI app, but add_route() is typed for
    # request handlers only.
    mcp_endpoint: Any = mcp_app
    # Every method reaches it, so each answer comes after the key check and a 405 says `Allow: POST`.
    app.add_route("/mcp", mcp_endpoint, methods=None, include_in_schema=False)
    add_hook_routes(app)
    add_admin_sync(app, settings)
    for route in metadata_routes(settings.server.oauth, listening_url) if settings.server.oauth is not None else []:
        app.router.routes.append(route)
    local = frozenset({"/metrics"} if settings.server.metrics_public else ())
    _declare_bearer(app, PUBLIC_PATHS | local)
    app.add_middleware(HeadAsGet)  # innermost: the checks below see the HEAD, the routes a GET
    app.add_middleware(JsonBody)
    app.add_middleware(RateLimit, limiter=limiter, metrics=metrics)  # reads the bounded body of a 429 for its audit
    app.add_middleware(
        BodyLimit,
        max_body_bytes=settings.server.max_body_bytes,  # inside the key check
        idle_timeout=settings.server.body_timeout,
        quick=(HOOKS_PREFIX, min(HOOK_BODY_SECONDS, settings.server.body_timeout), refuse_hook),
        counted=refused_unread(limiter, metrics),  # a body refused unread spends its token too
    )
    oauth = settings.server.oauth
    own_host = urlsplit(oauth.resource_url).hostname if oauth is not None and oauth.resource_url else None
    own_hosts = (own_host,) if own_host else ()  # never "": an empty Host names no machine
    app.add_middleware(
        KeyGuard,
        auth=auth,
        max_body_bytes=settings.server.max_body_bytes,  # the bounds of BodyLimit, for the body of a 403
        body_timeout=settings.server.body_timeout,
        local=local,
        own_hosts=own_hosts,
        limiter=limiter,
        metrics=metrics,
    )
    app.add_middleware(AuditMiddleware, audit=audit)  # outside the key check: a token refused its scope is audited
    app.add_middleware(
        ObserveMiddleware,
        metrics=metrics,
        routes=app.router.routes,
        hash_paths=settings.server.audit_queries == "hash",  # the access log keeps no id the audit hashes
    )
    _allow_origins(app, settings.server.cors_origins)
    return app


BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "an API key from [[server.api_keys]], or an OAuth access token when [server.oauth] is set",
}


def _declare_bearer(app: FastAPI, public: frozenset[str]) -> None:
    """/openapi.json says what `KeyGuard` checks, which the schema generator cannot see: every
    operation needs `Authorization: Bearer`, except those on `public` paths (`security: []`), so
    clients and agent tools generated from it send the key."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = dict(BEARER_SCHEME)
            schema["security"] = [{"bearer": []}]
            for path, operations in schema.get("paths", {}).items():
                if path in public:
                    for operation in operations.values():
                        operation["security"] = []
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema


def _allow_origins(app: FastAPI, origins: list[str]) -> None:
    """CORS for the browser origins listed, outermost: a 401's challenge (where an OAuth sign-in
    starts), a 429's wait and every other answer reach a listed origin's script readable."""
    if not origins:
        return
    from fastapi.middleware.cors import CORSMiddleware

    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_credentials=False,
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=[
            "Authorization",
            "Content-Type",
            USER_HEADER,
            "X-Request-ID",
            "Mcp-Session-Id",
            "Mcp-Protocol-Version",
        ],
        expose_headers=["X-Request-ID", "Mcp-Session-Id", "WWW-Authenticate", "Retry-After"],
    )


BODY_UNREADABLE = "There was an error parsing the body"  # FastAPI's 400 detail (a body not UTF-8, ...)


async def _audited(request: Request, body: Any = None) -> None:
    """A request refused after its key was checked names its user and query in the audit line, as
    its route would have (the route's own facts stay when it ran)."""
    entry = request.scope.get("state", {}).get("key")
    if entry is not None:
        await name_refused(request.scope, None, entry, body)


def _without_slash(request: Request) -> str | None:
    """Where a path with a trailing slash that no route takes is served without it (`/console/`,
    `/v1/sources/`), as a path-only URL: Starlette's own redirect is built from the `Host` (and
    `X-Forwarded-Proto`) the client sent, which a cache in front could store for others (Host
    header injection). None when no route takes the path without its slash either."""
    path = request.scope["path"]
    if not path.endswith("/") or path == "/":
        return None
    scope = {**request.scope, "path": path.rstrip("/")}
    if not any(route.matches(scope)[0] != Match.NONE for route in request.app.router.routes):
        return None
    query = request.scope.get("query_string", b"").decode("latin-1")
    return scope["path"] + (f"?{query}" if query else "")  # the path holds the root path already


def _handlers(app: FastAPI) -> None:
    """Every error in the contract's shape; malformed input is a 4xx, never a 500."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        await _audited(request)
        return JSONResponse(error_body(exc.code, exc.message), exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        await _audited(request, exc.body)
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            if (declared := unsupported_media_type(request.scope)) is not None:
                return JSONResponse(error_body("unsupported_media_type", declared), 415)
            return JSONResponse(error_body("invalid_json", "the request body is not valid JSON"), 400)
        parts = []
        for e in errors[:5]:
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return JSONResponse(error_body("invalid_request", "; ".join(parts) or "invalid request"), 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and (moved := _without_slash(request)) is not None:
            return RedirectResponse(moved, 307)
        code = STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 400 and message == BODY_UNREADABLE:  # FastAPI's words for a body it cannot decode
            code, message = "invalid_json", "the request body is not valid JSON (JSON is UTF-8)"
        return JSONResponse(error_body(code, message), exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(IndexUnavailable)
    async def index_unavailable(request: Request, exc: IndexUnavailable) -> JSONResponse:
        error = unavailable(exc, f"{request.method} {request.url.path}")  # the server's name stays in the log
        return JSONResponse(error_body(error.code, error.message), error.status, headers=error.headers)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal", "internal error"), 500)
