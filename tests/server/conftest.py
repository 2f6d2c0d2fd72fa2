"""Shared fixtures of the server tests: one real index (the real embedding model, loaded once per
session) holding documents with every kind of ACL, and the API built around it."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from inlet.config import ApiKey, IndexConfig, ServerConfig, Settings
from inlet.connectors.model import ACL, Document
from inlet.index.embedding import Embedder
from inlet.index.store import Index
from inlet.server.app import create_app

NOW = datetime.now(timezone.utc)
KEYS = {
    "INLET_KEY_ALICE": "alice-secret-key",
    "INLET_KEY_BOB": "bob-secret-key",
    "INLET_KEY_AGENT": "agent-secret-key",
    "INLET_KEY_OPS": "ops-secret-key",
}
ALICE = {"Authorization": "Bearer alice-secret-key"}
BOB = {"Authorization": "Bearer bob-secret-key"}
AGENT = {"Authorization": "Bearer agent-secret-key"}
OPS = {"Authorization": "Bearer ops-secret-key"}
QUOTED = (
    "The quarterly pipeline review moved to Thursday at 10am in the Houston office. Please bring the "
    "updated gas volume forecasts for the western region and the revised storage capacity numbers."
)


def corpus_sources(folder: Path) -> str:
    """`[[sources]]` tables naming the corpus's sources (an index serves the configured ones only),
    each a `files` source of `folder` (never synced here)."""
    names = sorted({d.source for d in corpus()})
    return "".join(f'[[sources]]\nname = "{n}"\ntype = "files"\npath = "{folder}"\n' for n in names)


def corpus() -> list[Document]:
    """Public, private-channel (alice only), domain-wide, admin-only and near-duplicate documents."""
    return [
        Document(
            id="eng:C1/100",
            source="eng",
            source_type="slack",
            title="#general deploy runbook",
            text="To deploy the billing service run make release, then watch the canary dashboard "
            "for ten minutes before promoting.",
            url="https://slack.example/archives/C1/p100",
            author="dave@example.com",
            created_at=NOW - timedelta(days=3),
            updated_at=NOW - timedelta(days=3),
            metadata={"channel": "general"},
            acl=ACL(public=True),
        ),
        Document(
            id="eng:C2/200",
            source="eng",
            source_type="slack",
            title="#falcon-private launch",
            text="Project Falcon launch date is fixed for March 3rd; the partner is Initech. "
            "Do not share outside the channel.",
            url="https://slack.example/archives/C2/p200",
            author="alice@example.com",
            created_at=NOW - timedelta(days=2),
            updated_at=NOW - timedelta(days=2),
            metadata={"channel": "falcon-private"},
            acl=ACL(users=["alice@example.com"]),
        ),
        Document(
            id="drive:f1",
            source="drive",
            source_type="google_drive",
            title="Falcon budget overview",
            text="Falcon budget for the launch is four hundred thousand dollars, approved by finance.",
            url="https://drive.example/f1",
            author="erin@example.com",
            created_at=NOW - timedelta(days=400),
            updated_at=NOW - timedelta(days=400),
            metadata={"mime_type": "text/plain"},
            acl=ACL(domains=["example.com"]),
        ),
        Document(
            id="mail:hr-1",
            source="mail",
            source_type="outlook",
            title="Salary bands 2024",
            text="Confidential salary bands for the Falcon launch team and everyone else.",
            url="",
            author="hr@example.com",
            created_at=NOW - timedelta(days=30),
            updated_at=NOW - timedelta(days=30),
            acl=ACL(),
        ),
        Document(
            id="mail:m1",
            source="mail",
            source_type="outlook",
            title="Pipeline review moved",
            text=QUOTED,
            url="https://outlook.example/m1",
            author="kim@example.com",
            created_at=NOW - timedelta(days=10),
            updated_at=NOW - timedelta(days=10),
            acl=ACL(public=True),
        ),
        Document(
            id="mail:m2",
            source="mail",
            source_type="outlook",
            title="Fwd: Pipeline review moved",
            text="Forwarding for visibility. " + QUOTED,
            url="https://outlook.example/m2",
            author="lee@example.com",
            created_at=NOW - timedelta(days=9),
            updated_at=NOW - timedelta(days=9),
            acl=ACL(public=True),
        ),
        Document(
            id="files:notes/no-link.md",
            source="files",
            source_type="files",
            title="Notes without link",
            text="The espresso machine on floor four is descaled every Friday.",
            url="",
            created_at=NOW - timedelta(days=1),
            updated_at=NOW - timedelta(days=1),
            acl=ACL(public=True),
        ),
    ]


def settings_for(path: Path, **server: object) -> Settings:
    keys = [
        ApiKey(name="alice-laptop", key_env="INLET_KEY_ALICE", user="alice@example.com"),
        ApiKey(name="bob-laptop", key_env="INLET_KEY_BOB", user="bob@other.org"),
        ApiKey(name="support-agent", key_env="INLET_KEY_AGENT", on_behalf_of=True),
        ApiKey(name="ops", key_env="INLET_KEY_OPS", admin=True),
    ]
    return Settings(index=IndexConfig(path=path), server=ServerConfig(api_keys=keys, **server))  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    model = Embedder()
    model.encode(["load"])
    return model


@pytest.fixture(scope="session")
def index(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Index]:
    path = tmp_path_factory.mktemp("index")
    with Index(IndexConfig(path=path), embedder=embedder) as idx:
        idx.apply(corpus())
        yield idx


@pytest.fixture(scope="session")
def settings(index: Index) -> Settings:
    return settings_for(index.path)


def client_for(settings: Settings, index: Index) -> Iterator[TestClient]:
    app = create_app(settings, index=index, env=KEYS)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert app.state.retrieval.ready.wait(30)
        yield client


@pytest.fixture(scope="module")
def client(settings: Settings, index: Index) -> Iterator[TestClient]:
    yield from client_for(settings, index)


def serve(app: FastAPI, **config: object) -> Iterator[str]:
    """`app` on a real uvicorn on a free loopback port ("host:port"), stopped afterwards."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # connections queue in the backlog until uvicorn accepts: no wait needed
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, **config))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    assert app.state.retrieval.ready.wait(60)
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(30)
    sock.close()
