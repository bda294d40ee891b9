"""The control API of a real daemon subprocess on the embedded defaults, at its front door: the start-up banner
and token file, the OpenAPI document, authentication (401 without detail, alerted, changing nothing), request
validation (422 naming the field, 404s), SIGUSR1, and no secret in the daemon's output.

Orders, health, balances and metrics are in test_control_api_orders.py (against a daemon of its own); the
fixtures are in _control_api_helpers.py.
"""

from __future__ import annotations

import json
import signal
import stat
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.service import ApiClient
from tests.service import _control_api_helpers as _shared
from tests.service._control_api_helpers import BELOW_MARKET, TELEGRAM_TOKEN, _raw, _watch
from tests.service._proc import RUN, DaemonProcess
from tests.service._receiver import Receiver

pytestmark = pytest.mark.timeout(120)

# pytest fixtures from the helper, assigned rather than imported so test arguments may shadow them
webhook = _shared.webhook
telegram = _shared.telegram
daemon = _shared.daemon
client = _shared.client


def test_banner_token_file_and_no_secret_in_output(daemon: DaemonProcess) -> None:
    # The banner's last line: the fixture only waited for the "listening" line before it.
    watch = daemon.out.wait_for(lambda ln: ln.startswith("watch events:"))
    text = daemon.out.text
    # The interpreter the daemon runs under (.venv's after `make run`): a bare `python` may lack the dependencies.
    assert f"first order:  {sys.executable} {RUN} order buy BTC/USDT" in text
    assert f"status: {sys.executable} {RUN} status" in watch
    assert "start-up checks:" in text and "0 failed" in text
    token_file = daemon.workdir / "data" / "api-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert daemon.token not in text
    assert daemon.token not in daemon.err.text


def test_openapi_is_served_and_describes_the_order_body(daemon: DaemonProcess) -> None:
    status, doc = _raw(daemon.url, "GET", "/openapi.json", {})
    assert status == 200
    assert doc["openapi"].startswith("3.")
    assert {"/orders", "/health", "/pause", "/resume", "/events"} <= set(doc["paths"])
    body = doc["components"]["schemas"]["OrderBody"]
    assert {"pair", "side", "amount"} <= set(body["required"])
    # No condition on price: a limit may go without one (the best bid/ask), a market order may have one (a bound).
    assert not {"if", "then", "else"} & set(body)
    assert "with a market order, a bound" in body["properties"]["price"]["description"]
    duplicate = doc["paths"]["/orders"]["post"]["responses"]["200"]["description"]
    assert "nothing new was sent" in duplicate and "`trade`" in duplicate and "`latest`" in duplicate
    assert "conflict" in doc["components"]["schemas"]["Error"]["properties"]["error"]["enum"]


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/health", {}),
        ("GET", "/health", {"Authorization": "Bearer wrong-token-wrong-token"}),
        ("GET", "/health", {"Authorization": "Basic dXNlcjpwYXNz"}),
        ("POST", "/orders", {"Content-Type": "application/json"}),
        ("POST", "/pause", {}),
        ("GET", "/events", {}),
    ],
)
def test_bad_auth_is_401_without_detail(daemon: DaemonProcess, method: str, path: str, headers: dict[str, str]) -> None:
    body = json.dumps({"pair": "BTC/USDT", "side": "buy", "amount": "0.01", "order_type": "market"}).encode()
    status, data = _raw(daemon.url, method, path, headers, body if method == "POST" else None)
    assert (status, data) == (401, {"error": "unauthorized"})


def test_auth_failure_is_alerted_to_the_webhook_and_telegram(
    daemon: DaemonProcess, webhook: Receiver, telegram: Receiver
) -> None:
    assert _raw(daemon.url, "GET", "/health", {"Authorization": "Bearer guess-guess-guess-guess"})[0] == 401
    alert = webhook.wait_until(lambda a: a["key"] == "auth_failure")
    assert "authentication failed" in alert["message"]
    message = telegram.wait_until(lambda m: "auth_failure" in m["text"])
    assert message["chat_id"] == "-1001" and "authentication failed" in message["text"]
    assert telegram.paths[0] == f"/tg/bot{TELEGRAM_TOKEN}/sendMessage"
    assert "guess-guess" not in str(webhook.accepted) + str(telegram.accepted)


def test_rejected_auth_reached_nothing(client: ApiClient) -> None:
    status, health = client.request("GET", "/health")
    assert status == 200
    assert health["paused"] is False  # the unauthenticated POST /pause above changed nothing


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"pair": "BTC/USDT", "side": "buy", "amount": 0.01, "price": BELOW_MARKET}, "amount"),
        ({"pair": "BTC/USDT", "side": "buy", "amount": "0.01", "price": 50000.5}, "price"),
        # A market order's price is a bound (see the test below), still a positive decimal string.
        ({"pair": "BTC/USDT", "side": "buy", "amount": "0.01", "order_type": "market", "price": "0"}, "price"),
        ({"pair": "btc-usdt", "side": "buy", "amount": "0.01", "order_type": "market"}, "pair"),
        ({"pair": "BTC/USDT", "side": "hold", "amount": "0.01", "order_type": "market"}, "side"),
        ({"pair": "BTC/USDT", "amount": "0.01", "order_type": "market"}, "side"),
        ({"pair": "BTC/USDT", "side": "buy", "amount": "-1", "order_type": "market"}, "amount"),
        ({"pair": "BTC/USDT", "side": "buy", "amount": "NaN", "order_type": "market"}, "amount"),
        ({"pair": "BTC/USDT", "side": "buy", "amount": True, "order_type": "market"}, "amount"),
        ({"pair": "BTC/USDT", "side": "buy", "amount": "0.01", "order_type": "stop"}, "order_type"),
        ({"pair": "BTC/USDT", "side": "buy", "amount": "0.01", "order_type": "market", "fallback": "x"}, "fallback"),
        (
            {"pair": "BTC/USDT", "side": "buy", "amount": "0.01", "order_type": "market", "limit_timeout": "0"},
            "limit_timeout",
        ),
        (
            {"pair": "BTC/USDT", "side": "buy", "amount": "0.01", "order_type": "market", "context": {"rsi": 1.5}},
            "context.rsi",
        ),
        ({"pair": "BTC/USDT", "side": "buy", "amount": "0.01", "order_type": "market", "leverage": "5"}, "leverage"),
        (
            {"pair": "BTC/USDT", "side": "buy", "amount": "0.01", "order_type": "market", "idempotency_key": ""},
            "idempotency_key",
        ),
    ],
)
def test_bad_input_is_422_naming_the_field(client: ApiClient, body: dict[str, Any], field: str) -> None:
    status, data = client.request("POST", "/orders", body)
    assert status == 422, data
    assert data["error"] == "invalid_request"
    assert field in [f["field"] for f in data["fields"]], data
    assert data["message"].startswith(f"{field}: ")


def test_a_market_order_with_a_price_is_an_ioc_limit_at_the_slippage_bound(client: ApiClient) -> None:
    # As Engine.place_order does: the price is the caller's bound, and the order goes out as an IOC limit at
    # execution.max_slippage_pct (5 % here) beyond it. The control API refused it ("a market order takes no price").
    # The embedded market walks: the price is the market's now (what a marketable limit filled at), in whole USDT
    # so the bound is exact at the 0.01 tick.
    _, done = _watch(client, "done")
    marketable = {"pair": "BTC/USDT", "side": "buy", "amount": "0.001", "price": "90000"}
    assert client.request("POST", "/orders", marketable)[0] == 201
    price = Decimal(done.result(30)["trade"]["average_price"]).quantize(Decimal(1))
    body = {"pair": "BTC/USDT", "side": "buy", "amount": "0.001", "order_type": "market", "price": str(price)}
    status, data = client.request("POST", "/orders", body)
    assert status == 201, data
    order = data["order"]
    assert (order["order_type"], order["time_in_force"]) == ("limit", "IOC"), order
    assert Decimal(order["price"]) == price * Decimal("1.05"), order


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b""])
def test_malformed_body_is_422(daemon: DaemonProcess, raw: bytes) -> None:
    headers = {"Authorization": f"Bearer {daemon.token}", "Content-Type": "application/json"}
    status, data = _raw(daemon.url, "POST", "/orders", headers, raw)
    assert status == 422
    assert data["fields"][0]["field"] == "body"


def test_unknown_orders_requests_and_pairs_are_404(client: ApiClient) -> None:
    assert client.request("GET", "/orders/BTC/USDT/bx-no-such-order")[0] == 404
    assert client.request("DELETE", "/orders/BTC/USDT/no-such-request")[0] == 404
    assert client.request("GET", "/orders?pair=XRP/USDT")[0] == 404
    assert client.request("GET", "/no/such/path")[0] == 404
    status, data = client.request("GET", "/orders/btc!/USDT/x")
    assert status == 422 and data["fields"][0]["field"] == "pair"


def test_sigusr1_dumps_thread_tracebacks_and_keeps_running(daemon: DaemonProcess, client: ApiClient) -> None:
    daemon.signal(signal.SIGUSR1)
    daemon.err.wait_for(lambda ln: "Current state of control-api" in ln)
    assert client.request("GET", "/health")[0] == 200


def test_token_file_is_reused_not_regenerated(daemon: DaemonProcess, tmp_path: Path) -> None:
    from engine.service import ensure_token

    again = ensure_token(None, daemon.workdir / "data" / "api-token")
    assert again.token == daemon.token and again.generated is False
    assert daemon.token not in repr(again)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("/orders?status=bogus", "status"),
        ("/orders?limit=0", "limit"),
        ("/orders?limit=many", "limit"),
        ("/orders?since=yesterday", "since"),
        ("/orders?since=1h&until=2h", "until"),
        ("/orders?pair=BTC!", "pair"),
        ("/orders?leverage=5", "leverage"),
        ("/trades?status=open-any", "status"),
        ("/trades?rsi_max=low", "rsi_max"),
        ("/trades?limit=1001", "limit"),
        # Endpoints that take no filter refuse one rather than ignore it (all the balances, as if filtered).
        ("/balances?pair=BTC/USDT", "pair"),
        ("/health?verbose=1", "verbose"),
        ("/metrics?format=json", "format"),
        ("/orders/BTC/USDT/bx-none?fills=0", "fills"),
        ("/events?pair=BTC/USDT&kind=fill", "kind"),
    ],
)
def test_bad_filters_are_422_naming_the_field(client: ApiClient, query: str, field: str) -> None:
    status, data = client.request("GET", query)
    assert status == 422, data
    assert data["error"] == "invalid_request" and field in [f["field"] for f in data["fields"]]
    assert data["message"].startswith(f"{field}: ")


def test_telegram_token_never_in_the_daemon_output(daemon: DaemonProcess, telegram: Receiver) -> None:
    # An alert of its own (a failed authentication), so the test holds when it runs alone, not only after the
    # auth test above made one.
    assert _raw(daemon.url, "GET", "/health", {"Authorization": "Bearer wrong-wrong-wrong-wrong"})[0] == 401
    telegram.wait_until(lambda m: "auth_failure" in m["text"])  # alerts went out with it
    output = daemon.out.text + daemon.err.text
    assert TELEGRAM_TOKEN not in output and "SENTINEL" not in output
