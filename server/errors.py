"""The API's one error shape: `{"error": {"code", "message"}}` with a 4xx status for bad input,
and 503 `index_unavailable` (with `Retry-After`) while a server the index lives on cannot be
reached, wherever in the request that was found (`unavailable`)."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel

from inlet.errors import IndexUnavailable

log = logging.getLogger(__name__)
UNAVAILABLE = "the index is unavailable for a moment; try again later"  # its server is named in the log only
UNAVAILABLE_RETRY = {"Retry-After": "5"}


class ApiError(Exception):
    """An error answered to the client as is; `code` is a stable machine-readable word."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or ({"WWW-Authenticate": "Bearer"} if status == 401 else {})


def unavailable(exc: IndexUnavailable, where: str) -> ApiError:
    """The 503 answer to a request `exc` stopped (logged here, naming the server, once per request;
    the caller is told only to retry)."""
    log.error("%s: %s", where, exc)
    return ApiError(503, "index_unavailable", UNAVAILABLE, dict(UNAVAILABLE_RETRY))


class CallerRefused(ApiError):
    """An `ApiError` for a caller who was identified and then refused (a verified token without the
    required scope): `who` (a `KeyEntry` with no rights) lets the audit name them."""

    def __init__(self, who: Any, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, code, message, headers)
        self.who = who


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


# What the middleware may answer any route that needs a key, before the route runs.
KEYED_ROUTE_ERRORS = (
    (401, "missing or invalid key"),
    (408, "request body stalled"),
    (413, "request body too large"),
    (429, "over the rate limit of the key or user (Retry-After says when)"),
)


def error_responses(*own: tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of a keyed route: its `own` errors plus the middleware's."""
    return {
        code: {"model": ErrorBody, "description": text}
        for code, text in sorted(dict([*KEYED_ROUTE_ERRORS, *own]).items())
    }


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


# Status -> code for errors raised by the framework itself (unknown route, wrong method, ...).
STATUS_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    503: "not_ready",
}
