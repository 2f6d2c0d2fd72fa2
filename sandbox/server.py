"""Serves the emulated services on loopback: one plain-HTTP port and one HTTPS port.

Both ports serve every route; the identity platform is used over HTTPS (msal refuses plain http)
with a certificate authority generated per sandbox, written to `ca_path` for clients to trust.

The identity provider (`idp`) serves OAuth sign-in for the sandbox users (MCP clients, `inlet demo`).
Every service module (`slack`, `drive`, `graph`, `gmail`) provides:
- `routes(ctx) -> list[starlette.routing.BaseRoute]`: its wire protocol (and `/_admin/<service>/...`);
- `source(ctx, workdir) -> tuple[str, dict[str, str]]`: a `[[sources]]` TOML block pointing at the
  sandbox, and the environment variables (secrets) it needs;
- `seed_sample(ws, path)` and `seed_generated(ws, **sizes)`: its part of the workspace.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from inlet.process import listen
from inlet.storage.private import private_folder

from . import drive, gmail, graph, graph_files, graph_teams, idp, slack

from .faults import Faults, with_transports
from .notifier import Notifier
from .sample import sample_workspace
from .workspace import Workspace


@dataclass
class Context:
    """What every service handler needs: the shared workspace, the faults, and its own addresses."""

    ws: Workspace
    faults: Faults
    http_url: str = ""  # e.g. http://127.0.0.1:41234
    https_url: str = ""  # e.g. https://127.0.0.1:41235 (same routes, TLS)
    ca_path: Path | None = None  # PEM of the CA that signed the HTTPS certificate
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="inlet-sandbox-")))
    state: dict[str, Any] = field(default_factory=dict)  # per-service scratch (issued tokens, ...)
    notifiers: list[Notifier] = field(default_factory=list)  # closed when the sandbox stops

    def notifier(self, name: str) -> Notifier:
        """A new webhook notifier of a service, closed with the sandbox."""
        self.notifiers.append(Notifier(name))
        return self.notifiers[-1]


def _admin_routes(ctx: Context) -> list[BaseRoute]:
    async def fault(request: Request) -> JSONResponse:
        body = await request.json()
        ctx.faults.fail(
            body["service"],
            body.get("route", "*"),
            int(body["status"]),
            int(body.get("times", 1)),
            body.get("reason", ""),
            body.get("retry_after"),
            body.get("target", "*"),
        )
        return JSONResponse({"ok": True})

    async def rate_limit(request: Request) -> JSONResponse:
        body = await request.json()
        ctx.faults.rate_limit(body["service"], body.get("route", "*"), float(body["per_minute"]))
        return JSONResponse({"ok": True})

    async def calls(request: Request) -> JSONResponse:
        return JSONResponse({"calls": dict(ctx.faults.calls), "rejected": dict(ctx.faults.rejected)})

    async def clear(request: Request) -> JSONResponse:
        ctx.faults.clear()
        ctx.faults.reset_counts()
        return JSONResponse({"ok": True})

    return [
        Route("/_admin/faults", fault, methods=["POST"]),
        Route("/_admin/rate_limits", rate_limit, methods=["POST"]),
        Route("/_admin/calls", calls, methods=["GET"]),
        Route("/_admin/reset", clear, methods=["POST"]),
    ]


def build_app(ctx: Context) -> ASGIApp:
    routes = _admin_routes(ctx)
    for service in (slack, drive, graph, graph_files, gmail, idp):
        routes += service.routes(ctx)
    return with_transports(Starlette(routes=routes))


class Sandbox:
    """Start with `with Sandbox() as sb:`; `sb.ctx.ws` is the live workspace, `sb.faults` the knobs."""

    def __init__(
        self,
        ws: Workspace | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        time_scale: float = 1.0,
        workdir: Path | None = None,
    ) -> None:
        """`workdir`: where its TLS files and Drive credentials go, kept when it stops (`inlet
        sandbox --write-config`: a config naming them stays valid); default: a temporary folder,
        deleted when it stops."""
        self.ctx = Context(ws=ws or sample_workspace(), faults=Faults(time_scale=time_scale))
        self._keep_workdir = workdir is not None
        if workdir is not None:
            private_folder(workdir)
            shutil.rmtree(self.ctx.workdir, ignore_errors=True)  # the default one, unused
            self.ctx.workdir = workdir
        self.host = host
        self.port = port
        self._servers: list[Any] = []
        self._threads: list[threading.Thread] = []

    @property
    def ws(self) -> Workspace:
        return self.ctx.ws

    @property
    def faults(self) -> Faults:
        return self.ctx.faults

    def start(self) -> "Sandbox":
        import uvicorn

        try:
            plain = _bind(self.host, self.port)
            try:
                tls = _bind(self.host, self.port + 1 if self.port else 0)
            except BaseException:
                plain.close()
                raise
        except BaseException:
            self.stop()  # nothing serves yet: this removes the working folder
            raise
        self.ctx.http_url = f"http://{self.host}:{plain.getsockname()[1]}"
        self.ctx.https_url = f"https://{self.host}:{tls.getsockname()[1]}"
        cert, key, self.ctx.ca_path = _make_tls(self.ctx.workdir, self.host)
        app = build_app(self.ctx)
        tls_files: dict[str, Any] = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
        for sock, extra in ((plain, {}), (tls, tls_files)):
            config = uvicorn.Config(
                app,
                log_level="warning",
                lifespan="off",
                access_log=False,
                ws="websockets-sansio",  # Slack Socket Mode (slack_socket.py)
                timeout_graceful_shutdown=1,
                # Idle keep-alive connections stay open for minutes, as the services' front ends
                # keep them (uvicorn's default, 5 s, broke a paced client's next request: the
                # demo's Gmail batches logged a BrokenPipeError and a retry).
                timeout_keep_alive=120,
                **extra,
            )  # clients may leave keep-alives open
            server = uvicorn.Server(config)
            thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="inlet-sandbox")
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop serving, close the webhook notifiers (their threads and connections) and delete the
        working folder unless it was given: its TLS key and service-account key are throwaway, and a
        test session starts hundreds of sandboxes."""
        for server in self._servers:
            server.should_exit = True
        for thread in self._threads:
            thread.join(timeout=10)
        for notifier in self.ctx.notifiers:
            notifier.close()
        if not self._keep_workdir:
            shutil.rmtree(self.ctx.workdir, ignore_errors=True)

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def config(self, index_path: str | Path = ".inlet") -> tuple[str, dict[str, str]]:
        """A config TOML whose sources (one per service) point at this sandbox, and the secrets it needs."""
        parts = [f'[index]\npath = "{Path(index_path).as_posix()}"\n']
        env: dict[str, str] = {}
        for service in (slack, drive, graph, graph_files, graph_teams, gmail):
            block, secrets = service.source(self.ctx, self.ctx.workdir)
            parts.append(block)
            env.update(secrets)
        return "\n".join(parts), env


def _bind(host: str, port: int) -> socket.socket:
    """Bind before serving, so the port is known and early connections queue instead of failing;
    a port in use is `PortInUseError` (one line, exit 4 from the CLI)."""
    return listen(host, port, "the sandbox")


def _make_tls(workdir: Path, host: str) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for `host`, as PEM files in `workdir`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "inlet sandbox CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = workdir / "server.pem", workdir / "server.key", workdir / "ca.pem"
    paths[0].write_bytes(cert.public_bytes(pem))
    paths[1].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    paths[2].write_bytes(ca.public_bytes(pem))
    for path in paths:  # inside the index folder, whose files are its owner's alone
        path.chmod(0o600)
    return paths
