"""The stream actor with the real UBWA against the real simulator: reports, bursts, duplicates, bad frames."""

from __future__ import annotations

from decimal import Decimal

from actors.stream import FIRST_SUBSCRIPTION, HealthState
from engine.exchange import AccountPosition, BalanceUpdate, ExecutionReport, ExecutionType, UserDataReport
from sim import FaultSpec, Simulator
from tests.stream._helpers import (
    Recorder,
    on_sim_loop,
    place_limit,
    push_raw_user_frames,
    running_sim,
    stream_actor,
)


def _connected(rec: Recorder, n: int = 1) -> None:
    rec.wait(lambda r: r.connected_count() >= n, what=f"{n} user connect(s)")


def test_reports_arrive_typed_and_in_order_for_any_symbol() -> None:
    with running_sim() as sim, stream_actor(sim) as run:
        _connected(run.rec)
        place_limit(sim, "BTCUSDT", "ext-btc-1", "60000")
        place_limit(sim, "ETHBTC", "ext-ethbtc-1", "0.03", qty="0.5")
        sim.control.fill_order(symbol="BTCUSDT", client_order_id="ext-btc-1", quantity="0.004")
        sim.control.cancel_external_order(account=None, symbol="BTCUSDT", client_order_id="ext-btc-1")
        sim.control.credit(account=None, asset="USDT", amount="10")
        run.rec.wait(lambda r: any(isinstance(x, BalanceUpdate) for x in r.reports), what="balanceUpdate")
        execs = run.rec.executions()
        assert [(e.symbol, e.execution_type) for e in execs] == [
            ("BTCUSDT", ExecutionType.NEW),
            ("ETHBTC", ExecutionType.NEW),
            ("BTCUSDT", ExecutionType.TRADE),
            ("BTCUSDT", ExecutionType.CANCELED),
        ]
        trade = execs[2]
        assert trade.last_qty == Decimal("0.004") and trade.cum_qty == Decimal("0.004") and trade.is_trade
        assert execs[3].order_client_id == "ext-btc-1"
        assert any(isinstance(x, AccountPosition) for x in run.rec.reports)
        # The gap is told from another thread than the events: waited for, not assumed (it flaked under load).
        run.rec.wait(lambda r: r.gaps, what="the first subscription's gap")
        assert run.rec.errors == [] and run.rec.gaps == [FIRST_SUBSCRIPTION]  # one reconciliation, at the start


def _burst(sim: Simulator, orders: dict[str, int], fills_per_order: int) -> None:
    """Partial fills of resting orders, all queued on the simulator loop without yielding: a real burst."""

    async def go() -> None:
        ops = sim.control.ops
        for _ in range(fills_per_order):
            for symbol, order_id in orders.items():
                await ops.fill_order(symbol=symbol, order_id=order_id, quantity="0.00001")

    on_sim_loop(sim, go())


def test_burst_is_delivered_completely_and_in_order() -> None:
    with running_sim() as sim, stream_actor(sim) as run:
        _connected(run.rec)
        orders = {
            "BTCUSDT": place_limit(sim, "BTCUSDT", "burst-btc", "60000", qty="1"),
            "ETHUSDT": place_limit(sim, "ETHUSDT", "burst-eth", "3000", qty="10"),
        }
        run.rec.wait(lambda r: len(r.executions()) == 2, what="acks")
        _burst(sim, orders, 1000)
        run.rec.wait(lambda r: len(r.executions()) == 2002, what="2000 fills")
        trades = [e for e in run.rec.executions() if e.is_trade]
        ledger = [int(str(t["id"])) for t in sim.control.ledger()["trades"]]
        assert [int(e.trade_id or 0) for e in trades] == ledger  # every fill, in the exchange's order
        for symbol in orders:
            cum = [e.cum_qty for e in trades if e.symbol == symbol]
            assert cum == sorted(cum) and cum[-1] == Decimal("0.01")


def test_duplicated_and_reordered_events_are_delivered_as_they_come() -> None:
    with running_sim() as sim, stream_actor(sim) as run:
        _connected(run.rec)
        oid = place_limit(sim, "BTCUSDT", "dup-1", "60000")
        run.rec.wait(lambda r: len(r.executions()) == 1, what="ack")
        account = sim.accounts[0].name
        sim.control.add_fault(FaultSpec(kind="duplicate_events", target=f"user:{account}", count=1))
        sim.control.fill_order(symbol="BTCUSDT", order_id=oid, quantity="0.001")  # TRADE sent twice
        sim.control.add_fault(FaultSpec(kind="reorder_events", target=f"user:{account}", count=1))
        sim.control.fill_order(
            symbol="BTCUSDT", order_id=oid, quantity="0.002"
        )  # TRADE held back behind the next event
        sim.control.fill_order(symbol="BTCUSDT", order_id=oid, quantity="0.003")
        run.rec.wait(lambda r: len([e for e in r.executions() if e.is_trade]) == 4, what="4 trade reports")
        cum = [e.cum_qty for e in run.rec.executions() if e.is_trade]
        assert cum[:2] == [Decimal("0.001"), Decimal("0.001")]  # the duplicate, not dropped
        assert sorted(cum[2:]) == [Decimal("0.003"), Decimal("0.006")]  # both fills, whatever the order


def test_bad_frames_and_listener_errors_are_reported_and_skipped() -> None:
    failures = {"left": 1}
    rec = Recorder()

    def flaky_report(report: UserDataReport) -> None:
        if isinstance(report, ExecutionReport) and failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("pair actor bug")
        rec.on_report(report)

    with running_sim() as sim, stream_actor(sim, rec=rec, on_report=flaky_report) as run:
        _connected(run.rec)
        stream_id = run.proxy.stream_ids().get(timeout=5)["user"]
        bad = b'{"subscriptionId":0,"event":{"e":"executionReport"}}'  # no fields
        assert push_raw_user_frames(sim, b"not json at all", bad) == 1
        run.rec.wait(lambda r: len(r.errors) == 2, what="2 bad-frame errors")
        place_limit(sim, "BTCUSDT", "after-bad-1", "60000")  # swallowed by the failing listener → error
        run.rec.wait(lambda r: len(r.errors) == 3, what="listener error")
        place_limit(sim, "BTCUSDT", "after-bad-2", "60000")
        run.rec.wait(lambda r: len(r.executions()) == 1, what="report after the bad frames")
        assert run.rec.executions()[0].client_order_id == "after-bad-2"
        ops = [e.operation for e in run.rec.errors]
        assert ops == ["user_stream.frame", "user_stream.frame", "user_stream.callback"]
        assert "not JSON" in run.rec.errors[0].message and "pair actor bug" in run.rec.errors[2].message
        assert run.rec.errors[0].context == {"stream": "user", "stream_id": stream_id}
        assert run.proxy.stream_ids().get(timeout=5)["user"] == stream_id  # same stream: nothing reconnected
        assert run.rec.states()[-1] is HealthState.CONNECTED
