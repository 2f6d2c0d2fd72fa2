"""The emulated Socket Mode on the wire, with a plain WebSocket client (no slack_sdk): the app token
is required, `hello` comes first, unacknowledged envelopes come back, `disconnect` is sent."""

from __future__ import annotations

import json

import httpx
import pytest
from websockets.sync.client import connect

from inlet.sandbox import slack as ss
from inlet.sandbox.server import Sandbox
from inlet.sandbox.slack import hub
from inlet.sandbox.slack_socket import APP_TOKEN

OPS = "G0PRIVOPS1"


def _open(sb: Sandbox, token: str) -> dict:
    response = httpx.post(f"{sb.ctx.http_url}/api/apps.connections.open", headers={"Authorization": f"Bearer {token}"})
    return response.json()


def test_connections_open_needs_the_app_token(sandbox: Sandbox) -> None:
    assert _open(sandbox, ss.TOKEN) == {"ok": False, "error": "not_allowed_token_type"}
    assert _open(sandbox, "xapp-1-wrong")["error"] == "invalid_auth"
    url = _open(sandbox, APP_TOKEN)["url"]
    assert url.startswith("ws://127.0.0.1:")


def test_envelopes_are_redelivered_until_acknowledged(sandbox: Sandbox) -> None:
    socket_hub = hub(sandbox.ws, sandbox.faults)
    socket_hub.redeliver_after = 0.5
    with connect(_open(sandbox, APP_TOKEN)["url"]) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "hello"
        ts = ss.post_message(sandbox.ws, OPS, "redelivery check")
        first = json.loads(ws.recv(timeout=5))
        assert first["type"] == "events_api" and first["retry_attempt"] == 0
        assert first["payload"]["event"]["ts"] == ts and first["payload"]["event"]["channel"] == OPS
        again = json.loads(ws.recv(timeout=5))  # not acknowledged: Slack sends it again
        assert again["payload"]["event_id"] == first["payload"]["event_id"] and again["retry_attempt"] >= 1
        ws.send(json.dumps({"envelope_id": again["envelope_id"]}))
        ss.post_message(sandbox.ws, OPS, "next one")
        following = json.loads(ws.recv(timeout=5))
        assert following["payload"]["event"]["text"] == "next one"
        assert socket_hub.disconnect() == 1
        assert json.loads(ws.recv(timeout=5))["type"] == "disconnect"


def test_faults_drop_and_duplicate_events(sandbox: Sandbox) -> None:
    sandbox.faults.events("slack", drop=1, duplicate=1)
    with connect(_open(sandbox, APP_TOKEN)["url"]) as ws:
        ws.recv(timeout=5)  # hello
        ss.post_message(sandbox.ws, OPS, "lost")
        ss.post_message(sandbox.ws, OPS, "twice")
        a, b = (json.loads(ws.recv(timeout=5)) for _ in range(2))
        for env in (a, b):
            ws.send(json.dumps({"envelope_id": env["envelope_id"]}))
        assert a["payload"]["event"]["text"] == b["payload"]["event"]["text"] == "twice"
        assert a["payload"]["event_id"] == b["payload"]["event_id"] and a["envelope_id"] != b["envelope_id"]


def test_a_lost_connection_ends_without_a_close_frame_and_refuses_new_ones_until_restored(sandbox: Sandbox) -> None:
    from websockets.exceptions import ConnectionClosedError, InvalidStatus

    socket_hub = hub(sandbox.ws, sandbox.faults)
    with connect(_open(sandbox, APP_TOKEN)["url"]) as ws:
        ws.recv(timeout=5)  # hello
        assert socket_hub.lose() == 1
        with pytest.raises(ConnectionClosedError) as ended:
            ws.recv(timeout=5)
        assert ended.value.rcvd is None  # no close frame came
    with pytest.raises(InvalidStatus):
        connect(_open(sandbox, APP_TOKEN)["url"])
    socket_hub.restore()
    with connect(_open(sandbox, APP_TOKEN)["url"]) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "hello"
