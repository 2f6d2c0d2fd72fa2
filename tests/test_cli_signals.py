"""The long-running commands as an operator meets them: real processes, real signals, real ports.

`inlet sandbox`, `inlet serve`, `inlet daemon --serve`: what they write, how they stop (exit 0 on
SIGINT/SIGTERM), what a busy port does (one line, exit 4), and that nothing is left behind.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from inlet.config import load_config
from inlet.server.auth import warn_without_keys


def start(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "inlet", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen, timeout: float = 120) -> None:
    """Poll an observable condition (a file, a port) while the process is alive."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out")
        time.sleep(0.05)  # polling for an observable event, not sleeping in place of one


def test_sandbox_write_config_has_a_working_key_and_sigterm_exits_0(tmp_path: Path) -> None:
    config = tmp_path / "sandbox.toml"
    proc = start(tmp_path, "sandbox", "--write-config", str(config))
    wait_for(lambda: config.exists() and config.stat().st_size > 0, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    exports = dict(re.findall(r"^export (\w+)=(\S+)$", out, flags=re.MULTILINE))
    settings = load_config(config)
    admin = [k for k in settings.server.api_keys if k.admin]
    assert admin and admin[0].key_env in exports and len(exports[admin[0].key_env]) >= 24
    assert not warn_without_keys(settings, exports)


def test_a_server_without_a_usable_key_says_so_loudly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[[server.api_keys]]\nname = "ops"\nkey_env = "INLET_TEST_UNSET_KEY"\nadmin = true\n')
    settings = load_config(config)
    with caplog.at_level("ERROR"):
        assert warn_without_keys(settings, {})
    assert "NO USABLE API KEY" in caplog.text and "INLET_TEST_UNSET_KEY" in caplog.text
    assert warn_without_keys(load_config(_empty(tmp_path)), {})
    assert not warn_without_keys(settings, {"INLET_TEST_UNSET_KEY": "x" * 24})


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.toml"
    path.write_text("")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def serve_config(tmp_path: Path, port: int) -> Path:
    config = tmp_path / "config.toml"
    (tmp_path / "docs").mkdir(exist_ok=True)
    config.write_text(
        f'[index]\npath = "store"\n\n[server]\nport = {port}\n\n[[server.api_keys]]\n'
        'name = "ops"\nkey_env = "INLET_TEST_KEY"\nadmin = true\n\n'
        '[[sources]]\nname = "docs"\ntype = "files"\npath = "docs"\nevery = "1h"\n'
    )
    return config


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_serve_stops_cleanly_with_exit_0(tmp_path: Path, signum: int) -> None:
    port = free_port()
    proc = start(tmp_path, "serve", "--config", str(serve_config(tmp_path, port)), env={"INLET_TEST_KEY": "k" * 24})
    wait_for(lambda: accepts(port), proc)
    proc.send_signal(signum)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Aborted" not in err and "Traceback" not in err
    assert "stopped" in err


def test_the_daemon_names_each_source_it_runs_only_when_asked(tmp_path: Path) -> None:
    """probe33e F8: a source with neither `schedule` nor `every` was silently never run by the daemon."""
    port = free_port()
    config = serve_config(tmp_path, port)
    config.write_text(config.read_text() + '\n[[sources]]\nname = "archive"\ntype = "files"\npath = "docs"\n')
    proc = start(tmp_path, "daemon", "--serve", "--config", str(config), env={"INLET_TEST_KEY": "k" * 24})
    wait_for(lambda: accepts(port), proc)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "1 source(s) scheduled" in err
    assert "source 'archive' has no `schedule` or `every`: it runs only when asked (inlet sync archive)" in err


def run_inlet(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`inlet ARGS` to the end, with the serve config's key set."""
    return subprocess.run(
        [sys.executable, "-m", "inlet", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "INLET_TEST_KEY": "k" * 24},
    )


@pytest.mark.parametrize("command", [["serve"], ["daemon", "--serve"]])
def test_a_busy_port_is_one_line_and_exit_4(tmp_path: Path, command: list[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        proc = run_inlet(tmp_path, *command, "--config", str(serve_config(tmp_path, port)))
    assert proc.returncode == 4, proc.stderr
    assert f"127.0.0.1:{port}" in proc.stderr and "Traceback" not in proc.stderr
    assert "serving" not in proc.stderr


@pytest.mark.parametrize("command", ["sandbox", "demo"])
def test_sandbox_or_demo_on_a_busy_port_is_one_line_exit_4_and_leaves_nothing(tmp_path: Path, command: str) -> None:
    """The demo binds its --port before the sandbox and the backfill: the error comes at once."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "inlet", command, "--port", str(port)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "TMPDIR": str(scratch)},
        )
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and f"127.0.0.1:{port}" in proc.stderr, proc.stderr
    assert list(scratch.glob("inlet-*")) == []  # torch may leave its own cache there


def _backfill_started(scratch: Path) -> bool:
    import sqlite3

    for state in scratch.glob("inlet-demo-*/index/state.db"):
        try:
            with sqlite3.connect(state) as db:
                if db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]:
                    return True
        except sqlite3.OperationalError:
            pass
    return False


def test_sigterm_during_the_demo_backfill_exits_0_and_leaves_nothing(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = start(tmp_path, "demo", env={"TMPDIR": str(scratch)})
    wait_for(lambda: _backfill_started(scratch), proc, timeout=300)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "stopped" in err
    assert list(scratch.glob("inlet-*")) == []  # torch may leave its own cache there


def _sandbox_once(tmp_path: Path, config: Path, *extra: str) -> tuple[str, str]:
    """Run `inlet sandbox --write-config CONFIG` until it has written a new config; its admin key."""
    before = config.read_text() if config.exists() else None
    proc = start(tmp_path, "sandbox", "--write-config", str(config), *extra)
    wait_for(
        lambda: config.exists() and config.read_text() not in ("", before) and config.read_text().endswith("\n"), proc
    )
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return dict(re.findall(r"^export (\w+)=(\S+)$", out, flags=re.MULTILINE))["INLET_SANDBOX_KEY"], config.read_text()


def test_sandbox_keeps_its_key_and_overwrites_only_its_own_unchanged_config(tmp_path: Path) -> None:
    """Issue 28.7: a rerun overwrote an edited config, and every start made a new API key."""
    config = tmp_path / "sandbox.toml"
    first_key, first = _sandbox_once(tmp_path, config)
    status = subprocess.run(
        [sys.executable, "-m", "inlet", "status", "--config", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 0, status.stderr  # its credentials and CA outlive the sandbox: the config is valid
    second_key, second = _sandbox_once(tmp_path, config)
    assert second_key == first_key and second != first  # new ports, same key
    assert not (tmp_path / ".inlet" / "sandbox-admin-key").stat().st_mode & 0o077
    edited = second.replace('name = "sandbox-admin"', 'name = "my-admin"')
    config.write_text(edited)
    refused = subprocess.run(
        [sys.executable, "-m", "inlet", "sandbox", "--write-config", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "--force" in refused.stderr and str(config) in refused.stderr
    assert config.read_text() == edited
    mine = tmp_path / "mine.toml"
    mine.write_text("[index]\n")
    refused = subprocess.run(
        [sys.executable, "-m", "inlet", "sandbox", "--write-config", str(mine)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and mine.read_text() == "[index]\n"
    forced_key, forced = _sandbox_once(tmp_path, config, "--force")
    assert forced_key == first_key and 'name = "sandbox-admin"' in forced


HOLDS_THE_INTERPRETER = """
from inlet.process import stop_on_signals
stop = stop_on_signals()
print("ready", flush=True)
stop.wait()
print("stopping", flush=True)
sum(range(10**13))  # one native call, hours long: no Python signal handler runs before it returns
"""


def test_a_second_signal_quits_at_once_even_inside_a_long_native_call(tmp_path: Path) -> None:
    """Chroma's writes hold the interpreter for seconds; the second Ctrl-C must not wait for them."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDS_THE_INTERPRETER], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGINT)
        assert proc.stdout.readline().strip() == "stopping"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == -signal.SIGINT
    finally:
        proc.kill()
        proc.wait()


def _has_ipv6_loopback() -> bool:
    try:
        with socket.create_server(("::1", 0), family=socket.AF_INET6):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_serve_listens_on_an_ipv6_host(tmp_path: Path) -> None:
    port = free_port()
    config = serve_config(tmp_path, port)
    proc = start(tmp_path, "serve", "--config", str(config), "--host", "::1", env={"INLET_TEST_KEY": "k" * 24})

    def accepts6() -> bool:
        try:
            with socket.create_connection(("::1", port), timeout=1):
                return True
        except OSError:
            return False

    wait_for(accepts6, proc)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"http://[::1]:{port}" in err


def test_a_host_this_machine_cannot_listen_on_is_a_config_error(tmp_path: Path) -> None:
    """Exit 4 means "the port is in use" (a script may wait and retry); a bad host is exit 2."""
    config = serve_config(tmp_path, free_port())
    proc = run_inlet(tmp_path, "serve", "--config", str(config), "--host", "no-such-host.invalid")
    assert proc.returncode == 2, proc.stderr
    assert "no-such-host.invalid" in proc.stderr and "Traceback" not in proc.stderr


def test_sighup_stops_cleanly_as_sigterm_does_unless_started_under_nohup() -> None:
    """A closed terminal, or a `kill -HUP` meant as "reload" (probe31e F7): the stop event is set,
    as by SIGTERM (checkpoint saved, clean exit), instead of the process dying of it (exit 129).
    Started under `nohup` (SIGHUP ignored), it stays ignored."""
    from inlet.process import stop_on_signals

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    heard: list[int] = []
    try:
        signal.signal(
            signal.SIGHUP, lambda signum, _frame: heard.append(signum)
        )  # not the default: it would end pytest
        stop = stop_on_signals()
        os.kill(os.getpid(), signal.SIGHUP)
        assert stop.wait(5) and not heard
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL  # a second one ends the process at once
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # `nohup inlet daemon`
        stop_on_signals()
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
