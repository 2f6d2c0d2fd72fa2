"""Gmail v1's wire details: the Message resource in each format, the `q` subset, errors, batch bodies.

A message's `full` payload is derived from its raw bytes part by part as Gmail does: text parts carry
their body as base64url `data`, parts with a filename carry an `attachmentId` instead (fetched with
`messages.attachments.get`). Errors use Google's envelope. The batch endpoint's body is
multipart/mixed of `application/http` parts, answered in kind with `Content-ID: <response-...>`.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.policy
import hashlib
import re
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from typing import Any

from starlette.responses import JSONResponse

from .gmail_state import GmailMessage

_PARSER = BytesParser(policy=email.policy.compat32)
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
_REASON = {
    400: "badRequest",
    401: "authError",
    403: "forbidden",
    404: "notFound",
    429: "rateLimitExceeded",
    500: "backendError",
    503: "backendError",
}


class GmailError(Exception):
    def __init__(self, status: int, message: str, reason: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after
        self.reason = reason or _REASON.get(status, "backendError")


def error_body(err: GmailError) -> tuple[dict[str, Any], dict[str, str]]:
    """Google's error envelope and the headers that go with it."""
    domain = "usageLimits" if "RateLimit" in err.reason or err.status == 429 else "global"
    body = {
        "error": {
            "code": err.status,
            "message": err.message,
            "errors": [{"message": err.message, "domain": domain, "reason": err.reason}],
            "status": _STATUS.get(err.status, "UNKNOWN"),
        }
    }
    headers = {"Retry-After": str(max(1, round(err.retry_after + 0.499)))} if err.retry_after else {}
    if err.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
    return body, headers


def error_response(err: GmailError) -> JSONResponse:
    body, headers = error_body(err)
    return JSONResponse(body, status_code=err.status, headers=headers)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


# --- the Message resource ----------------------------------------------------------------------
def attachment_id(msg: GmailMessage, part_id: str) -> str:
    return "ANGjdJ" + hashlib.sha256(f"{msg.id}:{part_id}".encode()).hexdigest()


def _part(
    msg: GmailMessage, part: Message, part_id: str, headers_only: bool, wanted: set[str] | None
) -> dict[str, Any]:
    headers = [
        {"name": k, "value": " ".join(str(v).split())} for k, v in part.items() if wanted is None or k.lower() in wanted
    ]
    out: dict[str, Any] = {
        "partId": part_id,
        "mimeType": part.get_content_type(),
        "filename": part.get_filename() or "",
        "headers": headers,
    }
    if headers_only:
        del out["partId"], out["filename"]
        return out
    if part.is_multipart():
        out["body"] = {"size": 0}
        prefix = f"{part_id}." if part_id else ""
        out["parts"] = [_part(msg, sub, f"{prefix}{n}", False, None) for n, sub in enumerate(part.get_payload())]  # type: ignore[union-attr]
        return out
    data = part.get_payload(decode=True)
    data = data if isinstance(data, bytes) else b""
    if out["filename"]:
        out["body"] = {"attachmentId": attachment_id(msg, part_id), "size": len(data)}
    else:
        out["body"] = {"size": len(data), "data": b64url(data)} if data else {"size": 0}
    return out


def find_attachment(msg: GmailMessage, wanted_id: str) -> bytes | None:
    """The decoded bytes of the part whose attachmentId is `wanted_id`."""

    def walk(part: Message, part_id: str) -> bytes | None:
        if part.is_multipart():
            prefix = f"{part_id}." if part_id else ""
            for n, sub in enumerate(part.get_payload()):  # type: ignore[arg-type]
                found = walk(sub, f"{prefix}{n}")
                if found is not None:
                    return found
            return None
        if part.get_filename() and attachment_id(msg, part_id) == wanted_id:
            data = part.get_payload(decode=True)
            return data if isinstance(data, bytes) else b""
        return None

    return walk(_PARSER.parsebytes(msg.raw), "")


def snippet(parsed: Message) -> str:
    for part in parsed.walk():
        if part.get_content_type() in ("text/plain", "text/html") and not part.get_filename():
            data = part.get_payload(decode=True)
            text = data.decode("utf-8", "replace") if isinstance(data, bytes) else ""
            text = re.sub(r"<[^>]+>", " ", text) if part.get_content_type() == "text/html" else text
            return " ".join(text.split())[:140]
    return ""


def message_resource(msg: GmailMessage, fmt: str = "full", metadata_headers: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": msg.id,
        "threadId": msg.thread_id,
        "labelIds": list(msg.labels),
        "historyId": str(msg.history_id),
        "internalDate": str(msg.internal_date),
        "sizeEstimate": len(msg.raw),
    }
    if fmt == "minimal":
        return out
    if fmt == "raw":
        out["raw"] = b64url(msg.raw)
        out["snippet"] = snippet(_PARSER.parsebytes(msg.raw))
        return out
    parsed = _PARSER.parsebytes(msg.raw)
    out["snippet"] = snippet(parsed)
    if fmt == "metadata":
        wanted = {h.lower() for h in metadata_headers} if metadata_headers else None
        out["payload"] = _part(msg, parsed, "", True, wanted)
    else:
        out["payload"] = _part(msg, parsed, "", False, None)
    return out


# --- the q language (a subset) -------------------------------------------------------------------
_TERM = re.compile(r'(-?)(?:(\w+):)?("[^"]*"|\S+)')
_UNITS = {"d": 86400, "m": 30 * 86400, "y": 365 * 86400}


@dataclass
class Query:
    terms: list[tuple[bool, str, str]]  # (negated, operator or "", value)

    def matches(self, msg: GmailMessage, label_names: dict[str, str], now: float) -> bool:
        return all(self._one(op, value, msg, label_names, now) != neg for neg, op, value in self.terms)

    @staticmethod
    def _one(op: str, value: str, msg: GmailMessage, label_names: dict[str, str], now: float) -> bool:
        seconds = msg.internal_date / 1000
        if op in ("after", "before", "newer", "older"):
            bound = _date(value)
            return seconds >= bound if op in ("after", "newer") else seconds < bound
        if op in ("newer_than", "older_than"):
            match = re.fullmatch(r"(\d+)([dmy])", value)
            if not match:
                raise GmailError(400, f"Invalid query: {op}:{value}", "invalidArgument")
            bound = now - int(match[1]) * _UNITS[match[2]]
            return seconds >= bound if op == "newer_than" else seconds < bound
        parsed = _PARSER.parsebytes(msg.raw)
        if op in ("from", "to", "cc", "subject"):
            return value.lower() in str(parsed.get(op, "")).lower()
        if op in ("label", "in"):
            wanted = value.lower().replace("-", " ")
            return any(
                lid.lower() == value.lower() or label_names.get(lid, "").lower().replace("-", " ") == wanted
                for lid in msg.labels
            )
        if op == "has":
            return value == "attachment" and any(p.get_filename() for p in parsed.walk())
        if op:
            raise GmailError(400, f"Invalid query: unsupported operator {op}:", "invalidArgument")
        return value.lower() in msg.raw.decode("utf-8", "replace").lower()


def _date(value: str) -> float:
    if value.isdigit():
        return float(value)
    try:
        return dt.datetime.strptime(value.replace("-", "/"), "%Y/%m/%d").replace(tzinfo=dt.timezone.utc).timestamp()
    except ValueError as exc:
        raise GmailError(400, f"Invalid query date: {value}", "invalidArgument") from exc


def parse_q(text: str) -> Query:
    return Query([(neg == "-", (op or "").lower(), value.strip('"')) for neg, op, value in _TERM.findall(text or "")])


def header_date(raw: bytes) -> float | None:
    try:
        return parsedate_to_datetime(str(_PARSER.parsebytes(raw).get("Date", ""))).timestamp()
    except (TypeError, ValueError):
        return None


# --- batch -----------------------------------------------------------------------------------------
@dataclass
class InnerRequest:
    content_id: str
    method: str
    target: str  # path and query
    headers: dict[str, str]


def parse_batch(content_type: str, body: bytes) -> list[InnerRequest]:
    """The `application/http` parts of a multipart/mixed batch body."""
    parsed = _PARSER.parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    if not parsed.is_multipart():
        raise GmailError(400, "Batch request is not multipart/mixed", "badRequest")
    out = []
    parts: list[Any] = parsed.get_payload()  # type: ignore[assignment]
    for part in parts:
        text = part.get_payload(decode=False)
        head, _, _rest = str(text).replace("\r\n", "\n").partition("\n\n")
        lines = head.split("\n")
        method, target, _version = (lines[0].split(" ", 2) + ["", ""])[:3]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        out.append(InnerRequest(str(part.get("Content-ID", "")), method.upper(), target, headers))
    return out


def batch_body(answers: list[tuple[str, int, dict[str, Any], dict[str, str]]]) -> tuple[bytes, str]:
    """A multipart/mixed answer: one `application/http` part per (content id, status, json, headers)."""
    import json

    boundary = "batch_" + hashlib.sha256(repr(len(answers)).encode()).hexdigest()[:20]
    chunks = []
    for content_id, status, body, headers in answers:
        cid = content_id.strip()
        cid = f"<response-{cid[1:]}" if cid.startswith("<") else f"<response-{cid}>"
        payload = json.dumps(body)
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        reason = {200: "OK", 404: "Not Found", 429: "Too Many Requests"}.get(status, "Error")
        chunks.append(
            f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: {cid}\r\n\r\n"
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=UTF-8\r\n"
            f"{extra}Content-Length: {len(payload.encode())}\r\n\r\n{payload}\r\n"
        )
    return ("".join(chunks) + f"--{boundary}--\r\n").encode(), f"multipart/mixed; boundary={boundary}"
