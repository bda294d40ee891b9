"""The control API: a thread-safe facade and the ``/_sim/`` HTTP routes over the in-loop ``ControlOps``.

The operations themselves live in ``sim._control_ops``; ``ControlOps`` is re-exported here.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Coroutine
from decimal import Decimal
from typing import Any, TypeVar

import orjson
from aiohttp import web

from sim._control_ops import ControlOps
from sim._dispatch import Dispatcher
from sim._errors import SimError
from sim._faults import FaultSpec

__all__ = ["Control", "ControlOps"]

T = TypeVar("T")


_HTTP_OPS = frozenset(
    {
        "price",
        "set_price",
        "move_price",
        "spike",
        "step_market",
        "set_quote",
        "set_symbol_status",
        "requests",
        "fill_order",
        "place_external_order",
        "cancel_external_order",
        "amend_order",
        "expire_order",
        "credit",
        "ledger",
        "add_fault",
        "remove_fault",
        "clear_faults",
        "close_ws",
        "abort_ws",
        "stall_ws",
        "event_stream_terminated",
        "expire_listen_keys",
        "expire_due_listen_keys",
        "ban_ip",
        "lift_ban",
        "server_shutdown",
        "subscriptions",
    }
)


def register_control_routes(dispatcher: Dispatcher, ops: ControlOps) -> None:
    """``POST /_sim/<op>`` with a JSON object of keyword arguments (``GET`` takes query parameters)."""

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        # A web page the operator visits could reach these loopback routes (an <img> GET, a text/plain POST) and move
        # paper fills: browsers say where a request comes from, scripts and curl do not. Theirs are refused.
        site = request.headers.get("Sec-Fetch-Site")
        if "Origin" in request.headers or (site is not None and site not in ("same-origin", "none")):
            return web.json_response({"error": "control requests from a web page are refused"}, status=403)
        name = request.path[len("/_sim/") :]
        if name not in _HTTP_OPS:
            return web.json_response({"error": f"unknown control operation {name!r}"}, status=404)
        kwargs: dict[str, Any] = dict(request.query)
        if request.body_exists:
            try:
                body = orjson.loads(await request.read())
            except orjson.JSONDecodeError:
                return web.json_response({"error": "body must be a JSON object"}, status=400)
            if not isinstance(body, dict):
                return web.json_response({"error": "body must be a JSON object"}, status=400)
            kwargs.update(body)
        op = getattr(ops, name)
        if "account" in inspect.signature(op).parameters:
            kwargs.setdefault("account", None)  # over HTTP the account is optional (first account)
        try:
            result = await op(**kwargs)
        except SimError as err:
            return web.json_response({"error": err.msg, "code": err.code}, status=err.status)
        except (KeyError, ValueError, TypeError) as err:
            return web.json_response({"error": str(err)}, status=400)
        return web.Response(body=orjson.dumps({"result": result}, default=str), content_type="application/json")

    dispatcher.add_prefix("*", "/_sim/", handler)


class Control:
    """Thread-safe control API: every call runs on the simulator loop and returns its result."""

    def __init__(
        self, ops: ControlOps, loop: asyncio.AbstractEventLoop, loop_thread: int, timeout: float = 10.0
    ) -> None:  # float-ok: seconds
        self._ops = ops
        self._loop = loop
        self._loop_thread = loop_thread
        self._timeout = timeout

    @property
    def ops(self) -> ControlOps:
        """The in-loop operations (for code already running on the simulator loop)."""
        return self._ops

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.get_ident() == self._loop_thread:
            coro.close()
            raise RuntimeError("Control is for other threads; use Control.ops (async) on the simulator loop")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self._timeout)

    def price(self, symbol: str) -> Decimal:
        """Current mid price."""
        return Decimal(self._run(self._ops.price(symbol)))

    def set_price(self, symbol: str, price: Decimal | str) -> Decimal:
        """Set the mid price (resting orders crossed by the move fill)."""
        return Decimal(self._run(self._ops.set_price(symbol, price)))

    def move_price(self, symbol: str, delta: Decimal | str) -> Decimal:
        """Move the mid price by ``delta``."""
        return Decimal(self._run(self._ops.move_price(symbol, delta)))

    def spike(self, symbol: str, percent: Decimal | str) -> Decimal:
        """Jump the mid price by ``percent`` %."""
        return Decimal(self._run(self._ops.spike(symbol, percent)))

    def set_quote(self, symbol: str, bid: Decimal | str, ask: Decimal | str) -> dict[str, str]:
        """Put the top of the book at ``bid`` / ``ask``; returns the resulting bid, ask and mid."""
        return self._run(self._ops.set_quote(symbol, bid, ask))

    def set_symbol_status(self, symbol: str, status: str) -> str:
        """Set the symbol's status (``TRADING`` | ``END_OF_DAY`` | ``HALT`` | ``BREAK`` | ``CANCEL_ONLY``)."""
        return self._run(self._ops.set_symbol_status(symbol, status))

    def requests(self) -> list[dict[str, object]]:
        """Every HTTP request received so far (needs ``SimConfig(record_requests=True)``)."""
        return self._run(self._ops.requests())

    def step_market(self, n: int = 1) -> dict[str, str]:
        """Advance the price process ``n`` ticks."""
        return self._run(self._ops.step_market(n))

    def fill_order(
        self,
        symbol: str,
        order_id: int | None = None,
        client_order_id: str | None = None,
        quantity: Decimal | str | None = None,
    ) -> dict[str, object]:
        """Fill a resting order (fully if ``quantity`` is None)."""
        return self._run(self._ops.fill_order(symbol, order_id, client_order_id, quantity))

    def place_external_order(self, account: str | None = None, **params: Any) -> dict[str, object]:
        """Place an order from outside (Binance UI)."""
        return self._run(self._ops.place_external_order(account, **params))

    def cancel_external_order(
        self, account: str | None, symbol: str, order_id: int | None = None, client_order_id: str | None = None
    ) -> dict[str, object]:
        """Cancel an order from outside (``account`` None = the first account)."""
        return self._run(self._ops.cancel_external_order(account, symbol, order_id, client_order_id))

    def amend_order(
        self,
        symbol: str,
        quantity: Decimal | str,
        order_id: int | None = None,
        client_order_id: str | None = None,
        new_client_order_id: str | None = None,
    ) -> str:
        """Reduce a live order's quantity from outside (order amend keep priority); returns its new client id."""
        return self._run(self._ops.amend_order(symbol, quantity, order_id, client_order_id, new_client_order_id))

    def expire_order(
        self,
        symbol: str,
        order_id: int | None = None,
        client_order_id: str | None = None,
        reason: str = "EXCHANGE_CANCELED",
    ) -> str:
        """The exchange expires a resting order by its own rules (``eR`` = ``reason``)."""
        return self._run(self._ops.expire_order(symbol, order_id, client_order_id, reason))

    def credit(self, account: str | None, asset: str, amount: Decimal | str, repeat: int = 1) -> dict[str, str]:
        """Deposit (or withdraw with a negative amount) on ``account`` (None = the first account)."""
        return self._run(self._ops.credit(account, asset, amount, repeat))

    def ledger(self, account: str | None = None) -> dict[str, Any]:
        """Orders, trades, balances and the fault log."""
        return self._run(self._ops.ledger(account))

    def add_fault(self, spec: FaultSpec | dict[str, Any]) -> int:
        """Activate a fault; returns its id."""
        return self._run(self._ops.add_fault(spec))

    def remove_fault(self, fault_id: int) -> bool:
        """Deactivate a fault."""
        return self._run(self._ops.remove_fault(fault_id))

    def clear_faults(self) -> None:
        """Deactivate every fault."""
        self._run(self._ops.clear_faults())

    def close_ws(self, kind: str = "all", code: int = 1000) -> int:
        """Close WS connections cleanly."""
        return self._run(self._ops.close_ws(kind, code))

    def abort_ws(self, kind: str = "all") -> int:
        """Abort WS connections (TCP)."""
        return self._run(self._ops.abort_ws(kind))

    def stall_ws(self, kind: str = "all", stalled: bool = True) -> int:
        """Stop or resume answering pings and sending on WS connections."""
        return self._run(self._ops.stall_ws(kind, stalled))

    def event_stream_terminated(self, account: str | None = None) -> int:
        """Terminate the account's user-data subscriptions."""
        return self._run(self._ops.event_stream_terminated(account))

    def expire_listen_keys(self, account: str | None = None) -> int:
        """Expire the account's listenKeys now (Binance.US): ``listenKeyExpired``, then the stream closes."""
        return self._run(self._ops.expire_listen_keys(account))

    def expire_due_listen_keys(self) -> int:
        """Expire now the listenKeys past their 60 minutes since creation or keepalive; returns how many."""
        return self._run(self._ops.expire_due_listen_keys())

    def ban_ip(self, seconds: int, ip: str = "127.0.0.1") -> int:
        """Ban ``ip`` for ``seconds`` (REST and the WS API answer 418, WS API handshakes are refused with 418);
        returns the ban's end (epoch ms, simulator clock)."""
        return self._run(self._ops.ban_ip(seconds, ip))

    def lift_ban(self, ip: str = "127.0.0.1") -> bool:
        """End ``ip``'s ban now."""
        return self._run(self._ops.lift_ban(ip))

    def server_shutdown(self) -> int:
        """Send ``serverShutdown`` to WS API connections."""
        return self._run(self._ops.server_shutdown())

    def subscriptions(self) -> int:
        """Active user-data subscriptions."""
        return self._run(self._ops.subscriptions())

    def wait_subscriptions(self, n: int, within_s: float = 10.0) -> bool:  # float-ok: seconds
        """Block until exactly ``n`` user-data subscriptions are active; False after ``within_s``."""
        return asyncio.run_coroutine_threadsafe(self._ops.wait_subscriptions(n, within_s), self._loop).result(
            within_s + 5
        )
