"""Shared helpers for the pure pair book tests: symbol rules, Binance-shaped responses, the harness (not collected)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from engine.domain import Fill, OrderRequest, Pair, RequestId, Side, Trade
from engine.execution import ExecutionConfig, RiskManager, SlippageAction, SymbolRules
from engine.gateway import GatewayRequest, GatewayResult
from engine.pair import (
    CancelAhead,
    Command,
    Emit,
    IntakeContext,
    PairBook,
    PairSettings,
    Persist,
    Resolve,
    Schedule,
    Send,
    WriteAhead,
)

PAIR = Pair("BTC/USDT")
T0 = 1_767_225_600_000
RULES = SymbolRules.from_exchange_info(
    {
        "symbol": "BTCUSDT",
        "status": "TRADING",
        "baseAsset": "BTC",
        "quoteAsset": "USDT",
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"},
            {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000", "stepSize": "0.00001"},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0", "maxQty": "100", "stepSize": "0"},
            {
                "filterType": "NOTIONAL",
                "minNotional": "5",
                "applyMinToMarket": True,
                "maxNotional": "9000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
    }
)
_ids = itertools.count(1)
_trade_ids = itertools.count(1000)


def request(
    amount: str = "0.01", price: str | None = "60000", side: Side = Side.BUY, key: str | None = None, **kw: Any
) -> OrderRequest:
    n = next(_ids)
    return OrderRequest(
        request_id=RequestId(f"r{n}"),
        pair=PAIR,
        side=side,
        amount=Decimal(amount),
        price=Decimal(price) if price else None,
        idempotency_key=key or f"key-{n}",
        created_at=datetime.fromtimestamp(T0 / 1000, tz=UTC),
        **kw,
    )


def order_json(
    req: GatewayRequest,
    status: str,
    executed: str = "0",
    fills: Sequence[tuple[str, str]] = (),
    cancel: bool = False,
) -> dict[str, Any]:
    p = req.params
    cid = p.get("newClientOrderId") or p.get("origClientOrderId") or req.key  # by order id: the key names it
    fill_rows = [
        {"price": price, "qty": qty, "commission": "0", "commissionAsset": "BNB", "tradeId": next(_trade_ids)}
        for price, qty in fills
    ]
    quote = sum((Decimal(a) * Decimal(b) for a, b in fills), Decimal(0))
    data = {
        "symbol": "BTCUSDT",
        "orderId": abs(hash(cid)) % 10**9,
        "orderListId": -1,
        "clientOrderId": "cancel-1" if cancel else cid,
        "transactTime": T0 + 5,
        "price": p.get("price", "0"),
        "origQty": p.get("quantity", "0.01"),
        "executedQty": executed,
        "cummulativeQuoteQty": str(quote),
        "status": status,
        "timeInForce": p.get("timeInForce", "GTC"),
        "type": p.get("type", "LIMIT"),
        "side": p.get("side", "BUY"),
        "fills": fill_rows,
    }
    if cancel:
        data["origClientOrderId"] = cid
    return data


_PLAN_KNOBS = {"limit_timeout_ms", "fallback", "max_slippage", "slippage_action", "price_source"}


class Harness:
    """Runs the book's commands the way the actor does, recording what matters."""

    def __init__(self, risk: RiskManager | None = None, **settings: Any) -> None:
        plan = {k: settings.pop(k) for k in list(settings) if k in _PLAN_KNOBS}
        execution = ExecutionConfig(**{"max_slippage": Decimal("0.005"), "slippage_action": SlippageAction.CAP, **plan})
        self.book = PairBook(PAIR, RULES, PairSettings(execution=execution, **settings), risk=risk)
        self.now = T0
        self.sent: list[GatewayRequest] = []
        self.stored: list[Any] = []
        self.outcomes: dict[RequestId, list[Any]] = {}
        self.events: list[Any] = []
        self.timers: dict[str, int] = {}
        self.book.on_price(Decimal("59990"), Decimal("60010"), self.now)

    def run(self, commands: list[Command]) -> None:
        for cmd in commands:
            if isinstance(cmd, WriteAhead):
                self.stored.append(cmd.order)  # durable, then the create leaves
                self.sent.append(cmd.send)
            elif isinstance(cmd, CancelAhead):
                self.stored.append(cmd.record)  # stored (or failed to be), then the cancel leaves
                self.sent.append(cmd.send)
            elif isinstance(cmd, Send):
                self.sent.append(cmd.request)
            elif isinstance(cmd, Persist):
                self.stored.append(cmd.item)
            elif isinstance(cmd, Resolve):
                self.outcomes.setdefault(cmd.request_id, []).append(cmd.outcome)
            elif isinstance(cmd, Emit):
                self.events.append(cmd.event)
            elif isinstance(cmd, Schedule):
                self.timers[cmd.key] = cmd.due_ms

    def place(self, req: OrderRequest, ctx: IntakeContext | None = None) -> Any:
        self.run(self.book.place(req, self.now, ctx or IntakeContext()))
        return self.outcomes.get(req.request_id, [None])[-1]

    def answer(self, data: Any = None, error: Any = None, index: int = -1) -> None:
        self.run(self.book.on_result(GatewayResult(self.sent[index], data=data, error=error), self.now))

    def scan(self, rows: Sequence[Any] = ()) -> None:
        """The open-orders scan a round (or the start) makes, answered with `rows` (`on_open_orders`, reconcile)."""
        from engine.gateway import Op

        result = GatewayResult(GatewayRequest(Op.OPEN_ORDERS, {"symbol": "BTCUSDT"}), data=list(rows))
        self.run(self.book.on_open_orders(result, self.now, reconcile=True))

    def fire(self, key: str) -> None:
        self.now = max(self.now, self.timers.pop(key))
        self.run(self.book.on_timer(key, self.now))

    def trades(self) -> list[Trade]:
        return [s for s in self.stored if isinstance(s, Trade)]

    def fills(self) -> list[Fill]:
        return [s for s in self.stored if isinstance(s, Fill)]
