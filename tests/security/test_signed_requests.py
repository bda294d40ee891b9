"""The CLI never puts the API token on the wire: it signs each request (`engine.service._signing`).

Before: the CLI sent ``Authorization: Bearer <token>`` to whatever answered at the configured ``api.host:api.port``
when no running daemon had written its endpoint file. A local process that bound that port while the daemon was
down (or anyone reading plain HTTP on a non-loopback bind) got the token and, with it, the daemon's order API.
The daemon accepts a signature once, within 30 s, for exactly the request it signs; bearer tokens still work (curl).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from engine.service._app import ApiState, EventHub, build_app
from engine.service._commands import add_status_arguments, run_status
from engine.service._signing import MAX_SKEW_MS, NonceLedger, canonical_target, sign_header, verify_header

TOKEN = "sentinel-api-token-4a1f9c2e7b"
NOW = 1_790_000_000_000


class _Engine:
    """Enough of the engine for `/health`-free routes: `GET /orders` answers an empty list."""

    def __init__(self) -> None:
        from types import SimpleNamespace

        self.config = SimpleNamespace(
            risk=SimpleNamespace(kill_switch=False), exchange=SimpleNamespace(pair_whitelist=["BTC/USDT"])
        )

    def open_orders(self, pair: str | None = None) -> list[Any]:
        return []


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.upper().startswith("FREQTRADE__")]:
        monkeypatch.delenv(name)


def test_the_cli_sends_no_token_to_a_process_squatting_the_configured_port(tmp_path: Path) -> None:
    captured: list[bytes] = []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]

        def squat() -> None:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(10)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                captured.append(data)
                conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")

        thread = threading.Thread(target=squat, daemon=True)
        thread.start()
        (tmp_path / "api-token").write_text(TOKEN + "\n", encoding="utf-8")
        config = tmp_path / "c.toml"
        config.write_text(f'[api]\nport = {port}\ntoken_path = "{tmp_path / "api-token"}"\n', encoding="utf-8")
        parser = argparse.ArgumentParser(prog="status")
        add_status_arguments(parser)
        # No daemon wrote an endpoint file: the client goes to the configured port, where the squatter listens.
        run_status(parser.parse_args(["--config", str(config)]), io.StringIO())
        thread.join(10)
    assert captured, "the client never reached the squatter"
    assert TOKEN.encode() not in captured[0]
    assert b"Authorization: EngineSig " in captured[0]


def _signed(method: str, path: str, body: bytes = b"", token: str = TOKEN, now: int = NOW) -> str:
    return sign_header(token, method, path, body, now)


def test_a_signature_holds_for_its_own_request_once_and_only_in_time() -> None:
    ledger = NonceLedger()
    header = _signed("POST", "/orders?x=1", b'{"a": 1}')
    key, with_x, plain = TOKEN.encode(), canonical_target("/orders", [("x", "1")]), canonical_target("/orders", [])
    assert verify_header(header, key, "POST", with_x, b'{"a": 1}', NOW + 1000, ledger)
    assert not verify_header(header, key, "POST", with_x, b'{"a": 1}', NOW + 1000, ledger)  # replayed
    fresh = _signed("POST", "/orders", b'{"a": 1}')
    assert not verify_header(fresh, key, "POST", plain, b'{"a": 2}', NOW, ledger)  # another body
    assert not verify_header(fresh, key, "DELETE", plain, b'{"a": 1}', NOW, ledger)  # another method
    assert not verify_header(fresh, key, "POST", with_x, b'{"a": 1}', NOW, ledger)  # another query
    assert not verify_header(fresh, b"another-token-entirely", "POST", plain, b'{"a": 1}', NOW, ledger)
    assert not verify_header(fresh, key, "POST", plain, b'{"a": 1}', NOW + MAX_SKEW_MS + 1, ledger)  # stale
    assert not verify_header(fresh, key, "POST", plain, b'{"a": 1}', NOW - MAX_SKEW_MS - 1, ledger)  # future
    # The failed checks did not spend the nonce: the genuine request still passes, once.
    assert verify_header(fresh, key, "POST", plain, b'{"a": 1}', NOW, ledger)


def test_a_target_is_signed_decoded_whatever_quoting_the_client_used() -> None:
    ledger = NonceLedger()
    header = _signed("GET", "/orders/BTC/USDT/x%20y?pair=BTC%2FUSDT&b=")
    target = canonical_target("/orders/BTC/USDT/x y", [("b", ""), ("pair", "BTC/USDT")])
    assert verify_header(header, TOKEN.encode(), "GET", target, b"", NOW, ledger)
    # Pairs that would join to the same string are different requests.
    assert canonical_target("/o", [("a", "b&c=d")]) != canonical_target("/o", [("a", "b"), ("c", "d")])


@pytest.mark.parametrize("garbage", ["EngineSig", "EngineSig ts=1", "EngineSig ts=x,nonce=y,sig=z", "Basic abc",
                                     "EngineSig ts=1790000000000,nonce=" + "a" * 16 + ",sig=" + "0" * 64,
                                     # A Unicode digit: isdigit() says yes, int() raised (a diff review: HTTP 500).
                                     "EngineSig ts=\u00b2,nonce=" + "a" * 16 + ",sig=" + "0" * 64,
                                     "EngineSig ts=1,nonce=" + "\u0661" * 16 + ",sig=" + "0" * 64])  # fmt: skip
def test_malformed_signatures_are_refused(garbage: str) -> None:
    target = canonical_target("/orders", [])
    assert not verify_header(garbage, TOKEN.encode(), "GET", target, b"", NOW, NonceLedger())


def test_spent_nonces_are_forgotten_once_their_signature_is_stale() -> None:
    ledger = NonceLedger(limit=2)
    assert ledger.first_use("a" * 16, NOW, NOW) and ledger.first_use("b" * 16, NOW, NOW)
    assert not ledger.first_use("c" * 16, NOW, NOW)  # full of live nonces: refused, never a replay let through
    assert ledger.first_use("c" * 16, NOW, NOW + 2 * MAX_SKEW_MS + 1)


async def _get(headers: dict[str, str], path: str = "/orders") -> int:
    state = ApiState(_Engine(), TOKEN, EventHub(), wall_ms=lambda: NOW)  # type: ignore[arg-type]
    async with TestClient(TestServer(build_app(state), host="127.0.0.1", port=0)) as client:
        first = await client.get(path, headers=headers)
        again = await client.get(path, headers=headers)
        return first.status * 1000 + again.status


def test_the_daemon_takes_a_signed_request_once_and_a_bearer_token_always() -> None:
    assert asyncio.run(
        _get({"Authorization": _signed("GET", "/orders?pair=BTC%2FUSDT")}, "/orders?pair=BTC%2FUSDT")
    ) == (200_401)
    assert asyncio.run(_get({"Authorization": f"Bearer {TOKEN}"})) == 200_200
    assert asyncio.run(_get({"Authorization": _signed("GET", "/orders", token="a-wrong-token-of-length")})) == 401_401
