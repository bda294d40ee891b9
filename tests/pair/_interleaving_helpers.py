"""The exchange model behind tests/pair/test_report_interleavings.py: the exchange's truth about each order
(its trades, its status, the execution reports it produced and which of them the book has heard), that truth as
REST answers, the symbol's rules, and a driver that carries out the pure pair book's commands the way the pair
actor does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from engine.api import EngineEvent
from engine.domain import Fill, OrderRequest, Pair, RequestId, Side, Trade
from engine.execution import ExecutionConfig, SymbolRules
from engine.gateway import GatewayRequest
from engine.pair import (
    Alert,
    CancelAhead,
    Emit,
    IntakeContext,
    PairBook,
    PairSettings,
    Persist,
    Schedule,
    Send,
    Unschedule,
    WriteAhead,
)

T0 = 1_767_225_600_000
PAIR = Pair("BTC/USDT")
STEP = Decimal("0.00001")
PRICE = Decimal(60000)
SYMBOL = "BTCUSDT"


def _f(value: Decimal) -> str:
    return format(value, "f")


@dataclass
class TruthTrade:
    trade_id: int
    qty: Decimal
    time_ms: int


@dataclass
class TruthOrder:
    """One order as the exchange knows it."""

    cid: str
    order_id: int
    amount: Decimal
    price: Decimal
    created_ms: int
    status: str = "NEW"
    trades: list[TruthTrade] = field(default_factory=list)
    pending: list[bytes] = field(default_factory=list)
    """Reports produced but not yet delivered to the book (the stream's in-flight frames)."""
    delivered: list[bytes] = field(default_factory=list)
    lagging_answers: int = 0

    @property
    def cum(self) -> Decimal:
        return sum((t.qty for t in self.trades), Decimal(0))

    @property
    def open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")

    def report(
        self,
        now: int,
        x: str,
        trade: TruthTrade | None = None,
        cancel_id: str | None = None,
        cum: Decimal | None = None,
    ) -> bytes:
        cum = self.cum if cum is None else cum
        last = trade.qty if trade else Decimal(0)
        event = {
            "e": "executionReport",
            "E": now,
            "s": SYMBOL,
            "c": cancel_id or self.cid,
            "S": "BUY",
            "o": "LIMIT",
            "f": "GTC",
            "q": _f(self.amount),
            "p": _f(self.price),
            "P": "0.00000000",
            "F": "0.00000000",
            "g": -1,
            "C": self.cid if cancel_id else "",
            "x": x,
            "X": self.status,
            "r": "NONE",
            "i": self.order_id,
            "l": _f(last),
            "z": _f(cum),
            "L": _f(self.price if trade else Decimal(0)),
            "n": _f(last * Decimal("0.001")),
            "N": "BTC" if trade else None,
            "T": trade.time_ms if trade else now,
            "t": trade.trade_id if trade else -1,
            "I": 1,
            "w": self.open,
            "m": True,
            "M": True,
            "O": self.created_ms,
            "Z": _f(cum * self.price),
            "Y": _f(last * self.price),
            "Q": "0.00000000",
            "W": self.created_ms,
            "V": "EXPIRE_MAKER",
        }
        return orjson.dumps({"subscriptionId": 1, "event": event})

    def rest_json(self, *, cancel_id: str | None = None, now: int = 0) -> dict[str, Any]:
        data: dict[str, Any] = {
            "symbol": SYMBOL,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": cancel_id or self.cid,
            "price": _f(self.price),
            "origQty": _f(self.amount),
            "executedQty": _f(self.cum),
            "cummulativeQuoteQty": _f(self.cum * self.price),
            "status": self.status,
            "timeInForce": "GTC",
            "type": "LIMIT",
            "side": "BUY",
        }
        if cancel_id:
            data["origClientOrderId"] = self.cid
            data["transactTime"] = now
        else:
            data |= {"time": self.created_ms, "updateTime": now, "isWorking": True, "workingTime": self.created_ms}
        return data

    def my_trades(self, upto: int | None = None) -> list[dict[str, Any]]:
        return [
            {
                "symbol": SYMBOL,
                "id": t.trade_id,
                "orderId": self.order_id,
                "orderListId": -1,
                "price": _f(self.price),
                "qty": _f(t.qty),
                "quoteQty": _f(t.qty * self.price),
                "commission": _f(t.qty * Decimal("0.001")),
                "commissionAsset": "BTC",
                "time": t.time_ms,
                "isBuyer": True,
                "isMaker": True,
                "isBestMatch": True,
            }
            for t in self.trades[:upto]
        ]


RULES = SymbolRules.from_exchange_info(
    {
        "symbol": SYMBOL,
        "status": "TRADING",
        "baseAsset": "BTC",
        "quoteAsset": "USDT",
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"},
            {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000", "stepSize": "0.00001"},
            {"filterType": "NOTIONAL", "minNotional": "1", "applyMinToMarket": True, "maxNotional": "9000000",
             "applyMaxToMarket": False, "avgPriceMins": 5},
        ],
    }
)  # fmt: skip


class Driver:
    """Carries out the book's commands the way the pair actor does, recording what matters (no threads)."""

    def __init__(self, **execution: Any) -> None:
        config = ExecutionConfig(**execution)
        self.book = PairBook(PAIR, RULES, PairSettings(execution=config, conflict_policy="queue"))
        self.now = T0
        self.sent: list[GatewayRequest] = []
        self.stored: list[Any] = []
        self.events: list[EngineEvent] = []
        self.alerts: list[Alert] = []
        self.timers: dict[str, int] = {}
        self.run(self.book.on_price(PRICE - 10, PRICE + 10, self.now))

    def run(self, commands: list[Any]) -> None:
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
            elif isinstance(cmd, Emit):
                self.events.append(cmd.event)
            elif isinstance(cmd, Schedule):
                self.timers[cmd.key] = cmd.due_ms
            elif isinstance(cmd, Unschedule):
                self.timers.pop(cmd.key, None)
            elif isinstance(cmd, Alert):
                self.alerts.append(cmd)
            # Resolve (the caller's answer) and anything newer need nothing here.

    def place(self, req: OrderRequest) -> None:
        self.run(self.book.place(req, self.now, IntakeContext()))

    def fire(self, key: str) -> None:
        self.now = max(self.now, self.timers.pop(key))
        self.run(self.book.on_timer(key, self.now))

    def trades(self) -> list[Trade]:
        return [s for s in self.stored if isinstance(s, Trade)]

    def fills(self) -> list[Fill]:
        return [s for s in self.stored if isinstance(s, Fill)]


def request(units: int, n: int) -> OrderRequest:
    return OrderRequest(
        request_id=RequestId(f"r{n}"),
        pair=PAIR,
        side=Side.BUY,
        amount=units * STEP,
        price=PRICE,
        idempotency_key=f"interleave-{n}",
        created_at=datetime.fromtimestamp(T0 / 1000, tz=UTC),
    )
