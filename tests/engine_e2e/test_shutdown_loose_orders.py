"""Orders whose request is over, end to end: `cancel_order` cancels an adopted one by its request id; under
`on_shutdown = cancel` an external order (placed in the Binance UI) is left as it is and named, and the stop does
not wait for it (before, every graceful stop waited the full 15 s for an order it had never canceled, and said only
`open: 1`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from loguru import logger

from actors._supervision import SupervisionMixin
from engine.api import Engine, EventKind
from engine.exchange import client_order_id
from sim import Simulator
from tests.engine_e2e._engine_sim_helpers import id_scheme
from tests.engine_e2e.test_engine_sim import Events
from tests.engine_e2e.test_realtime import engine, sim  # noqa: F401 - the fixtures


def test_a_stop_leaves_an_external_order_named_and_waits_only_for_its_own_cancels(
    engine: tuple[Engine, Events],  # noqa: F811 - the fixture
    sim: Simulator,  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    eng, events = engine
    sim.control.place_external_order(
        symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.01", price="65000",
        newClientOrderId="manual-ui-1",
    )  # fmt: skip
    events.wait_for(EventKind.EXTERNAL)
    waits: list[bool] = []
    original = SupervisionMixin._wait_until

    def recorded(condition: Callable[[], bool], timeout_s: float) -> bool:
        waits.append(original(condition, timeout_s))
        return waits[-1]

    monkeypatch.setattr(SupervisionMixin, "_wait_until", staticmethod(recorded))
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING", format="{message}")
    try:
        summary = eng.stop()
    finally:
        logger.remove(sink)
    assert summary["open"] == 1 and summary["canceled"] == 0, summary
    assert waits and all(waits), waits  # every wait ended on its condition, none ran out its 15 s
    assert any(line.startswith("left open at the exchange: manual-ui-1") for line in lines), lines
    [external] = [o for o in sim.control.ledger()["orders"] if o["clientOrderId"] == "manual-ui-1"]
    assert external["status"] == "NEW"  # not the engine's to cancel


def test_an_adopted_order_is_canceled_through_the_engine_by_its_request_id(
    engine: tuple[Engine, Events],  # noqa: F811 - the fixture
    sim: Simulator,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    # An order with the engine's prefix the database never stored (its write-ahead lost): adopted, tracked to its
    # end. `cancel_order(pair, "adopted-<cid>")` answered unknown_request and sent nothing.
    eng, events = engine
    namespace, tag = id_scheme(f"sqlite:///{tmp_path}/e.sqlite3")  # the database of test_realtime's `engine`
    cid = client_order_id("write-ahead lost", pair="BTC/USDT", namespace=namespace, tag=tag)
    sim.control.place_external_order(
        symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price="59000",
        newClientOrderId=cid,
    )  # fmt: skip
    [adopted] = events.wait_for(EventKind.EXTERNAL)
    assert adopted.request_id == f"adopted-{cid}", adopted
    outcome = eng.cancel_order("BTC/USDT", f"adopted-{cid}").result(20)
    assert outcome.status.value == "cancel_sent" and outcome.client_order_ids == (cid,), outcome
    events.wait_for(EventKind.CANCELED)
    [order] = [o for o in sim.control.ledger()["orders"] if o["clientOrderId"] == cid]
    assert order["status"] == "CANCELED"
    assert eng.open_orders("BTC/USDT") == []
