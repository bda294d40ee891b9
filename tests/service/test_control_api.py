"""The control API of a real daemon subprocess on the embedded defaults: auth, validation, orders, events."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import signal
import stat
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from engine.service import ApiClient
from tests.service._proc import DaemonProcess
from tests.service._receiver import Receiver, receiver

pytestmark = pytest.mark.timeout(120)

BELOW_MARKET = "50000"  # a resting BTC/USDT limit buy: the embedded market trades near 60 000
TELEGRAM_TOKEN = "123456789:SENTINEL-daemon-telegram-token"


@pytest.fixture(scope="module")
def webhook() -> Iterator[Receiver]:
    with receiver() as rx:
        yield rx


@pytest.fixture(scope="module")
def telegram() -> Iterator[Receiver]:
    with receiver() as rx:
        yield rx


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, webhook: Receiver, telegram: Receiver) -> Iterator[DaemonProcess]:
    workdir = tmp_path_factory.mktemp("daemon")
    # A long limit timeout: resting test orders must not fall back to market while the module runs (tests that
    # want a fallback pass their own). A wide slippage bound that refuses beyond it: a fallback 1 % away runs,
    # one 15 % away is refused by the guard (and alerted).
    proc = DaemonProcess(
        workdir,
        FREQTRADE__EXECUTION__LIMIT_TIMEOUT_S="900",
        FREQTRADE__EXECUTION__MAX_SLIPPAGE_PCT="5",
        FREQTRADE__EXECUTION__SLIPPAGE_ACTION="refuse",
        FREQTRADE__ALERTS__WEBHOOK_URL=webhook.url,
        FREQTRADE__ALERTS__TELEGRAM_TOKEN=TELEGRAM_TOKEN,
        FREQTRADE__ALERTS__TELEGRAM_CHAT_ID="-1001",
        FREQTRADE__ALERTS__TELEGRAM_API_URL=telegram.base + "/tg",
    )
    yield proc
    proc.signal(signal.SIGTERM)
    try:
        assert proc.wait() == 0
    finally:
        proc.kill()


@pytest.fixture(scope="module")
def client(daemon: DaemonProcess) -> ApiClient:
    return ApiClient(daemon.url, daemon.token)


def _raw(url: str, method: str, path: str, headers: dict[str, str], body: bytes | None = None) -> tuple[int, Any]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_banner_token_file_and_no_secret_in_output(daemon: DaemonProcess) -> None:
    text = daemon.out.text
    assert "first order:  python run.py order buy BTC/USDT" in text
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
        ({"pair": "BTC/USDT", "side": "buy", "amount": "0.01"}, "price"),
        ({"pair": "BTC/USDT", "side": "buy", "amount": "0.01", "order_type": "market", "price": "1"}, "price"),
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


def _watch(client: ApiClient, kind: str) -> tuple[threading.Event, concurrent.futures.Future[dict[str, Any]]]:
    """Watch BTC/USDT events in a thread; the future resolves with the first event of `kind`."""
    subscribed = threading.Event()
    seen: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()

    def watch() -> None:
        try:
            for event in client.events("BTC/USDT", on_open=subscribed.set):
                if event["kind"] == kind:
                    seen.set_result(event)
                    return
        except Exception as exc:
            seen.set_exception(exc)

    threading.Thread(target=watch, daemon=True).start()
    assert subscribed.wait(30)
    return subscribed, seen


def test_order_placed_read_listed_deduplicated_and_canceled(client: ApiClient) -> None:
    body = {
        "pair": "BTC/USDT",
        "side": "buy",
        "amount": "0.01",
        "price": BELOW_MARKET,
        "idempotency_key": "api-test-1",
        "context": {"strategy": "s1", "timeframe": "5m", "rsi": "31.5"},
    }
    status, placed = client.request("POST", "/orders", body)
    assert status == 201, placed
    order = placed["order"]
    assert order["status"] == "open" and order["amount"] == "0.01000" and placed["duplicate"] is False

    status, again = client.request("POST", "/orders", body)
    assert status == 200 and again["duplicate"] is True
    assert again["order"]["client_order_id"] == order["client_order_id"]

    status, conflict = client.request(
        "POST", "/orders", {"pair": "BTC/USDT", "side": "sell", "amount": "0.01", "price": "90000"}
    )
    assert status == 409 and conflict["error"] == "conflict"

    status, one = client.request("GET", ApiClient.pair_path("BTC/USDT", order["client_order_id"]))
    assert status == 200 and one["order"]["request_id"] == order["request_id"]
    status, listing = client.request("GET", "/orders?pair=BTC/USDT")
    assert status == 200 and [o["client_order_id"] for o in listing["orders"]] == [order["client_order_id"]]
    assert client.request("GET", "/health")[1]["open_orders"] == 1

    _, done = _watch(client, "done")
    status, canceled = client.request("DELETE", ApiClient.pair_path("BTC/USDT", order["request_id"]))
    assert status == 202 and canceled["cancel_requested"] is True
    event = done.result(30)
    assert event["request_id"] == order["request_id"] and event["trade"]["status"] == "canceled"
    assert client.request("GET", "/health")[1]["open_orders"] == 0
    status, stored = client.request("GET", ApiClient.pair_path("BTC/USDT", order["client_order_id"]))
    assert status == 200 and stored["order"]["status"] == "canceled"


def test_pause_refuses_new_orders_until_resumed(client: ApiClient) -> None:
    # A marketable limit (above the market): fills at once, and needs no price feed to be valued.
    market = {"pair": "BTC/USDT", "side": "buy", "amount": "0.001", "price": "90000"}
    assert client.request("POST", "/pause") == (200, {"paused": True})
    try:
        health = client.request("GET", "/health")[1]
        assert health["status"] == "paused" and health["paused"] is True
        status, refused = client.request("POST", "/orders", market)
        assert status == 409 and refused["error"] == "kill_switch"
    finally:
        assert client.request("POST", "/resume") == (200, {"paused": False})
    assert client.request("GET", "/health")[1]["status"] == "ok"
    _, done = _watch(client, "done")
    status, placed = client.request("POST", "/orders", market)
    assert status == 201, placed
    event = done.result(30)
    assert event["request_id"] == placed["order"]["request_id"]
    assert event["trade"]["status"] == "filled" and Decimal(event["trade"]["filled"]) == Decimal("0.001")


def test_sigusr1_dumps_thread_tracebacks_and_keeps_running(daemon: DaemonProcess, client: ApiClient) -> None:
    daemon.signal(signal.SIGUSR1)
    daemon.err.wait_for(lambda ln: "Current state of control-api" in ln)
    assert client.request("GET", "/health")[0] == 200


def test_token_file_is_reused_not_regenerated(daemon: DaemonProcess, tmp_path: Path) -> None:
    from engine.service import ensure_token

    again = ensure_token(None, daemon.workdir / "data" / "api-token")
    assert again.token == daemon.token and again.generated is False
    assert daemon.token not in repr(again)


def _scrape(daemon: DaemonProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    parts = urlsplit(daemon.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {daemon.token}"})
        response = conn.getresponse()
        assert response.status == 200 and response.getheader("Content-Type", "").startswith("text/plain")
        text = response.read().decode()
    finally:
        conn.close()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_are_scraped_and_parsed(daemon: DaemonProcess, client: ApiClient) -> None:
    before = _scrape(daemon)
    assert _raw(daemon.url, "GET", "/metrics", {})[0] == 401
    assert client.request("POST", "/orders", {"pair": "BTC/USDT", "side": "buy", "amount": 0.5})[0] == 422
    xrp = {"pair": "XRP/USDT", "side": "buy", "amount": "10", "price": "1"}
    assert client.request("POST", "/orders", xrp)[1]["error"] == "not_whitelisted"
    after = _scrape(daemon)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("bexec_auth_failures_total") == 1
    assert delta("bexec_invalid_requests_total") == 1
    assert delta("bexec_orders_total", outcome="not_whitelisted") == 1
    assert delta("bexec_submit_ack_seconds_count") == 1
    assert after[("bexec_open_orders", ())] == client.request("GET", "/health")[1]["open_orders"]
    assert after[("bexec_halted", ())] == 0


def test_health_reports_every_part(client: ApiClient) -> None:
    status, health = client.request("GET", "/health")
    assert status == 200
    assert health["status"] in ("ok", "degraded") and health["halted"] is False and health["halt_reason"] == ""
    assert health["database"] == {
        "health": "ok",
        "reason": health["database"]["reason"],
        "spooled": 0,
        "accepting_orders": True,
    }
    assert {"queued", "in_flight", "sent", "failed", "orders_halted"} <= set(health["gateway"])
    assert health["pairs"] == {"BTC/USDT": True, "ETH/USDT": True} or all(health["pairs"].values())
    assert health["restarts"] == 0 and Decimal(health["wallet_btc"]) > 0
    streams = health["streams"]
    assert streams is None or all({"state", "reconnects"} <= set(s) for s in streams.values())


def test_balances_are_exact_strings(client: ApiClient) -> None:
    status, data = client.request("GET", "/balances")
    assert status == 200
    assert {"BTC", "USDT"} <= set(data["balances"])
    usdt = data["balances"]["USDT"]
    assert isinstance(usdt["free"], str) and Decimal(usdt["free"]) + Decimal(usdt["locked"]) > 0
    assert isinstance(data["as_of_ms"], int) and Decimal(data["wallet_btc"]) > 0


def _market_price(client: ApiClient) -> Decimal:
    """The market's price now: a marketable limit buy fills at once, at the best ask."""
    _, done = _watch(client, "done")
    status, placed = client.request(
        "POST", "/orders", {"pair": "BTC/USDT", "side": "buy", "amount": "0.001", "price": "90000"}
    )
    assert status == 201, placed
    trade = done.result(30)["trade"]
    assert trade["request_id"] == placed["order"]["request_id"] and trade["status"] == "filled"
    return Decimal(trade["average_price"])


def test_order_detail_has_fills_fallback_legs_and_the_trade(client: ApiClient) -> None:
    price = _market_price(client)
    _, done = _watch(client, "done")
    # 1 % below the market: does not fill within its 1 s, then the market fallback (1 % < 5 % bound) buys it.
    limit = (price * Decimal("0.99")).quantize(Decimal("0.01"))
    body = {
        "pair": "BTC/USDT",
        "side": "buy",
        "amount": "0.002",
        "price": str(limit),
        "limit_timeout": "1",
        "fallback": "market",
        "context": {"strategy": "detail", "timeframe": "1m", "rsi": "55"},
    }
    status, placed = client.request("POST", "/orders", body)
    assert status == 201, placed
    primary = placed["order"]["client_order_id"]
    event = done.result(30)
    assert event["request_id"] == placed["order"]["request_id"] and event["trade"]["status"] == "filled", event

    status, detail = client.request("GET", ApiClient.pair_path("BTC/USDT", primary))
    assert status == 200, detail
    assert detail["order"]["status"] == "canceled" and detail["fills"] == []
    [fallback] = detail["fallbacks"]
    assert fallback["order"]["role"] == "fallback" and fallback["order"]["parent_client_order_id"] == primary
    assert sum(Decimal(f["quantity"]) for f in fallback["fills"]) == Decimal("0.002")
    assert detail["trade"]["status"] == "filled" and Decimal(detail["trade"]["filled"]) == Decimal("0.002")
    assert detail["trade"]["strategy"] == "detail"

    status, leg = client.request("GET", ApiClient.pair_path("BTC/USDT", fallback["order"]["client_order_id"]))
    assert status == 200 and leg["fallbacks"] == [] and len(leg["fills"]) == len(fallback["fills"])

    status, listing = client.request("GET", f"/orders?request_id={placed['order']['request_id']}")
    assert status == 200 and listing["source"] == "database"
    assert [o["client_order_id"] for o in listing["orders"]] == [fallback["order"]["client_order_id"], primary]


def test_fallback_refused_by_the_slippage_guard_is_alerted(
    client: ApiClient, webhook: Receiver, telegram: Receiver
) -> None:
    _, done = _watch(client, "done")
    body = {
        "pair": "BTC/USDT",
        "side": "buy",
        "amount": "0.001",
        "price": BELOW_MARKET,
        "limit_timeout": "1",
        "fallback": "market",
    }
    status, placed = client.request("POST", "/orders", body)
    assert status == 201, placed
    trade = done.result(30)["trade"]
    assert trade["request_id"] == placed["order"]["request_id"] and Decimal(trade["filled"]) == 0
    alert = webhook.wait_until(lambda a: a["key"] == "slippage_guard")
    assert alert["level"] == "CRITICAL" and "refused" in alert["message"]
    message = telegram.wait_until(lambda m: "slippage_guard" in m["text"])
    assert message["text"].startswith("[CRITICAL] slippage_guard")


def test_stored_orders_and_trades_with_filters(client: ApiClient) -> None:
    status, filled = client.request("GET", "/orders?pair=BTC/USDT&status=filled&since=1h&limit=500")
    assert status == 200 and filled["source"] == "database" and filled["orders"]
    assert all(o["status"] == "filled" and o["pair"] == "BTC/USDT" for o in filled["orders"])
    created = [o["created_at"] for o in filled["orders"]]
    assert created == sorted(created, reverse=True)
    assert client.request("GET", "/orders?status=filled&limit=1")[1]["orders"] == filled["orders"][:1]
    status, some = client.request("GET", "/orders?status=canceled,filled&status=open-any&until=2000-01-01T00:00")
    assert status == 200 and some["orders"] == []

    status, trades = client.request("GET", "/trades?strategy=s1")
    assert status == 200 and [t["status"] for t in trades["trades"]] == ["canceled"]
    assert trades["trades"][0]["indicators"]["rsi"] == "31.5"
    assert client.request("GET", "/trades?strategy=s1&rsi_min=31&rsi_max=32")[1]["trades"] == trades["trades"]
    assert client.request("GET", "/trades?strategy=s1&rsi_max=30")[1]["trades"] == []
    status, done = client.request("GET", "/trades?pair=BTC/USDT&status=filled&timeframe=1m")
    assert status == 200 and [t["strategy"] for t in done["trades"]] == ["detail"]


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
    ],
)
def test_bad_filters_are_422_naming_the_field(client: ApiClient, query: str, field: str) -> None:
    status, data = client.request("GET", query)
    assert status == 422, data
    assert data["error"] == "invalid_request" and field in [f["field"] for f in data["fields"]]
    assert data["message"].startswith(f"{field}: ")


def test_health_metrics_and_latency_histograms(daemon: DaemonProcess, client: ApiClient) -> None:
    samples = _scrape(daemon)
    health = client.request("GET", "/health")[1]
    assert samples[("bexec_gateway_queue_depth", ())] >= 0
    assert samples[("bexec_gateway_requests_total", (("result", "sent"),))] > 0
    assert samples[("bexec_persistence_backlog", ())] == 0 and samples[("bexec_database_ok", ())] == 1
    assert samples[("bexec_pair_actor_up", (("pair", "BTC/USDT"),))] == 1
    for role, stream in (health["streams"] or {}).items():
        assert samples[("bexec_stream_reconnects_total", (("stream", role),))] == stream["reconnects"]
    assert samples[("bexec_fill_applied_seconds_count", ())] >= 2  # the fills of the orders above
    assert samples[("bexec_order_ack_seconds_count", (("role", "primary"),))] >= 2
    assert samples[("bexec_order_ack_seconds_count", (("role", "fallback"),))] >= 1


def test_telegram_token_never_in_the_daemon_output(daemon: DaemonProcess, telegram: Receiver) -> None:
    assert telegram.accepted  # alerts went out with it
    output = daemon.out.text + daemon.err.text
    assert TELEGRAM_TOKEN not in output and "SENTINEL" not in output
