"""Alert deduplication windows: identical alerts (same key and message) are held back and counted; a different
message under the same key (another order, another stream state) is delivered; a window that ends with alerts
held back sends a summary by itself, without waiting for another alert of that key."""

from __future__ import annotations

from loguru import logger
from pydantic import SecretStr

from engine.service._alerts import Alerts, Telegram, Transport, Webhook
from tests.service import _alert_fixtures as _shared
from tests.service._alert_fixtures import ManualClock
from tests.service._receiver import receiver

# pytest fixtures from the shared module, assigned rather than imported so test arguments may shadow them
clock = _shared.clock
make = _shared.make


def _alerts(made: list[Alerts], transports: list[Transport], clock: ManualClock, tick_s: float = 3600.0) -> Alerts:
    # An hour's tick: the workers never look at the windows by themselves, the test calls `flush()`.
    alerts = Alerts(transports, clock=clock, backoff_s=0.01, min_interval_s=60, tick_s=tick_s)
    alerts.install()
    made.append(alerts)
    return alerts


def _engine_alert(key: str, message: str) -> None:
    # Exactly what the engine's alerts callable does (engine/api/_alerting.py `log_alert`).
    logger.bind(alert=key).critical("ALERT {}: {}", key, message)


def _order_alert(key: str, pair: str, cid: str, message: str) -> None:
    # What the actors make of an engine `Alert(key, message, cid)` (actors/pair.py, actors/_tracked.py).
    _engine_alert(key, f"{pair} {cid}: {message}")


def test_stream_unrepairable_then_fatal_are_both_delivered(make: list[Alerts], clock: ManualClock) -> None:
    with receiver() as rx:
        alerts = _alerts(make, [Webhook(rx.url)], clock)
        _engine_alert("stream", "user stream unrepairable: connection lost; reconnecting in 0 ms")
        clock.now += 2
        _engine_alert("stream", "user stream fatal: API key rejected (code=-2015)")
        alerts.close()  # the barrier: everything queued is delivered
    assert [(a["key"], a["message"].split(": ")[1], a["suppressed"]) for a in rx.accepted] == [
        ("stream", "user stream unrepairable", 0),
        ("stream", "user stream fatal", 0),
    ]


def test_anomalies_of_different_orders_are_both_delivered(make: list[Alerts], clock: ManualClock) -> None:
    with receiver() as rx:
        alerts = _alerts(make, [Webhook(rx.url)], clock)
        _order_alert("anomaly", "BTC/USDT", "bx-A1", "FILLED report for a CANCELED order")
        _order_alert("anomaly", "BTC/USDT", "bx-B2", "FILLED report for a CANCELED order")
        _order_alert("order_vanished", "ETH/USDT", "bx-C3", "unknown to the exchange; closed as expired")
        _order_alert("order_vanished", "ETH/USDT", "bx-D4", "unknown to the exchange; closed as expired")
        alerts.close()
    assert [a["message"].split(": ")[1] for a in rx.accepted] == [
        "BTC/USDT bx-A1",
        "BTC/USDT bx-B2",
        "ETH/USDT bx-C3",
        "ETH/USDT bx-D4",
    ]


def test_a_flood_is_one_alert_then_one_summary_when_the_window_ends(make: list[Alerts], clock: ManualClock) -> None:
    start = clock.now
    with receiver() as hook, receiver() as tg:
        alerts = _alerts(make, [Webhook(hook.url), Telegram(SecretStr("1:tok"), "42", tg.base)], clock)
        for _ in range(100):
            _order_alert("anomaly", "BTC/USDT", "bx-A1", "FILLED report for a CANCELED order")
            clock.now += 0.5  # all 100 within the 60 s window
        [first] = hook.wait_for(1)
        assert alerts.flush() == []  # the window is still open: nothing to say yet
        clock.now = start + 60
        [summary] = alerts.flush()  # no further alert: the window's end alone sends the count
        hooked = hook.wait_for(2, timeout=5)
        texts = [m["text"] for m in tg.wait_for(2, timeout=5)]
        assert alerts.flush() == []  # said once
        alerts.close()
    assert (first["suppressed"], first["summary"]) == (0, False)
    assert hooked[1] == summary and len(hook.accepted) == 2 and len(tg.accepted) == 2
    assert (summary["key"], summary["suppressed"], summary["summary"]) == ("anomaly", 99, True)
    assert summary["message"] == (
        "99 more anomaly alerts held back in the last 60 s: "
        "ALERT anomaly: BTC/USDT bx-A1: FILLED report for a CANCELED order"
    )
    assert texts[1] == "[CRITICAL] anomaly\n" + summary["message"]  # the count once, not twice


def test_the_workers_send_the_summary_without_being_asked(make: list[Alerts], clock: ManualClock) -> None:
    with receiver() as rx:
        _alerts(make, [Webhook(rx.url)], clock, tick_s=0.01)
        for _ in range(3):
            _engine_alert("external_order", "BTC/USDT order 123 placed outside the engine")
        rx.wait_for(1)
        clock.now += 60
        summary = rx.wait_until(lambda a: a["summary"], timeout=5)
    assert (summary["key"], summary["suppressed"]) == ("external_order", 2)
    assert summary["message"].startswith("2 more external_order alerts held back in the last 60 s: ALERT")


def test_a_flood_that_goes_on_is_one_summary_per_window(make: list[Alerts], clock: ManualClock) -> None:
    with receiver() as rx:
        alerts = _alerts(make, [Webhook(rx.url)], clock)
        for _ in range(3):  # three windows of a steady flood: 10 identical alerts in each
            for _ in range(10):
                _engine_alert("stream", "market stream unrepairable: silent")
                clock.now += 6
            alerts.flush()
        clock.now += 60
        assert alerts.flush() == []  # the flood stopped: the last window held nothing back
        _engine_alert("stream", "market stream unrepairable: silent")  # a new episode is delivered at once
        alerts.close()
    assert [(a["summary"], a["suppressed"]) for a in rx.accepted] == [
        (False, 0),
        (True, 9),
        (True, 10),
        (True, 10),
        (False, 0),
    ]


def test_held_back_alerts_are_counted_out_at_close(make: list[Alerts], clock: ManualClock) -> None:
    with receiver() as rx:
        alerts = _alerts(make, [Webhook(rx.url)], clock)
        _engine_alert("database", "spool full: new orders halted")
        _engine_alert("database", "spool full: new orders halted")
        alerts.close()
    assert [(a["summary"], a["suppressed"]) for a in rx.accepted] == [(False, 0), (True, 1)]


def test_a_flapping_stream_is_one_alert_whatever_its_reconnect_delays(make: list[Alerts], clock: ManualClock) -> None:
    # actors/stream/_watch.py reports every break as unrepairable with a fresh (jittered) backoff delay.
    with receiver() as rx:
        alerts = _alerts(make, [Webhook(rx.url)], clock)
        for delay in (0, 1370, 2650, 5210):
            _engine_alert("stream", f"user stream unrepairable: connection lost; reconnecting in {delay} ms")
            clock.now += 10
        clock.now += 30
        [summary] = alerts.flush()
        alerts.close()
    assert [(a["summary"], a["suppressed"]) for a in rx.accepted] == [(False, 0), (True, 3)]
    assert summary["message"].endswith("connection lost; reconnecting in 5210 ms")  # the last one's words


def test_a_busy_worker_still_ends_the_windows_on_its_tick() -> None:
    # The windows were ended only when a worker's queue stayed empty for a whole tick: a destination kept busy by
    # a stream of distinct alerts never sent the held-back summaries, and the ended windows piled up.
    from engine.service._alerts import _Delivery

    queued_at_ticks: list[int] = []
    with receiver() as rx:
        delivery = _Delivery(Webhook(rx.url), (1, 0.01, 5.0), 0.0, lambda: queued_at_ticks.append(delivery_size()))
        for n in range(20):  # queued before the worker starts: it is busy from its first turn to its 20th
            delivery.offer({"key": "anomaly", "level": "CRITICAL", "message": f"order {n}", "time": "t",
                            "suppressed": 0, "summary": False})  # fmt: skip

        def delivery_size() -> int:
            return delivery._queue.qsize()

        delivery.start()
        rx.wait_for(20)
        delivery.close(5.0)
    assert queued_at_ticks and queued_at_ticks[0] > 0, queued_at_ticks  # ticked while alerts were still queued
