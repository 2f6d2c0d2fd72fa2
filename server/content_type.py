"""JSON bodies whatever the declared content type.

`curl -d '{...}'` declares `application/x-www-form-urlencoded`, and many HTTP clients send no
content type or `text/plain`: FastAPI would then not parse the body as JSON and answer a puzzling
"Input should be a valid dictionary". The API takes JSON only, so this pure ASGI middleware makes
every POST to the API routes declare `application/json` and keeps what the client declared in
`scope["state"]["declared_content_type"]`: a body that then fails to parse as JSON is answered
with 415 naming the header (see `unsupported_media_type`), not with a generic 400.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

JSON = b"application/json"
STATE_KEY = "declared_content_type"


def is_json(content_type: bytes | str) -> bool:
    """Whether a Content-Type header names JSON (`application/json`, or any `+json` type)."""
    raw = content_type.encode("latin-1") if isinstance(content_type, str) else content_type
    media = raw.split(b";")[0].strip().lower()
    return media == JSON or media.endswith(b"+json")


class JsonBody:
    """Declares `application/json` on POSTs under `prefix` that declared something else (or nothing)."""

    def __init__(self, app: ASGIApp, prefix: str = "/v1/") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") == "POST" and scope["path"].startswith(self.prefix):
            headers = list(scope.get("headers", []))
            declared = next((v for k, v in headers if k.lower() == b"content-type"), None)
            if declared is None or not is_json(declared):
                headers = [(k, v) for k, v in headers if k.lower() != b"content-type"]
                headers.append((b"content-type", JSON))
                scope["headers"] = headers  # in place: the route the router records stays visible to metrics
                scope.setdefault("state", {})[STATE_KEY] = (declared or b"").decode("latin-1")
        await self.app(scope, receive, send)


def unsupported_media_type(scope: Scope) -> str | None:
    """The 415 message for a request whose non-JSON declared body did not parse as JSON, else None."""
    declared = scope.get("state", {}).get(STATE_KEY)
    if declared is None:
        return None
    shown = f"'Content-Type: {declared}'" if declared else "no Content-Type"
    return f"the request body must be JSON (sent with {shown}); send 'Content-Type: application/json'"
