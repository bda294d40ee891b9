"""The control API listens on every address its host name resolves to: `localhost` answers IPv4 and IPv6 clients."""

from __future__ import annotations

import errno
import http.client
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from engine.config import Config
from engine.service._server import ControlApi, bind_listener

_REAL_GETADDRINFO = socket.getaddrinfo


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback (::1) to bind")


@pytest.fixture
def dual_stack_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    """`localhost` resolves to ::1 and 127.0.0.1, as on most systems (this machine's /etc/hosts may list one)."""

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "localhost":
            return _REAL_GETADDRINFO(host, port, *args, **kwargs)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),  # a resolver may repeat one
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


class _Engine:
    """Enough of an engine for the server to start: nothing is asked of it by an unauthorised request."""

    config = Config()

    def subscribe(self, _listener: Any) -> Any:
        return lambda: None


@pytest.fixture
def served(dual_stack_localhost: None) -> Iterator[str]:
    listeners = bind_listener("localhost", 0)
    api = ControlApi(_Engine(), "t" * 24)  # type: ignore[arg-type]
    try:
        url = api.start("localhost", 0, socks=listeners)
        yield url
    finally:
        api.stop()
        for sock in listeners:
            sock.close()


def _status(address: str, port: int) -> int:
    conn = http.client.HTTPConnection(address, port, timeout=10)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status
    finally:
        conn.close()


@needs_ipv6
def test_localhost_answers_both_ipv4_and_ipv6_clients(served: str) -> None:
    # Before: only the first address getaddrinfo returned was bound (::1 here): an IPv4 client was refused.
    port = int(served.rsplit(":", 1)[1])
    assert served == f"http://localhost:{port}"
    assert _status("127.0.0.1", port) == 401  # served (unauthorised: no token), not refused
    assert _status("::1", port) == 401


@needs_ipv6
def test_every_address_is_bound_on_one_port(dual_stack_localhost: None) -> None:
    listeners = bind_listener("localhost", 0)
    try:
        bound = sorted((s.family.name, s.getsockname()[0]) for s in listeners)
        assert bound == [("AF_INET", "127.0.0.1"), ("AF_INET6", "::1")]
        assert len({s.getsockname()[1] for s in listeners}) == 1
    finally:
        for sock in listeners:
            sock.close()


def test_a_taken_port_is_refused_on_any_of_the_addresses() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match="in use"):
            bind_listener("127.0.0.1", port)


def _unbindable_first(monkeypatch: pytest.MonkeyPatch, *usable: str) -> None:
    """`localhost` resolves to an address this machine cannot bind (::1 with IPv6 off) first, then `usable`."""
    real_create = socket.create_server

    def create_server(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        if address[0] == "::1":
            raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")
        return real_create(address, *args, **kwargs)

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0))] + [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in usable
        ]

    monkeypatch.setattr(socket, "create_server", create_server)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_an_unbindable_first_address_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    # Before: only a later address could be skipped; ::1 listed first on a machine without IPv6 stopped the daemon.
    _unbindable_first(monkeypatch, "127.0.0.1")
    listeners = bind_listener("localhost", 0)
    try:
        assert [(s.family.name, s.getsockname()[0]) for s in listeners] == [("AF_INET", "127.0.0.1")]
    finally:
        for sock in listeners:
            sock.close()


def test_a_host_none_of_whose_addresses_can_be_bound_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _unbindable_first(monkeypatch)
    with pytest.raises(OSError, match="Cannot assign requested address"):
        bind_listener("localhost", 0)
