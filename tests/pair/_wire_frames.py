"""Binance-shaped execution reports fed through the real parser into the pure pair book (tests)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from engine.exchange import ExecutionReport, parse_user_data
from tests.pair._book_helpers import T0, Harness, order_json, request


def frame(
    c: str,
    x: str,
    X: str,
    oid: int,
    *,
    C: str = "",
    q: str = "0.01",
    z: str = "0",
    l: str = "0",  # noqa: E741 - Binance's field name
    L: str = "0",
    t: int = -1,
    n: str = "0",
    N: Any = None,
    Z: str | None = None,
    Y: str | None = None,
    E: int = T0 + 50,
    side: str = "BUY",
    o: str = "LIMIT",
    p: str = "60000",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "e": "executionReport",
        "E": E,
        "s": "BTCUSDT",
        "c": c,
        "S": side,
        "o": o,
        "f": "GTC",
        "q": q,
        "p": p,
        "P": "0.00000000",
        "F": "0.00000000",
        "g": -1,
        "C": C,
        "x": x,
        "X": X,
        "r": "NONE",
        "i": oid,
        "l": l,
        "z": z,
        "L": L,
        "n": n,
        "N": N,
        "T": E,
        "t": t,
        "I": 1,
        "w": X in ("NEW", "PARTIALLY_FILLED"),
        "m": True,
        "M": True,
        "O": T0,
        "Z": Z if Z is not None else str(Decimal(z) * Decimal(L if Decimal(L) > 0 else p)),
        "Y": Y if Y is not None else str(Decimal(l) * Decimal(L)),
        "Q": "0.00000000",
        "W": T0,
        "V": "EXPIRE_MAKER",
        **extra,
    }


def report(wrapped: bool = True, **kw: Any) -> ExecutionReport:
    f = frame(**kw)
    raw = orjson.dumps({"subscriptionId": 0, "event": f} if wrapped else f)
    r = parse_user_data(raw)
    assert isinstance(r, ExecutionReport), r
    return r


def placed(h: Harness, amount: str = "0.01", price: str | None = "60000", **kw: Any) -> tuple[Any, str, int]:
    req = request(amount, price, **kw)
    h.place(req)
    create = h.sent[-1]
    answer = order_json(create, "NEW")
    h.answer(answer)
    return req, create.params["newClientOrderId"], int(answer["orderId"])
