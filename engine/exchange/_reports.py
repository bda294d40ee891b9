"""Parsing raw user-data frames into frozen typed reports (binance-spot.md §6–7).

Frames come wrapped on the WS API (`{"subscriptionId":n,"event":{…}}`), unwrapped on Binance.US listenKey
streams, without a subscription id for `serverShutdown`, and as request responses (`{"id","status",…}`),
which UBWA also delivers. `parse_user_data` accepts bytes or str and returns one report, or raises
`BadFrame` — the only exception it raises, whatever the input — with a short, safe excerpt.

Money fields are parsed from Binance's decimal strings into `Decimal`, never through float; none may be
negative, and a TRADE's price and quantity must be positive (a fill the engine could not store is a bad frame,
not a report). The report types and `BadFrame` are in `_report_types`, re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from engine.domain import ClientOrderId, ExchangeOrderId, Side, Symbol, TradeId
from engine.exchange._report_types import (
    AccountPosition,
    ApiResponse,
    BadFrame,
    BalanceEntry,
    BalanceUpdate,
    ExchangeOrderStatus,
    ExecutionReport,
    ExecutionType,
    ServerShutdown,
    StreamTerminated,
    UnknownEvent,
    UserDataReport,
)

__all__ = [
    "AccountPosition",
    "ApiResponse",
    "BadFrame",
    "BalanceEntry",
    "BalanceUpdate",
    "ExchangeOrderStatus",
    "ExecutionReport",
    "ExecutionType",
    "ServerShutdown",
    "StreamTerminated",
    "UnknownEvent",
    "UserDataReport",
    "parse_user_data",
]


class _Fields:
    """Typed getters over one event dict; every failure becomes a `BadFrame`."""

    __slots__ = ("data", "raw")

    def __init__(self, data: Mapping[str, Any], raw: bytes | str) -> None:
        self.data = data
        self.raw = raw

    def bad(self, reason: str) -> BadFrame:
        return BadFrame(reason, self.raw)

    def int_(self, key: str) -> int:
        value = self.data.get(key)
        if type(value) is not int:
            raise self.bad(f"field {key!r} must be an integer, got {type(value).__name__}")
        return value

    def str_(self, key: str) -> str:
        value = self.data.get(key)
        if not isinstance(value, str):
            raise self.bad(f"field {key!r} must be a string, got {type(value).__name__}")
        return value

    def opt_str(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self.bad(f"field {key!r} must be a string or null")
        return value

    def bool_(self, key: str) -> bool:
        value = self.data.get(key)
        if not isinstance(value, bool):
            raise self.bad(f"field {key!r} must be a boolean")
        return value

    def dec(self, key: str, *, signed: bool = False) -> Decimal:
        text = self.str_(key)
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise self.bad(f"field {key!r} is not a decimal: {text[:30]!r}") from None
        if not value.is_finite() or (value < 0 and not signed) or abs(value.adjusted()) > 30:
            raise self.bad(f"field {key!r} is out of range: {text[:30]!r}")
        return value


def _execution_report(f: _Fields, subscription_id: int | None) -> ExecutionReport:
    try:
        side = Side(f.str_("S").lower())
        execution_type = ExecutionType(f.str_("x"))
        status = ExchangeOrderStatus(f.str_("X"))
    except ValueError as exc:
        if isinstance(exc, BadFrame):
            raise
        raise f.bad(f"unknown enum value: {exc}") from None
    trade_id = f.int_("t")
    orig = f.opt_str("C")
    last_qty, last_price = f.dec("l"), f.dec("L")
    if execution_type is ExecutionType.TRADE:
        # A trade has a price and a quantity; with either at zero its fill could not be stored, and the pair
        # actor that applied it would fail on it at every restart. Reconciliation finds the order's real fills.
        if last_price <= 0:
            raise f.bad(f"field 'L' must be > 0 on a trade: {f.str_('L')[:30]!r}")
        if last_qty <= 0:
            raise f.bad(f"field 'l' must be > 0 on a trade: {f.str_('l')[:30]!r}")
    return ExecutionReport(
        event_time_ms=f.int_("E"),
        symbol=Symbol(f.str_("s")),
        client_order_id=ClientOrderId(f.str_("c")),
        orig_client_order_id=ClientOrderId(orig) if orig else None,
        side=side,
        order_type=f.str_("o"),
        time_in_force=f.str_("f"),
        quantity=f.dec("q"),
        price=f.dec("p"),
        execution_type=execution_type,
        order_status=status,
        reject_reason=f.str_("r"),
        order_id=ExchangeOrderId(f.int_("i")),
        last_qty=last_qty,
        cum_qty=f.dec("z"),
        last_price=last_price,
        commission=f.dec("n"),
        commission_asset=f.opt_str("N"),
        transaction_time_ms=f.int_("T"),
        trade_id=None if trade_id < 0 else TradeId(trade_id),
        is_maker=f.bool_("m"),
        cum_quote=f.dec("Z"),
        last_quote=f.dec("Y"),
        is_working=f.bool_("w"),
        creation_time_ms=f.int_("O"),
        expiry_reason=f.opt_str("eR"),
        subscription_id=subscription_id,
    )


def _account_position(f: _Fields) -> AccountPosition:
    entries = f.data.get("B")
    if not isinstance(entries, list):
        raise f.bad("field 'B' must be a list")
    balances = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise f.bad("balance entries must be objects")
        e = _Fields(entry, f.raw)
        balances.append(BalanceEntry(e.str_("a"), e.dec("f"), e.dec("l")))
    return AccountPosition(f.int_("E"), f.int_("u"), tuple(balances))


_DEC_KEYS = ("q", "p", "l", "z", "L", "n", "Z", "Y")
_SIDES = {"BUY": Side.BUY, "SELL": Side.SELL}
_EXEC_TYPES = {m.value: m for m in ExecutionType}
_STATUSES = {m.value: m for m in ExchangeOrderStatus}


def _execution_report_fast(e: Mapping[str, Any], subscription_id: int | None) -> ExecutionReport | None:
    """The hot path for well-formed reports (every fill goes through here); None sends it to the checked path.

    Same result as `_execution_report` for valid input: strict types (a bool is not a number, a number is not
    a decimal string), finite non-negative decimals, a positive price and quantity on a trade; anything irregular
    falls back so the error is precise.
    """
    try:
        d = [e[k] for k in _DEC_KEYS]
        if any(type(x) is not str for x in d):
            return None
        q, p, lq, z, lp, n, zq, yq = (Decimal(x) for x in d)
        ints = (e["E"], e["i"], e["T"], e["t"], e["O"])
        if any(type(x) is not int for x in ints):
            return None
        strs = (e["s"], e["c"], e["o"], e["f"], e["r"])
        if any(type(x) is not str for x in strs):
            return None
        m, w = e["m"], e["w"]
        if type(m) is not bool or type(w) is not bool:
            return None
        side, xtype, status = _SIDES[e["S"]], _EXEC_TYPES[e["x"]], _STATUSES[e["X"]]
        orig, asset, expiry = e.get("C"), e.get("N"), e.get("eR")
    except (KeyError, TypeError, InvalidOperation):
        return None
    if any(not v.is_finite() or v < 0 or abs(v.adjusted()) > 30 for v in (q, p, lq, z, lp, n, zq, yq)):
        return None
    if xtype is ExecutionType.TRADE and (lp <= 0 or lq <= 0):
        return None  # a trade without a price or a quantity: the checked path refuses it
    if any(v is not None and type(v) is not str for v in (orig, asset, expiry)):
        return None
    event_time, order_id, tx_time, trade_id, created = ints
    return ExecutionReport(
        event_time_ms=event_time,
        symbol=Symbol(strs[0]),
        client_order_id=ClientOrderId(strs[1]),
        orig_client_order_id=ClientOrderId(orig) if orig else None,
        side=side,
        order_type=strs[2],
        time_in_force=strs[3],
        quantity=q,
        price=p,
        execution_type=xtype,
        order_status=status,
        reject_reason=strs[4],
        order_id=ExchangeOrderId(order_id),
        last_qty=lq,
        cum_qty=z,
        last_price=lp,
        commission=n,
        commission_asset=asset or None,
        transaction_time_ms=tx_time,
        trade_id=None if trade_id < 0 else TradeId(trade_id),
        is_maker=m,
        cum_quote=zq,
        last_quote=yq,
        is_working=w,
        creation_time_ms=created,
        expiry_reason=expiry or None,
        subscription_id=subscription_id,
    )


def _event(event: Mapping[str, Any], subscription_id: int | None, raw: bytes | str) -> UserDataReport:
    if event.get("e") == "executionReport":
        fast = _execution_report_fast(event, subscription_id)
        if fast is not None:
            return fast
    f = _Fields(event, raw)
    kind = f.str_("e")
    if kind == "executionReport":
        return _execution_report(f, subscription_id)
    if kind == "outboundAccountPosition":
        return _account_position(f)
    if kind == "balanceUpdate":
        return BalanceUpdate(f.int_("E"), f.str_("a"), f.dec("d", signed=True), f.int_("T"))
    if kind == "eventStreamTerminated":
        return StreamTerminated(f.int_("E"), subscription_id)
    if kind == "serverShutdown":
        return ServerShutdown(f.int_("E"))
    when = event.get("E")
    return UnknownEvent(kind, when if type(when) is int else None)


def _api_response(frame: Mapping[str, Any], raw: bytes | str) -> ApiResponse:
    f = _Fields(frame, raw)
    status = f.int_("status")
    request_id = frame.get("id")
    error = frame.get("error")
    code: int | None = None
    message: str | None = None
    if isinstance(error, dict):
        e = _Fields(error, raw)
        code = e.int_("code") if "code" in error else None
        message = e.opt_str("msg")
    return ApiResponse(None if request_id is None else str(request_id)[:64], status, code, message)


def parse_user_data(raw: bytes | str) -> UserDataReport:
    """Parse one user-data frame (wrapped or not) into a typed report.

    Raises:
        BadFrame: for anything that is not a well-formed frame; never any other exception.
    """
    try:
        frame = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
        raise BadFrame(f"not JSON ({type(exc).__name__})", raw if isinstance(raw, bytes | str) else b"") from None
    if not isinstance(frame, dict):
        raise BadFrame("not a JSON object", raw)
    if "status" in frame and "id" in frame and "e" not in frame:
        return _api_response(frame, raw)
    if "event" in frame:
        event = frame["event"]
        sub = frame.get("subscriptionId")
        if not isinstance(event, dict):
            raise BadFrame("'event' must be an object", raw)
        if sub is not None and type(sub) is not int:
            raise BadFrame("'subscriptionId' must be an integer", raw)
        return _event(event, sub, raw)
    if "e" in frame:
        return _event(frame, None, raw)  # Binance.US listenKey streams send events unwrapped
    raise BadFrame("neither an event nor a response", raw)
