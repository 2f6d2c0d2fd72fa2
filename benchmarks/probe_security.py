"""The security probe, second look: each hardening finding reproduced against a running
`inlet daemon --serve` over the service sandbox. Loopback only, every loop bounded.

Not a benchmark: it prints one line per probe (what was sent, what was measured, the verdict) and
exits 1 when a probe finds something above low. The daemon runs with `ulimit -n 256` as in the
original probe; its hooks, OAuth metadata and keys are the sandbox's.

    python benchmarks/probe_security.py            # about two minutes on two cores
"""

from __future__ import annotations

import json
import os
import re
import resource
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx

from inlet.sandbox import graph
from inlet.sandbox.faults import Fault
from inlet.sandbox.idp import provider, server_oauth_toml
from inlet.sandbox.server import Sandbox

BADEER = "robert.badeer@enron.com"
HOSTILE = "\x1b]52;c;ZXZpbA==\x07\x1b[2J\x1b[31m \x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\"
FD_LIMIT = 256
RESULTS: list[tuple[str, bool, str]] = []


def report(name: str, ok: bool, detail: str) -> None:
    RESULTS.append((name, ok, detail))
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)


def toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def config_text(raw: dict[str, Any], oauth: str) -> str:
    lines = [
        f'[index]\npath = {json.dumps(raw["index"]["path"])}\n[daemon]\njitter = "0s"\n[server]\nport = 0\n',
        oauth,
    ]
    for source in raw["sources"]:
        lines.append("[[sources]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in source.items()]
        lines.append("")
    return "\n".join(lines)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Daemon:
    def __init__(self, home: Path, env: dict[str, str], port: int) -> None:
        self.home, self.port = home, port
        self.err = open(home / "daemon.err", "w")

        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))

        self.popen = subprocess.Popen(
            [sys.executable, "-m", "inlet", "daemon", "--serve", "--port", str(port), "--config", "config.toml"],
            cwd=home,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.err,
            preexec_fn=limit,
        )
        api_file = home / "index" / "daemon-api.json"
        deadline = time.monotonic() + 300
        while not api_file.exists():
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the daemon did not start:\n{(home / 'daemon.err').read_text()[-3000:]}")
            time.sleep(0.2)
        api = json.loads(api_file.read_text())
        self.url, self.admin = api["api_url"], {"Authorization": f"Bearer {api['operator_key']}"}

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.popen.pid}/fd"))

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.popen.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]

    def log_bytes(self) -> int:
        self.err.flush()
        return (self.home / "daemon.err").stat().st_size


def connect(port: int) -> socket.socket | None:
    try:
        return socket.create_connection(("127.0.0.1", port), timeout=2)
    except OSError:
        return None


def seconds_until_closed(conns: list[socket.socket], bound: float) -> float:
    started = time.monotonic()
    for conn in conns:
        conn.settimeout(max(0.01, started + bound - time.monotonic()))
        try:
            while conn.recv(4096):
                pass
        except TimeoutError:
            return float("inf")
        except OSError:
            pass
        conn.close()
    return time.monotonic() - started


def probe_connections(d: Daemon) -> None:
    idle = [c for c in (connect(d.port) for _ in range(20)) if c]
    half = [c for c in (connect(d.port) for _ in range(20)) if c]
    for conn in half:
        conn.sendall(b"GET /v1/sources HTTP/1.1\r\nHost: x\r\nAuthorization: Bea")
    took = seconds_until_closed(idle + half, 30)
    report("1 idle/half-header connections", took <= 15, f"40 connections closed after {took:.1f} s (bound 15 s)")
    before = d.fds()
    flood = [c for c in (connect(d.port) for _ in range(300)) if c]
    peak = d.fds()
    status = subprocess.run(
        [sys.executable, "-m", "inlet", "status", "--config", "config.toml"],
        cwd=d.home,
        env=ENV,
        capture_output=True,
        timeout=120,
    )
    took = seconds_until_closed(flood, 30)
    started = time.monotonic()
    while time.monotonic() - started < 30:
        try:
            if httpx.get(d.url + "/healthz", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    report(
        "1 descriptor flood (ulimit 256, 300 connections)",
        peak < FD_LIMIT - 32 and status.returncode == 0 and took <= 15,
        f"descriptors {before} -> {peak} (limit {FD_LIMIT}); inlet status exit {status.returncode}; "
        f"flood closed after {took:.1f} s; /healthz again after {time.monotonic() - started:.1f} s more",
    )


def chunked(d: Daemon, head: str) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", d.port), timeout=60)
    conn.sendall(f"{head}\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
    return conn


def answer_of(conn: socket.socket) -> bytes:
    got = b""
    try:
        while chunk := conn.recv(65536):
            got += chunk
    except OSError:
        pass
    conn.close()
    return got


def probe_bodies(d: Daemon) -> None:
    piece = b"x" * 65536
    frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    before = d.rss_mib()
    conn = chunked(d, "GET /hooks/outlook/sandbox-mail HTTP/1.1")
    sent = 0
    try:
        for _ in range(4096):  # 256 MiB unless answered first
            if select.select([conn], [], [], 0)[0]:
                break
            conn.sendall(frame)
            sent += len(piece)
    except OSError:
        pass
    got = answer_of(conn)
    grew = d.rss_mib() - before
    report(
        "2 chunked GET body to a hook",
        got.startswith(b"HTTP/1.1 413") and grew < 32,
        f"{got[:12].decode(errors='replace')!r} after {sent / 2**20:.1f} MiB sent; RSS +{grew:.0f} MiB",
    )
    conn = chunked(d, "GET /hooks/outlook/sandbox-mail HTTP/1.1")
    started = time.monotonic()
    conn.sendall(b"1\r\n{\r\n")
    got = answer_of(conn)
    took = time.monotonic() - started
    report(
        "2 stalled GET body",
        got.startswith(b"HTTP/1.1 408") and took < 40,
        f"{got[:12].decode(errors='replace')!r} after {took:.1f} s",
    )


def probe_log_amplification(d: Daemon) -> None:
    before = d.log_bytes()
    body = b'{"value":[' + b",".join([b"{}"] * 21_800) + b"]}"
    answer = httpx.post(d.url + "/hooks/outlook/sandbox-mail", content=body[:65_000].rsplit(b",", 1)[0] + b"]}")
    time.sleep(0.5)  # the log line is written by the daemon process: let it reach the file
    grew = d.log_bytes() - before
    metrics = httpx.get(d.url + "/metrics", headers=d.admin).text
    counted = re.search(r'inlet_webhook_refused_total\{source="sandbox-mail"\} (\S+)', metrics)
    report(
        "3 log amplification",
        grew < 1000 and counted is not None,
        f"one POST of {len(body[:65_000])} bytes of {{}} -> {answer.status_code}, log +{grew} bytes, "
        f"refused count {counted.group(1) if counted else 'absent'}",
    )


def probe_terminal(d: Daemon) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "inlet", "search", "Kestrel invoice", "--config", "config.toml"],
        cwd=d.home,
        env=ENV,
        capture_output=True,
        timeout=120,
    )
    text = out.stdout.decode("utf-8", "replace")
    raw = any(c in text for c in "\x1b\x07\x9b")
    report(
        "4 escape codes in synced text",
        "Kestrel" in text and not raw,
        f"inlet search (redirected) exit {out.returncode}; raw ESC/BEL/CSI in output: {raw}",
    )


def probe_hooks(d: Daemon) -> None:
    shapes = [
        ("GET", b""),
        ("POST", b""),
        ("POST", b'{"value":[{}]}'),
        ("POST", '{"value":[{"clientState":"é"}]}'.encode()),
        ("POST", b"\xff\xfe"),
        ("POST", b'{"value":"x"}'),
    ]
    differ, errors, sniff = [], 0, 0
    for hook in ("outlook/sandbox-mail", "google_drive/sandbox-drive"):
        for method, body in shapes:
            known = httpx.request(method, f"{d.url}/hooks/{hook}", content=body)
            unknown = httpx.request(method, f"{d.url}/hooks/{hook.split('/')[0]}/nobody", content=body)
            if (known.status_code, known.content) != (unknown.status_code, unknown.content):
                differ.append(f"{method} {hook} {body[:20]!r}: {known.status_code} vs {unknown.status_code}")
            errors += known.status_code >= 500
            sniff += known.headers.get("x-content-type-options") != "nosniff"
    echo = httpx.post(f"{d.url}/hooks/outlook/sandbox-mail", params={"validationToken": "<b>x</b>"})
    report(
        "5 hooks: same answer known/unknown, no 500, nosniff",
        not differ and not errors and not sniff and echo.headers.get("x-content-type-options") == "nosniff",
        f"{len(differ)} differing {differ[:2]}, {errors} 5xx, {sniff} without nosniff; validation echo "
        f"{echo.status_code} nosniff={echo.headers.get('x-content-type-options')}",
    )
    console = httpx.get(d.url + "/console").headers
    policy = console.get("content-security-policy", "")
    report(
        "5 console headers",
        "form-action 'none'" in policy
        and "base-uri 'none'" in policy
        and console.get("referrer-policy") == "no-referrer",
        f"CSP {policy!r}; Referrer-Policy {console.get('referrer-policy')}",
    )


def probe_oauth(d: Daemon, sb: Sandbox) -> None:
    idp = provider(sb.ctx)
    verdicts = {}
    forged: dict[str, dict[str, Any]] = {
        "two @": {"email": "eve@evil.com@corp.example"},
        "unverified": {"email_verified": False},
    }
    for label, changes in forged.items():
        claims = {**idp.access_claims(BADEER, "probe", ["inlet.read"], d.url), **changes}
        verdicts[label] = httpx.post(
            d.url + "/v1/search", json={"query": "gas"}, headers={"Authorization": f"Bearer {idp.sign(claims)}"}
        ).status_code
    good = idp.sign(idp.access_claims(BADEER, "probe", ["inlet.read"], d.url))
    verdicts["valid"] = httpx.post(
        d.url + "/v1/search", json={"query": "gas"}, headers={"Authorization": f"Bearer {good}"}
    ).status_code
    metadata = httpx.get(d.url + "/.well-known/oauth-protected-resource", headers={"Host": "evil.example"}).json()
    report(
        "5 OAuth user claim; 28.1 resource is the listening address",
        verdicts == {"two @": 401, "unverified": 401, "valid": 200} and metadata["resource"] == d.url,
        f"{verdicts}; metadata resource {metadata['resource']} (listening {d.url})",
    )


def probe_operator(d: Daemon) -> None:
    httpx.post(d.url + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    metrics = httpx.get(d.url + "/metrics", headers=d.admin).text
    probes = {
        p: httpx.get(d.url + p).status_code
        for p in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration", "/docs")
    }
    hits = httpx.post(d.url + "/v1/search", json={"query": "gas", "k": 20}, headers=d.admin).json()["results"]
    times = [h[k] for h in hits for k in ("created_at", "updated_at") if h[k]]
    fine = all(re.fullmatch(r".*T\d\d:\d\d:\d\d(\.\d{3})?Z", t) for t in times)
    labelled = 'route="/mcp"' in metrics
    report(
        "28.8 labels, probes, /docs, times",
        labelled
        and 'route="unmatched"' not in metrics
        and probes
        == {"/.well-known/oauth-authorization-server": 404, "/.well-known/openid-configuration": 404, "/docs": 200}
        and fine
        and bool(times),
        f"/mcp labelled: {labelled}; {probes}; {len(times)} times, ms at most: {fine}",
    )


def probe_shutdown(d: Daemon, sb: Sandbox) -> None:
    sb.faults.break_next("graph", "subscriptions", Fault.stalled(120), times=10_000)
    sb.faults.break_next("drive", "channels.stop", Fault.stalled(120), times=10_000)
    started = time.monotonic()
    d.popen.send_signal(signal.SIGTERM)
    try:
        code = d.popen.wait(60)
    except subprocess.TimeoutExpired:
        d.popen.kill()
        code = None
    took = time.monotonic() - started
    sb.faults.clear()
    report("6 SIGTERM while Graph and Drive stall", code == 0 and took <= 20, f"exit {code} after {took:.1f} s")
    tail = [line for line in (d.home / "daemon.err").read_text().splitlines()[-12:] if "stop" in line or "left" in line]
    print("    " + "\n    ".join(tail[-6:]), flush=True)


ENV: dict[str, str] = {}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="inlet-probe-") as tmp, Sandbox() as sb:
        home = Path(tmp)
        graph.add_message(sb.ws, BADEER, "inbox", f"Kestrel invoice {HOSTILE}", f"Kestrel invoice overdue {HOSTILE}")
        text, secrets = sb.config(index_path="index")
        raw = tomllib.loads(text)
        port = free_port()
        narrow = {
            "sandbox-slack": {"channels": ["random"], "pace_scale": 1e6},
            "sandbox-mail": {
                "mailboxes": [BADEER],
                "folders": ["inbox"],
                "notifications_url": f"http://127.0.0.1:{port}/hooks/outlook/sandbox-mail",
            },
            "sandbox-drive": {
                "max_requests_per_second": 0,
                "shared_drives": False,
                "push_url": f"http://127.0.0.1:{port}/hooks/google_drive/sandbox-drive",
            },
        }
        raw["sources"] = [{**s, **narrow[s["name"]], "every": "6h"} for s in raw["sources"] if s["name"] in narrow]
        (home / "config.toml").write_text(config_text(raw, server_oauth_toml(sb.ctx)))
        ENV.update({k: v for k, v in os.environ.items() if k != "INLET_CONFIG"}, **secrets)
        daemon = Daemon(home, ENV, port)
        deadline = time.monotonic() + 300  # the first runs and subscriptions
        while time.monotonic() < deadline:
            sources = httpx.get(daemon.url + "/v1/sources", headers=daemon.admin, timeout=30).json()["sources"]
            if all(s.get("last_run") for s in sources) and all(
                (s.get("events") or {}).get("live") for s in sources if s["name"] != "sandbox-slack"
            ):
                break
            time.sleep(1)
        try:
            probe_connections(daemon)
            probe_bodies(daemon)
            probe_log_amplification(daemon)
            probe_terminal(daemon)
            probe_hooks(daemon)
            probe_oauth(daemon, sb)
            probe_operator(daemon)
            probe_shutdown(daemon, sb)
        finally:
            if daemon.popen.poll() is None:
                daemon.popen.kill()
    failed = [name for name, ok, _ in RESULTS if not ok]
    print(
        f"\n{len(RESULTS) - len(failed)}/{len(RESULTS)} probes found nothing above low"
        + (f"; failing: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
