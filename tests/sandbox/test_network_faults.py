"""The sandbox's network faults, as a plain HTTP client sees them: a reset is a TCP RST halfway
through a 200 answer (not an orderly close; over TLS the client's TLS layer reports it as a cut
without close_notify), a stall outlasts the client's read timeout, and each fault is spent once,
so the next call is served."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from inlet.sandbox.faults import Fault
from inlet.sandbox.server import Sandbox

ROUTES = [
    ("slack", "/api/auth.test"),
    ("drive", "/drive/v3/files"),
    ("graph", "/v1.0/users/x/mailFolders"),
    ("graph", "/v1.0/drives/x/root/delta"),
    ("graph", "/v1.0/teams/x/channels/y/messages/delta"),
    ("gmail", "/gmail/v1/users/me/profile"),
]


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox() as box:
        yield box


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize(("service", "path"), ROUTES)
def test_a_reset_is_a_tcp_rst_halfway_through_the_body(sb: Sandbox, service: str, path: str, scheme: str) -> None:
    base = sb.ctx.http_url if scheme == "http" else sb.ctx.https_url
    with httpx.Client(base_url=base, verify=str(sb.ctx.ca_path)) as client:
        sb.faults.break_next(service, "*", Fault.reset())
        with client.stream("GET", path) as response:
            assert response.status_code == 200  # the answer had begun ...
            with pytest.raises(httpx.ReadError if scheme == "http" else httpx.TransportError) as cut:
                response.read()
        if scheme == "http":  # ... RST, not an orderly close (TLS reports it as an EOF without close_notify)
            assert "reset" in str(cut.value)
        assert "padding" not in client.get(path).text  # the fault was spent: a real answer


@pytest.mark.parametrize(("service", "path"), ROUTES)
def test_a_stall_outlasts_the_read_timeout(sb: Sandbox, service: str, path: str) -> None:
    sb.faults.break_next(service, "*", Fault.stalled(3.0))
    with httpx.Client(base_url=sb.ctx.http_url, timeout=httpx.Timeout(5.0, read=0.3)) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.get(path)
        served = client.get(path)
    assert "padding" not in served.text  # the fault was spent: a real answer


def test_flaky_noise_can_hold_network_faults() -> None:
    from inlet.sandbox.faults import Faults

    faults = Faults()
    faults.flaky("drive", "*", 0.5, [Fault.reset(), Fault.stalled(1.0)], seed=4)
    got = [faults.check("drive", "files.list") for _ in range(200)]
    kinds = {f.network for f in got if f is not None}
    assert kinds == {"reset", "stall"} and 60 < sum(f is not None for f in got) < 140
