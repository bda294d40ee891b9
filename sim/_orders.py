"""Order and trade records and their Binance JSON shapes (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sim._errors import fmt

__all__ = ["Order", "Trade"]

ZERO = Decimal(0)
FINAL_STATUSES = frozenset({"FILLED", "CANCELED", "EXPIRED", "REJECTED", "EXPIRED_IN_MATCH"})
STP_MODE = "EXPIRE_MAKER"


@dataclass
class Trade:
    """One fill of one order."""

    symbol: str
    trade_id: int
    order_id: int
    account: str
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    is_buyer: bool
    is_maker: bool

    def my_trade_json(self) -> dict[str, object]:
        """An element of ``GET /api/v3/myTrades``."""
        return {
            "symbol": self.symbol,
            "id": self.trade_id,
            "orderId": self.order_id,
            "orderListId": -1,
            "price": fmt(self.price),
            "qty": fmt(self.qty),
            "quoteQty": fmt(self.quote_qty),
            "commission": fmt(self.commission),
            "commissionAsset": self.commission_asset,
            "time": self.time,
            "isBuyer": self.is_buyer,
            "isMaker": self.is_maker,
            "isBestMatch": True,
        }

    def fill_json(self) -> dict[str, object]:
        """An element of ``fills`` in a FULL order response."""
        return {
            "price": fmt(self.price),
            "qty": fmt(self.qty),
            "commission": fmt(self.commission),
            "commissionAsset": self.commission_asset,
            "tradeId": self.trade_id,
        }


@dataclass
class Order:
    """A simulated order with its locked funds and state."""

    symbol: str
    order_id: int
    client_order_id: str
    account: str
    side: str
    type: str
    time_in_force: str
    price: Decimal
    orig_qty: Decimal
    quote_order_qty: Decimal
    time: int
    executed_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO
    status: str = "NEW"
    update_time: int = 0
    working_time: int = -1
    lock_asset: str = ""
    locked: Decimal = ZERO
    expiry_reason: str | None = None
    serial: int = 0
    """The simulator's own number of the order, unique over all symbols (order ids are per symbol); not on the wire."""
    visible_from: int = 0
    """Until this time (ms) REST does not show the order (a `visibility_lag` fault); it trades all along."""
    hidden_lookups: int = 0
    """REST lookups naming the order (GET order, a cancel by id, myTrades of its orderId) still to be refused (a
    `visibility_lag` with `lag_lookups`): until they are spent REST shows it nowhere; it trades all along."""
    external: bool = False
    stp_mode: str = STP_MODE
    prevented: dict[str, object] | None = None
    """Set when self-trade prevention expired the order: the executionReport's `v`, `A`, `B`, `U`, `Cs`, `p*`."""

    @property
    def is_open(self) -> bool:
        """True while the order rests on the book."""
        return self.status not in FINAL_STATUSES

    def visible(self, now: int) -> bool:
        """True once REST shows the order (lookups, cancels by id, open and all orders, its trades in myTrades)."""
        return now >= self.visible_from and self.hidden_lookups == 0

    def looked_up(self, now: int) -> bool:
        """`visible`, for a REST request that names the order: a hidden one spends one of its `hidden_lookups`."""
        if now < self.visible_from:
            return False
        if self.hidden_lookups > 0:
            self.hidden_lookups -= 1
            return False
        return True

    @property
    def remaining(self) -> Decimal:
        """Unfilled quantity."""
        return self.orig_qty - self.executed_qty

    def _base(self) -> dict[str, object]:
        return {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
        }

    def _result_fields(self) -> dict[str, object]:
        out: dict[str, object] = {
            "price": fmt(self.price),
            "origQty": fmt(self.orig_qty),
            "executedQty": fmt(self.executed_qty),
            "origQuoteOrderQty": fmt(self.quote_order_qty),
            "cummulativeQuoteQty": fmt(self.cum_quote),
            "status": self.status,
            "timeInForce": self.time_in_force,
            "type": self.type,
            "side": self.side,
        }
        return out

    def new_order_json(self, resp_type: str, fills: list[Trade]) -> dict[str, object]:
        """The ``POST /api/v3/order`` response for ``ACK`` / ``RESULT`` / ``FULL``."""
        out = self._base()
        out["transactTime"] = self.time
        if resp_type == "ACK":
            return out
        out.update(self._result_fields())
        out["workingTime"] = self.working_time if self.working_time >= 0 else self.time
        out["selfTradePreventionMode"] = self.stp_mode
        if self.expiry_reason is not None:
            out["expiryReason"] = self.expiry_reason
        if resp_type == "FULL":
            out["fills"] = [t.fill_json() for t in fills]
        return out

    def query_json(self) -> dict[str, object]:
        """``GET /api/v3/order`` and each element of ``openOrders`` / ``allOrders``."""
        out = self._base()
        out.update(
            {
                "price": fmt(self.price),
                "origQty": fmt(self.orig_qty),
                "executedQty": fmt(self.executed_qty),
                "cummulativeQuoteQty": fmt(self.cum_quote),
                "status": self.status,
                "timeInForce": self.time_in_force,
                "type": self.type,
                "side": self.side,
                "stopPrice": fmt(ZERO),
                "icebergQty": fmt(ZERO),
                "time": self.time,
                "updateTime": self.update_time,
                # No stop orders here, so every order is "working" from its transaction time.
                "isWorking": True,
                "workingTime": self.working_time if self.working_time >= 0 else self.time,
                "origQuoteOrderQty": fmt(self.quote_order_qty),
                "selfTradePreventionMode": self.stp_mode,
            }
        )
        if self.prevented is not None:
            out["preventedMatchId"] = self.prevented["v"]
            out["preventedQuantity"] = self.prevented["A"]
        if self.expiry_reason is not None:
            out["expiryReason"] = self.expiry_reason
        return out

    def cancel_json(self, cancel_client_id: str, now_ms: int) -> dict[str, object]:
        """``DELETE /api/v3/order``: ``clientOrderId`` is the cancel request's id."""
        out: dict[str, object] = {
            "symbol": self.symbol,
            "origClientOrderId": self.client_order_id,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": cancel_client_id,
            "transactTime": now_ms,
        }
        out.update(self._result_fields())
        out["selfTradePreventionMode"] = self.stp_mode
        return out

    def execution_report(
        self,
        exec_type: str,
        now_ms: int,
        execution_id: int,
        trade: Trade | None = None,
        cancel_client_id: str | None = None,
    ) -> dict[str, object]:
        """``executionReport`` with every field of binance-spot.md §7.1 (and ``eR`` when expired)."""
        ev: dict[str, object] = {
            "e": "executionReport",
            "E": now_ms,
            "s": self.symbol,
            "c": cancel_client_id if cancel_client_id is not None else self.client_order_id,
            "S": self.side,
            "o": self.type,
            "f": self.time_in_force,
            "q": fmt(self.orig_qty),
            "p": fmt(self.price),
            "P": fmt(ZERO),
            "F": fmt(ZERO),
            "g": -1,
            "C": self.client_order_id if cancel_client_id is not None else "",
            "x": exec_type,
            "X": self.status,
            "r": "NONE",
            "i": self.order_id,
            "l": fmt(trade.qty if trade else ZERO),
            "z": fmt(self.executed_qty),
            "L": fmt(trade.price if trade else ZERO),
            "n": fmt(trade.commission) if trade else "0",
            "N": trade.commission_asset if trade else None,
            "T": trade.time if trade else now_ms,
            "t": trade.trade_id if trade else -1,
            "I": execution_id,
            "w": self.is_open and self.working_time >= 0,
            "m": trade.is_maker if trade else False,
            "M": trade is not None,
            "O": self.time,
            "Z": fmt(self.cum_quote),
            "Y": fmt(trade.quote_qty if trade else ZERO),
            "Q": fmt(self.quote_order_qty),
            "V": self.stp_mode,
        }
        if exec_type == "TRADE_PREVENTION" and self.prevented is not None:
            ev.update(self.prevented)
        if self.working_time >= 0:
            ev["W"] = self.working_time
        if exec_type == "EXPIRED" and self.expiry_reason is not None:
            ev["eR"] = self.expiry_reason
        return ev
