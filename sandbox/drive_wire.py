"""Drive v3's wire details: resource rendering, the `fields` projection, the `q` language, errors."""

from __future__ import annotations

import re
from typing import Any

from starlette.responses import JSONResponse

from .drive_state import FOLDER, DriveFile, parent_readable, parse_rfc3339, rfc3339, state

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
}
_DEFAULT_REASON = {
    400: "badRequest",
    401: "authError",
    403: "forbidden",
    404: "notFound",
    429: "rateLimitExceeded",
    500: "backendError",
    502: "backendError",
    503: "backendError",
}

WEB_LINKS = {
    "application/vnd.google-apps.document": "https://docs.google.com/document/d/{}/edit?usp=drivesdk",
    "application/vnd.google-apps.spreadsheet": "https://docs.google.com/spreadsheets/d/{}/edit?usp=drivesdk",
    "application/vnd.google-apps.presentation": "https://docs.google.com/presentation/d/{}/edit?usp=drivesdk",
    FOLDER: "https://drive.google.com/drive/folders/{}",
}


class DriveError(Exception):
    def __init__(
        self, status: int, message: str, reason: str = "", location: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.location, self.retry_after = status, message, location, retry_after
        self.reason = reason or _DEFAULT_REASON.get(status, "backendError")


def error_response(err: DriveError) -> JSONResponse:
    """Google's error envelope: `{"error": {"code", "message", "errors": [...], "status"}}`."""
    detail: dict[str, Any] = {
        "message": err.message,
        "domain": "global" if err.status != 403 or "RateLimit" not in err.reason else "usageLimits",
        "reason": err.reason,
    }
    if err.location:
        detail.update(location=err.location, locationType="parameter")
    if err.reason == "authError":  # the token (a push channel's refused address is a 401 too)
        detail.update(location="Authorization", locationType="header")
    body = {
        "error": {
            "code": err.status,
            "message": err.message,
            "errors": [detail],
            "status": _STATUS.get(err.status, "UNKNOWN"),
        }
    }
    headers = {"Retry-After": str(max(1, round(err.retry_after)))} if err.retry_after else {}
    if err.reason == "authError":
        headers["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
    return JSONResponse(body, status_code=err.status, headers=headers)


# --- resources -------------------------------------------------------------------------------
def user_resource(ws: Any, email: str) -> dict[str, Any]:
    user = ws.user_by_email(email)
    return {
        "kind": "drive#user",
        "displayName": user.real_name if user else email,
        "emailAddress": email,
        "me": False,
        "permissionId": f"{abs(hash(email)) % 10**20:020d}",
    }


def file_resource(ws: Any, f: DriveFile, caller: str | None = None) -> dict[str, Any]:
    """The full File resource; the `fields` projection trims it. Read by `caller`, without
    `parents` when they may not read its parent (another user's My Drive root, a shared drive they
    are not a member of), as Drive answers "Shared with me" items."""
    out: dict[str, Any] = {
        "kind": "drive#file",
        "id": f.id,
        "name": f.name,
        "mimeType": f.mime_type,
        "parents": list(f.parents),
        "createdTime": rfc3339(f.created),
        "modifiedTime": rfc3339(f.modified),
        "trashed": f.trashed,
        "explicitlyTrashed": f.trashed,
        "version": str(f.version),
        "spaces": ["drive"],
        "starred": False,
        "webViewLink": WEB_LINKS.get(f.mime_type, "https://drive.google.com/file/d/{}/view?usp=drivesdk").format(f.id),
        "shared": any(p.role != "owner" for p in f.permissions),
        "viewedByMe": False,
        "capabilities": {"canDownload": not f.not_downloadable, "canCopy": True, "canEdit": False},
    }
    if caller is not None:
        with ws.lock:
            if not all(parent_readable(state(ws), p, caller) for p in f.parents):
                del out["parents"]
    if f.modified_by:
        out["lastModifyingUser"] = user_resource(ws, f.modified_by)
    if f.drive_id:
        out["driveId"] = f.drive_id
        out["teamDriveId"] = f.drive_id
    else:
        out["owners"] = [user_resource(ws, f.owner)] if f.owner else []
        out["ownedByMe"] = False
        out["permissions"] = [p.resource() for p in f.permissions]
        out["permissionIds"] = [p.id for p in f.permissions]
    if not f.is_google:
        import hashlib

        out.update(
            size=str(len(f.content)),
            md5Checksum=hashlib.md5(f.content).hexdigest(),
            headRevisionId=f"0B{f.version:08d}",
            originalFilename=f.name,
            quotaBytesUsed=str(len(f.content)),
        )
        if "." in f.name:
            out["fileExtension"] = f.name.rsplit(".", 1)[1]
            out["fullFileExtension"] = out["fileExtension"]
    else:
        out["quotaBytesUsed"] = "0"
    return out


# --- fields projection -----------------------------------------------------------------------
Spec = dict[str, Any]  # name -> sub-spec, or None for "everything below"


def parse_fields(text: str) -> Spec | None:
    """`nextPageToken,files(id,name,owners/emailAddress)` -> nested dict; None means all."""
    text = text.replace(" ", "")
    if not text or text == "*":
        return None
    spec, pos = _parse_list(text, 0)
    if pos != len(text):
        raise DriveError(400, f"Invalid field selection {text}", "invalidParameter", "fields")
    return spec


def _parse_list(text: str, pos: int) -> tuple[Spec, int]:
    spec: Spec = {}
    while pos < len(text):
        match = re.compile(r"[A-Za-z0-9_*]+(?:/[A-Za-z0-9_*]+)*").match(text, pos)
        if not match:
            raise DriveError(400, f"Invalid field selection {text}", "invalidParameter", "fields")
        path, pos = match.group().split("/"), match.end()
        sub: Spec | None = None
        if pos < len(text) and text[pos] == "(":
            sub, pos = _parse_list(text, pos + 1)
            if pos >= len(text) or text[pos] != ")":
                raise DriveError(400, f"Invalid field selection {text}", "invalidParameter", "fields")
            pos += 1
        _merge(spec, path, sub)
        if pos < len(text) and text[pos] == ",":
            pos += 1
        elif pos < len(text) and text[pos] == ")":
            break
    return spec, pos


def _merge(spec: Spec, path: list[str], sub: Spec | None) -> None:
    head, rest = path[0], path[1:]
    if head in spec and spec[head] is None:
        return  # already selects everything below
    if rest:
        _merge(spec.setdefault(head, {}), rest, sub)
    elif sub is None:
        spec[head] = None
    else:
        spec[head] = {**spec.get(head, {}), **sub}


def project(value: Any, spec: Spec | None) -> Any:
    if spec is None or "*" in spec:
        return value
    if isinstance(value, list):
        return [project(v, spec) for v in value]
    if isinstance(value, dict):
        return {k: project(value[k], sub) for k, sub in spec.items() if k in value}
    return value


# --- the q language ---------------------------------------------------------------------------
_CLAUSE = re.compile(
    r"\s*(?:'(?P<in_id>(?:[^'\\]|\\.)*)'\s+in\s+parents"
    r"|(?P<field>mimeType|name|modifiedTime|createdTime|trashed|fullText)\s*"
    r"(?P<op>!=|>=|<=|=|<|>|contains)\s*(?P<value>'(?:[^'\\]|\\.)*'|true|false))\s*",
    re.IGNORECASE,
)


def parse_q(q: str) -> list[Any]:
    """`a and b and c` over the clauses inlet (and most sync clients) use; other syntax is a 400."""
    clauses = []
    for part in re.split(r"\s+and\s+", q.strip(), flags=re.IGNORECASE) if q.strip() else []:
        match = _CLAUSE.fullmatch(part)
        if not match:
            raise DriveError(400, "Invalid Value", "invalid", "q")
        if match["in_id"] is not None:
            clauses.append(("parents", "in", match["in_id"]))
            continue
        raw = match["value"]
        value: Any = raw == "true" if raw in ("true", "false") else raw[1:-1].replace("\\'", "'")
        clauses.append((match["field"], match["op"].lower(), value))
    return clauses


def matches(f: DriveFile, clauses: list[Any]) -> bool:
    return all(_clause(f, *c) for c in clauses)


def _clause(f: DriveFile, field: str, op: str, value: Any) -> bool:
    if field == "parents":
        return value in f.parents
    if field == "trashed":
        return (f.trashed == value) if op == "=" else (f.trashed != value)
    if field in ("modifiedTime", "createdTime"):
        actual = f.modified if field == "modifiedTime" else f.created
        try:
            bound = parse_rfc3339(value)
        except ValueError:
            raise DriveError(400, "Invalid Value", "invalid", "q") from None
        return {
            ">": actual > bound,
            ">=": actual >= bound,
            "<": actual < bound,
            "<=": actual <= bound,
            "=": actual == bound,
            "!=": actual != bound,
        }.get(op, False)
    actual_text = f.mime_type if field == "mimeType" else f.name
    if field == "fullText":
        actual_text = f.name + " " + f.content.decode("utf-8", "ignore")
    if op == "contains":
        return value.lower() in actual_text.lower()
    if op in ("=", "!="):
        return (actual_text == value) == (op == "=")
    raise DriveError(400, "Invalid Value", "invalid", "q")
