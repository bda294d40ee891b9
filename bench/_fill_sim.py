"""The fill benchmarks' simulator process (used through `_fill_rig`); not a benchmark itself.

`SimProcess`: the simulator in its own process (as Binance is), so it does not share our interpreter lock. It
has three accounts: ``engine`` (the engine's key), ``floor`` (a bare UBWA client's key) and ``hop`` (a bare UBWA
client handing each report to a pykka actor), so the floors and the engine receive the same kind of events from
the same simulator in the same run without seeing each other's. Fills are made on the simulator's loop, which
stamps ``perf_counter_ns`` the moment each event is queued on the socket (CLOCK_MONOTONIC: the same clock in
both processes); the stamps come back over a pipe. Also the accounts' keys and the resting orders' price.
Run as ``_fill_sim.py serve SYMBOLS`` it is the child side.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

__all__ = [
    "ENGINE_KEY",
    "ENGINE_SECRET",
    "FLOOR_KEY",
    "FLOOR_SECRET",
    "HOP_KEY",
    "HOP_SECRET",
    "PRICE",
    "ROOT",
    "SimProcess",
]

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ENGINE_KEY = "benchengine".ljust(64, "0")
ENGINE_SECRET = "benchenginesecret".ljust(64, "0")
FLOOR_KEY = "benchfloor".ljust(64, "0")
FLOOR_SECRET = "benchfloorsecret".ljust(64, "0")
HOP_KEY = "benchhop".ljust(64, "0")
HOP_SECRET = "benchhopsecret".ljust(64, "0")
PRICE = Decimal(10)


# ---- the simulator process -----------------------------------------------------------------------
def _sim_config(symbols: list[str]) -> Any:
    from sim import AccountSpec, SimConfig

    rich = {"USDT": Decimal(10**10), "BTC": Decimal(10**4)} | {s.removesuffix("USDT"): Decimal(10**8) for s in symbols}
    limits = {"request_weight_per_minute": 10**9, "orders_per_10s": 10**9, "orders_per_day": 10**12}
    accounts = [
        AccountSpec(name="engine", api_key=ENGINE_KEY, secret=ENGINE_SECRET, balances=rich),
        AccountSpec(name="floor", api_key=FLOOR_KEY, secret=FLOOR_SECRET, balances=rich),
        AccountSpec(name="hop", api_key=HOP_KEY, secret=HOP_SECRET, balances=rich),
    ]
    all_symbols = [*symbols, "BTCUSDT"]
    prices = dict.fromkeys(symbols, PRICE) | {"BTCUSDT": Decimal(60000)}
    return SimConfig(seed=6, symbols=all_symbols, start_prices=prices, accounts=accounts, rate_limits=limits)


def _serve(symbols: list[str]) -> None:
    """Child side: run the simulator and answer JSON-line commands on stdin until it closes."""
    from engine.logs import setup_logging
    from sim import Simulator

    setup_logging(level="ERROR")
    with Simulator(_sim_config(symbols)) as sim:
        loop = sim._loop  # the simulator has no public hook for running code on its loop
        assert loop is not None
        ops = sim.control.ops
        out = sys.stdout.buffer

        async def fills(items: list[list[Any]], spacing_us: int, yield_every: int) -> list[list[int]]:
            # Each fill queues its events on the socket synchronously; the stamp is taken right after, and the
            # writer task sends them at the next yield. `yield_every` lets the writers run during a burst.
            stamps = []
            perf = time.perf_counter_ns
            for i, (symbol, order_id, quantity) in enumerate(items, 1):
                trade = await ops.fill_order(symbol=symbol, order_id=order_id, quantity=quantity)
                stamps.append([perf(), int(str(trade["id"]))])
                if spacing_us:
                    await asyncio.sleep(spacing_us / 1e6)
                elif yield_every and i % yield_every == 0:
                    await asyncio.sleep(0)
            return stamps

        async def reconnect_stamp(kind: str, within_s: float) -> int:  # float-ok: seconds
            """Abort the user streams, wait for the new subscription, stamp the moment it is registered."""
            await ops.abort_ws(kind)
            if not await ops.wait_subscriptions(0, within_s):
                raise RuntimeError("the aborted subscription never went away")
            if not await ops.wait_subscriptions(1, within_s):
                raise RuntimeError("the stream never re-subscribed")
            return time.perf_counter_ns()

        out.write(orjson.dumps({"urls": [sim.urls.rest, sim.urls.ws_api, sim.urls.stream]}) + b"\n")
        out.flush()
        for line in sys.stdin.buffer:
            cmd = orjson.loads(line)
            try:
                if cmd["op"] == "fills":
                    coro = fills(cmd["items"], cmd.get("spacing_us", 0), cmd.get("yield_every", 1))
                    result: Any = asyncio.run_coroutine_threadsafe(coro, loop).result(600)
                elif cmd["op"] == "reconnect_stamp":
                    coro2 = reconnect_stamp(cmd.get("kind", "user"), cmd.get("within_s", 30.0))
                    result = asyncio.run_coroutine_threadsafe(coro2, loop).result(120)
                elif cmd["op"] == "wait_subscriptions":
                    result = sim.control.wait_subscriptions(cmd["n"], cmd.get("within_s", 20.0))
                else:
                    result = getattr(sim.control, cmd["op"])(*cmd.get("args", ()), **cmd.get("kwargs", {}))
                reply = {"ok": result}
            except Exception as exc:  # reported to the parent, which raises it
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            out.write(orjson.dumps(reply, default=str) + b"\n")
            out.flush()


class SimProcess:
    """The simulator in a child process, driven through a pipe (see module docstring)."""

    def __init__(self, symbols: list[str]) -> None:
        self.symbols = symbols
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "serve", orjson.dumps(symbols).decode()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        if not first:
            raise RuntimeError("the simulator did not start")
        self.rest, self.ws_api, self.stream = orjson.loads(first)["urls"]
        self._lock = threading.Lock()

    def call(self, op: str, *args: Any, **kwargs: Any) -> Any:
        """A `sim.Control` method by name (``place_external_order``, ``abort_ws``, ``ledger``, …)."""
        return self._send({"op": op, "args": list(args), "kwargs": kwargs})

    def fills(
        self, items: Sequence[tuple[str, int, str]], spacing_us: int = 0, yield_every: int = 1
    ) -> list[tuple[int, tuple[str, int]]]:
        """Fill ``(symbol, order id, quantity)`` in order on the simulator loop; (send stamp, (symbol, trade id)) of
        each: Binance numbers trades per symbol, so a trade id alone is not a trade."""
        reply = self._send({"op": "fills", "items": items, "spacing_us": spacing_us, "yield_every": yield_every})
        return [(int(t), (str(item[0]), int(tid))) for (t, tid), item in zip(reply, items, strict=True)]

    def reconnect_stamp(self, kind: str = "user") -> int:
        """Abort ``kind`` connections; the simulator's stamp when the re-subscription is registered."""
        return int(self._send({"op": "reconnect_stamp", "kind": kind}))

    def wait_subscriptions(self, n: int, within_s: float = 20.0) -> bool:  # float-ok: seconds
        return bool(self._send({"op": "wait_subscriptions", "n": n, "within_s": within_s}))

    def _send(self, cmd: dict[str, Any]) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self._lock:
            self.proc.stdin.write(orjson.dumps(cmd) + b"\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the simulator process died")
        reply = orjson.loads(line)
        if "error" in reply:
            raise RuntimeError(f"simulator: {reply['error']}")
        return reply["ok"]

    def external_orders(self, account: str, symbols: Sequence[str], quantity: str) -> dict[str, int]:
        """One resting BUY per symbol on ``account`` (for the floor); symbol → order id."""
        out = {}
        for s in symbols:
            res = self.call(
                "place_external_order",
                account,
                symbol=s,
                side="BUY",
                type="LIMIT",
                timeInForce="GTC",
                quantity=quantity,
                price=str(PRICE - Decimal("0.1")),
            )
            out[s] = int(res["orderId"])
        return out

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "serve":
    _serve(orjson.loads(sys.argv[2]))
