"""What an OAuth access token costs per request, against an API key, in one process.

    .venv/bin/python benchmarks/bench_auth.py [--verifications 3000] [--searches 200]

1. Verification: `JwtVerifier.verify` of a sandbox-issued RS256 token with the JWKS cached (PyJWT
   decode + kid lookup + claim checks), against the raw baseline `jwt.decode` with the public key
   in hand, and against the API-key lookup (`KeyRing.match`).
2. MCP `search` over streamable HTTP on a real uvicorn server (a small real index, the real model):
   the `mcp` SDK's client with `Authorization: Bearer <token>` and with a user API key, calls
   interleaved so both see the same machine load. Prints p50/p99 of each and the ratio.
Traffic goes to 127.0.0.1 only (the sandbox identity provider and the server).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import jwt
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from inlet.config import ApiKey, IndexConfig, OAuthConfig, ServerConfig, Settings
from inlet.connectors.model import ACL, Document
from inlet.index.store import Index
from inlet.sandbox.idp import provider
from inlet.sandbox.server import Sandbox
from inlet.sandbox.workspace import Workspace
from inlet.server.app import create_app
from inlet.server.auth import KeyRing
from inlet.server.oauth import ALGORITHMS, JwtVerifier

USER = "alice@example.com"
KEY_ENV, KEY = "BENCH_USER_KEY", "bench-user-key-0123456789"
TOPICS = ["launch plan", "budget review", "deploy runbook", "hiring loop", "incident postmortem", "pricing memo"]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def timed(n: int, fn: Callable[[], Any]) -> list[float]:
    """Microseconds per call, `n` calls after 50 warm-up calls."""
    for _ in range(50):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e6)
    return out


def verification(token: str, config: OAuthConfig, public_key: Any, n: int) -> None:
    verifier = JwtVerifier(config)
    keys = KeyRing(
        [ApiKey(name=f"k{i}", key_env=f"K{i}", user=f"u{i}@example.com") for i in range(4)],
        {f"K{i}": f"secret-key-{i}-0123456789" for i in range(4)},
    )
    raw = timed(
        n, lambda: jwt.decode(token, public_key, algorithms=ALGORITHMS, audience=config.audience, issuer=config.issuer)
    )
    ours = timed(n, lambda: verifier.verify(token))
    key = timed(n, lambda: keys.match("secret-key-3-0123456789"))
    print(
        f"JWT verification, cached JWKS ({n} calls): p50 {statistics.median(ours):.0f} us "
        f"(p99 {percentile(ours, 99):.0f}) vs raw jwt.decode {statistics.median(raw):.0f} us: "
        f"{statistics.median(ours) / statistics.median(raw):.2f}x; API key lookup p50 "
        f"{statistics.median(key):.1f} us"
    )


def corpus() -> list[Document]:
    now = datetime.now(timezone.utc)
    docs = []
    for i in range(120):
        topic = TOPICS[i % len(TOPICS)]
        acl = ACL(public=True) if i % 3 else ACL(users=[USER])
        docs.append(
            Document(
                id=f"bench:{i}",
                source="bench",
                source_type="files",
                title=f"{topic} {i}",
                text=f"Notes on the {topic} number {i}: owners, dates, open questions and the "
                f"decision taken at meeting {i % 17}.",
                url=f"https://example.com/{i}",
                created_at=now,
                updated_at=now,
                acl=acl,
            )
        )
    return docs


def serve(app: Any) -> tuple[str, Callable[[], None]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()

    def stop() -> None:
        server.should_exit = True
        thread.join(30)

    return f"http://127.0.0.1:{sock.getsockname()[1]}", stop


async def mcp_searches(url: str, token: str, n: int) -> tuple[list[float], list[float]]:
    """Interleaved `search` calls with the token and with the key; ms each."""

    def client(bearer: str) -> Client:
        return Client(
            streamable_http_client(
                f"{url}/mcp", http_client=create_mcp_http_client(headers={"Authorization": f"Bearer {bearer}"})
            )
        )

    times: dict[str, list[float]] = {"token": [], "key": []}
    async with client(token) as with_token, client(KEY) as with_key:
        for i in range(n + 10):
            for name, session in (("token", with_token), ("key", with_key)):
                t0 = time.perf_counter()
                result = await session.call_tool("search", {"query": TOPICS[i % len(TOPICS)]})
                assert not result.is_error and result.structured_content["results"], result
                if i >= 10:
                    times[name].append((time.perf_counter() - t0) * 1000)
    return times["token"], times["key"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verifications", type=int, default=3000)
    parser.add_argument("--searches", type=int, default=200)
    args = parser.parse_args()
    ws = Workspace()
    ws.add_user(USER, "alice")
    with Sandbox(ws=ws) as sb, tempfile.TemporaryDirectory(prefix="inlet-bench-auth-") as tmp:
        idp = provider(sb.ctx)
        audience = "https://inlet.example.com"
        config = OAuthConfig(issuer=idp.issuer, audience=audience, scopes=["inlet.read"])
        token = idp.sign(idp.access_claims(USER, "bench", ["inlet.read"], audience))
        verification(token, config, idp.signing_key().private.public_key(), args.verifications)

        settings = Settings(
            index=IndexConfig(path=Path(tmp) / "index"),
            server=ServerConfig(api_keys=[ApiKey(name="bench", key_env=KEY_ENV, user=USER)], oauth=config),
        )
        with Index(settings.index) as index:
            index.apply(corpus())
            app = create_app(settings, index=index, env={KEY_ENV: KEY})
            url, stop = serve(app)
            try:
                assert app.state.retrieval.ready.wait(120)
                with_token, with_key = anyio.run(mcp_searches, url, token, args.searches)
            finally:
                stop()
        t50, k50 = statistics.median(with_token), statistics.median(with_key)
        print(
            f"MCP search over HTTP ({args.searches} each, interleaved): token p50 {t50:.1f} ms "
            f"(p99 {percentile(with_token, 99):.1f}), API key p50 {k50:.1f} ms (p99 {percentile(with_key, 99):.1f}): "
            f"{t50 / k50:.2f}x"
        )


if __name__ == "__main__":
    main()
