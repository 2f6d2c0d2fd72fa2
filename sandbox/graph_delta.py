"""`mailFolders/{id}/messages/delta`: rounds of pages over a folder's change log.

A round starts from no token (every message in the folder, optionally `receivedDateTime ge X`)
or from a `$deltatoken` (what changed in the folder since). The list of ids to serve is fixed when
the round starts and kept server side under an opaque `$skiptoken`; the last page carries a
`$deltatoken` at the round's starting watermark, so changes made during paging come next round.
Expired tokens (`MailState.expire_delta_tokens`) answer 410 `SyncStateNotFound`.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .graph_state import Folder, MailState, SyncState
from .graph_wire import Prefer, graph_error, message_json

_FILTER = re.compile(r"^\s*receivedDateTime\s+(ge|gt)\s+(\S+)\s*$", re.I)
_DEFAULT_PAGE = 10
_MAX_PAGE = 1000


def delta_page(state: MailState, request: Request, user_id: str, folder: Folder, prefer: Prefer) -> Response:
    params = request.query_params
    token = params.get("$skiptoken") or params.get("$deltatoken")
    if token is not None:
        sync = state.sync_states.get(token)
        if sync is None or sync.folder_id != folder.id:
            return graph_error(
                410,
                "SyncStateNotFound",
                "The sync state generation is not found. Please restart the sync from scratch.",
            )
        if "$deltatoken" in params:
            sync = _incremental_round(state, sync)
    else:
        started = _initial_round(state, user_id, folder, params.get("$select"), params.get("$filter"))
        if isinstance(started, Response):
            return started
        sync = started
    size = min(prefer.max_page_size or _DEFAULT_PAGE, _MAX_PAGE)
    page, rest = sync.pending[:size], sync.pending[size:]  # tokens are replayable: never mutate
    base = str(request.base_url).rstrip("/")
    items = [_entry(state, msg_id, folder, sync, base, prefer.immutable) for msg_id in page]
    body: dict[str, Any] = {
        "@odata.context": f"{base}/v1.0/$metadata#Collection(message)",
        "value": [i for i in items if i is not None],
    }
    link = (
        f"{base}/v1.0/users/{request.path_params['user']}/mailFolders/{request.path_params['folder']}/messages/delta?"
    )
    if rest:
        after = SyncState(user_id, folder.id, sync.watermark, rest, sync.initial, sync.select, sync.since)
        body["@odata.nextLink"] = link + "$skiptoken=" + _store(state, after)
    else:
        done = SyncState(user_id, folder.id, sync.watermark, [], False, sync.select, sync.since)
        body["@odata.deltaLink"] = link + "$deltatoken=" + _store(state, done)
    headers = {"Preference-Applied": f"odata.maxpagesize={size}"} if prefer.max_page_size else {}
    return JSONResponse(body, headers=headers)


def _initial_round(
    state: MailState, user_id: str, folder: Folder, select: str | None, filter_: str | None
) -> SyncState | Response:
    since = None
    if filter_:
        match = _FILTER.match(filter_)
        if not match:
            return graph_error(
                400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes."
            )
        try:
            since = dt.datetime.fromisoformat(match[2].replace("Z", "+00:00"))
        except ValueError:
            return graph_error(400, "ErrorInvalidUrlQueryFilter", f"Invalid date {match[2]!r}.")
    fields = [s.strip() for s in select.split(",")] if select else None
    msgs = [m.id for m in state.in_folder(folder.id) if since is None or m.received >= since]
    return SyncState(user_id, folder.id, state.seq, msgs, True, fields, since)


def _incremental_round(state: MailState, done: SyncState) -> SyncState:
    pending = state.changed_since(done.folder_id, done.watermark)
    return SyncState(done.mailbox, done.folder_id, state.seq, pending, False, done.select, done.since)


def _entry(
    state: MailState, msg_id: str, folder: Folder, sync: SyncState, base: str, immutable: bool
) -> dict[str, Any] | None:
    msg = state.messages.get(msg_id)
    if msg is not None and msg.folder_id == folder.id:
        if sync.since is not None and msg.received < sync.since:
            return None
        return message_json(state, msg, base, sync.select, immutable)
    if sync.initial:
        return None  # gone before its page was served: never seen, nothing to remove
    # Moved out of the folder ("changed": it may live on elsewhere) or deleted for good.
    # A REST-id client gets the id the message had while it was in this folder.
    reason = "deleted" if msg is None else "changed"
    shown = msg_id if immutable else state.left.get((folder.id, msg_id), msg_id)
    return {"@odata.type": "#microsoft.graph.message", "id": shown, "@removed": {"reason": reason}}


def _store(state: MailState, sync: SyncState) -> str:
    token = secrets.token_urlsafe(24)
    state.sync_states[token] = sync
    return token
