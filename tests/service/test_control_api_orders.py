"""The control API of a real daemon subprocess on the embedded defaults, doing its work: orders placed, read,
listed, deduplicated and canceled; pause and resume; order detail with fills, fallback legs and the trade; a
fallback refused by the slippage guard (and alerted); stored orders and trades with filters; health, balances,
and the Prometheus metrics.

The tests run in order against one daemon (later ones read what earlier ones stored). Authentication and
validation are in test_control_api.py; the fixtures are in _control_api_helpers.py.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.service import ApiClient
from tests.service import _control_api_helpers as _shared
from tests.service._control_api_helpers import BELOW_MARKET, _raw, _scrape, _watch
from tests.service._proc import DaemonProcess
from tests.service._receiver import Receiver

pytestmark = pytest.mark.timeout(120)

# pytest fixtures from the helper, assigned rather than imported so test arguments may shadow them
webhook = _shared.webhook
telegram = _shared.telegram
daemon = _shared.daemon
client = _shared.client


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
    assert order["status"] == "open" and order["amount"] == "0.01" and placed["duplicate"] is False

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


def test_health_metrics_and_latency_histograms(daemon: DaemonProcess, client: ApiClient) -> None:
    samples = _scrape(daemon)
    health = client.request("GET", "/health")[1]
    # Never throttled, the gateway sends what it is handed at once: nothing waits for the rate budget.
    assert samples[("bexec_gateway_queue_depth", ())] == 0 and samples[("bexec_gateway_blocked_seconds", ())] == 0
    assert samples[("bexec_gateway_requests_total", (("result", "sent"),))] > 0
    assert samples[("bexec_persistence_backlog", ())] == 0 and samples[("bexec_database_ok", ())] == 1
    assert samples[("bexec_pair_actor_up", (("pair", "BTC/USDT"),))] == 1
    for role, stream in (health["streams"] or {}).items():
        assert samples[("bexec_stream_reconnects_total", (("stream", role),))] == stream["reconnects"]
    assert samples[("bexec_fill_applied_seconds_count", ())] >= 2  # the fills of the orders above
    assert samples[("bexec_order_ack_seconds_count", (("role", "primary"),))] >= 2
    assert samples[("bexec_order_ack_seconds_count", (("role", "fallback"),))] >= 1
