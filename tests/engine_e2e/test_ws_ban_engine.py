"""An IP ban seen through the whole engine: the REST side halts new orders until the ban ends, the user stream
holds its probes and reconnects until then (its handshakes would be refused), and both recover after it.

The engine runs on a manual clock and the simulator on the wall clock: the ban is lifted by hand, then the
engine's clock is moved past the ban's end (Retry-After, and the probe's ``data.retryAfter``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from engine.api import Accepted, Engine, RefusalReason
from sim import SimConfig, Simulator
from tests.engine_e2e._stack import engine_on
from tests.engine_e2e.test_stream_faults_engine import Reconciliations, _advance_until, _config

BAN_S = 600


class Lines:
    """Log messages that start with one of `prefixes`, captured from loguru and waitable."""

    def __init__(self, *prefixes: str) -> None:
        self.prefixes = prefixes
        self.lines: list[str] = []
        self._cond = threading.Condition()

    def sink(self, message: Any) -> None:
        text = str(message.record["message"])
        if text.startswith(self.prefixes):
            with self._cond:
                self.lines.append(text)
                self._cond.notify_all()

    def wait(self, predicate: Callable[[list[str]], bool], what: str, timeout: float = 30) -> None:  # float-ok
        with self._cond:
            ok = self._cond.wait_for(lambda: predicate(self.lines), timeout)
        assert ok, f"timed out waiting for {what}; saw {self.lines[-5:]}"

    def count(self, text: str) -> int:
        with self._cond:
            return sum(1 for line in self.lines if text in line)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = SimConfig(seed=3, symbols=["BTCUSDT", "ETHUSDT"],
                       start_prices={"BTCUSDT": Decimal(60000), "ETHUSDT": Decimal(3000)})  # fmt: skip
    with Simulator(config) as simulator:
        yield simulator


@pytest.fixture
def reconciled() -> Iterator[Reconciliations]:
    """The root's reconciliation log lines, waitable."""
    rec = Reconciliations()
    sink_id = logger.add(rec.sink, level="INFO", format="{message}")
    try:
        yield rec
    finally:
        logger.remove(sink_id)


@pytest.fixture
def lines() -> Iterator[Lines]:
    captured = Lines("user stream health", "sim refused a ws-api handshake", "streams: no reconnect")
    sink_id = logger.add(captured.sink, level="INFO", format="{message}")
    try:
        yield captured
    finally:
        logger.remove(sink_id)


def _advance(engine: Engine, ms: int, step_ms: int) -> None:
    """Move the engine's clock in steps, each a barrier through the root (health is an ask)."""
    for _ in range(ms // step_ms):
        engine.ticker.advance(step_ms)
        engine.health()


def _stream_state(engine: Engine) -> str:
    """The user stream's state as the stream actor has it: an ask queued behind the timer callbacks an advance
    told it, so a reconnect that came due is already connecting when this returns."""
    stream = engine._root.proxy().stream().get(timeout=10)
    return str(stream.health().get(timeout=10)["user"].state)


def _reconnect_after_the_ban(engine: Engine, lines: Lines) -> None:
    """Move the engine's clock past the ban's end and the reconnect's jitter, one second at a time, and stop moving
    it once a connection attempt is under way: its handshake takes wall-clock time, and the connect grace runs on
    the engine's clock (moving on by 10 s steps timed out a handshake in flight under CI load)."""
    for _ in range(120):
        if _stream_state(engine) in ("connecting", "connected"):
            break
        engine.ticker.advance(1_000)
    assert _stream_state(engine) in ("connecting", "connected"), "no reconnect after the ban's end"
    lines.wait(lambda ls: ls[-1].endswith("connected: subscribed"), "the stream back once the ban is over")


def test_a_ban_halts_orders_and_holds_the_stream_until_it_ends(
    sim: Simulator, tmp_path: Path, reconciled: Reconciliations, lines: Lines
) -> None:
    # A 30 s silence limit: the watchdog probes after 10 quiet seconds.
    with engine_on(sim, tmp_path, _config(watchdog_silence_s="30"), subscriptions=1) as (engine, _events):
        reconciled.wait("first subscription")
        t0 = engine.clock.now_ms()
        sim.control.ban_ip(BAN_S)
        during = engine.place_order("BTC/USDT", "buy", "0.01", "59000", idempotency_key="banned")
        _advance(engine, 10_000, 1_000)
        # REST: the first 418 (the order's, or a wallet refresh's) halts new orders until the ban ends.
        assert engine.halted
        # The streams hold too: told by the root (REST met the ban), or by the watchdog probe's own 418.
        lines.wait(lambda ls: any("probe rate limited (HTTP 418)" in line or line.startswith("streams: no reconnect")
                                  for line in ls), "the streams held")  # fmt: skip
        # Binance disconnects a banned IP. UBWA would reconnect every 0.1 s into refused handshakes for the whole
        # ban (before: every 30 s, the throttle floor); the stream waits for the ban's end instead.
        assert sim.control.close_ws("user") == 1
        lines.wait(lambda ls: "disconnected while rate limited" in ls[-1], "the reconnect held")
        _advance(engine, t0 + BAN_S * 1000 - 10_000 - engine.clock.now_ms(), 10_000)  # to the ban's last seconds
        assert lines.count("sim refused a ws-api handshake") <= 1  # at most UBWA's first try, before it was stopped
        assert engine.health()["streams"]["user"]["state"] == "reconnecting"
        assert engine.halted
        assert sim.control.lift_ban()  # the ban ends (on the simulator's clock)
        _reconnect_after_the_ban(engine, lines)
        # What it missed is reconciled, once the gateway has sent what queued up during the ban (one price poll at
        # most: it no longer piles up one a second).
        _advance_until(engine, lambda: "disconnect" in reconciled.reasons, step_ms=1_000, steps=120)
        assert lines.count("sim refused a ws-api handshake") <= 1
        assert engine.health()["streams"]["user"]["state"] == "connected"
        assert not engine.halted
        # The order placed as the ban began was refused (halted), or it was the request that met the ban (its own
        # 418: refused, never executed), or it had got in first, waited in the gateway and went out after the ban.
        outcome = during.result(30)
        assert (
            isinstance(outcome, Accepted)
            or outcome.reason is RefusalReason.HALTED
            or (outcome.reason is RefusalReason.REJECTED and "HTTP 418" in outcome.message)
        ), outcome
        placed = engine.place_order("ETH/USDT", "buy", "0.1", "2950", idempotency_key="after").result(30)
        assert isinstance(placed, Accepted), placed
        engine.stop()


def test_a_ban_rest_meets_first_holds_the_stream_reconnects_until_it_ends(
    sim: Simulator, tmp_path: Path, reconciled: Reconciliations
) -> None:
    """REST meets the ban before any probe does (the root hears the 418): when Binance then drops the banned IP's
    stream, no handshake is tried until the ban's end. Before, the drop let UBWA reconnect into a refused handshake,
    then one every throttle floor (30–37 s) for the whole ban."""
    captured = Lines("user stream health", "sim refused a ws-api handshake", "streams: no reconnect")
    sink_id = logger.add(captured.sink, level="INFO", format="{message}")
    try:
        with engine_on(sim, tmp_path, _config(watchdog_silence_s="30"), subscriptions=1) as (engine, _events):
            reconciled.wait("first subscription")
            sim.control.ban_ip(BAN_S)
            # A REST request meets the ban (this order's create, or a wallet refresh ahead of it): the root halts
            # and tells the streams.
            engine.place_order("BTC/USDT", "buy", "0.01", "59000", idempotency_key="met")
            captured.wait(lambda ls: any(line.startswith("streams: no reconnect") for line in ls), "the streams told")
            assert engine.halted
            assert sim.control.close_ws("user") == 1  # Binance drops a banned IP's connections
            captured.wait(lambda ls: "disconnected while rate limited" in ls[-1], "the reconnect held")
            _advance(engine, 300_000, 10_000)  # half the ban: ten throttle floors
            assert captured.count("sim refused a ws-api handshake") <= 1  # at most UBWA's first try
            assert engine.health()["streams"]["user"]["state"] == "reconnecting"
            engine.stop()
    finally:
        logger.remove(sink_id)
