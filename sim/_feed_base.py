"""Building blocks of the price feeds: quote and status types, the sink and feed protocols, errors and backoff.

Also the parsing of a venue's bookTicker answers. ``sim._feed`` holds the feeds themselves and re-exports these.
"""

from __future__ import annotations

import inspect
import random
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Protocol, runtime_checkable

import orjson

__all__ = [
    "Backoff",
    "FeedError",
    "FeedStatus",
    "PriceFeed",
    "Quote",
    "QuoteSink",
    "SizedQuoteSink",
    "parse_book_tickers",
    "parse_qty",
    "takes_sizes",
]


@dataclass(frozen=True)
class Quote:
    """Best bid and ask of one symbol, and the venue's quantity at each (None where the venue did not say)."""

    bid: Decimal
    ask: Decimal
    bid_qty: Decimal | None = None
    ask_qty: Decimal | None = None

    @property
    def prices(self) -> tuple[Decimal, Decimal]:
        """``(bid, ask)`` without the quantities."""
        return self.bid, self.ask


class QuoteSink(Protocol):
    """Where a feed puts prices (the simulator's book; called on the simulator's loop)."""

    def set_quote(self, symbol: str, bid: Decimal, ask: Decimal) -> None:
        """Put the top of ``symbol``'s book at ``bid`` / ``ask`` and match resting orders against it."""
        ...


class SizedQuoteSink(Protocol):
    """A sink that also takes the venue's quantities at the best bid / ask (bookTicker ``B`` / ``A``).

    A feed passes the quantities, and quantity-only changes, to a sink whose ``set_quote`` accepts ``bid_qty`` and
    ``ask_qty`` (`takes_sizes`); a plain `QuoteSink` gets the prices only, and only when they change.
    """

    def set_quote(
        self, symbol: str, bid: Decimal, ask: Decimal, *, bid_qty: Decimal | None = None, ask_qty: Decimal | None = None
    ) -> None:
        """Put the top of ``symbol``'s book at ``bid`` / ``ask`` with the venue's quantities there."""
        ...


def takes_sizes(sink: object) -> bool:
    """Whether ``sink.set_quote`` accepts ``bid_qty`` and ``ask_qty`` keywords (a `SizedQuoteSink`)."""
    set_quote = getattr(sink, "set_quote", None)
    if set_quote is None:
        return False
    try:
        params = inspect.signature(set_quote).parameters
    except (TypeError, ValueError):  # not callable, or no signature to read
        return False
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return True
    keyword = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return all(name in params and params[name].kind in keyword for name in ("bid_qty", "ask_qty"))


@runtime_checkable
class PriceFeed(Protocol):
    """Drives the simulator's book from outside; ``run`` lives on the simulator's loop until cancelled."""

    async def run(self, sink: QuoteSink) -> None:
        """Push quotes into ``sink`` until cancelled; report failures instead of raising them."""
        ...


class FeedError(Exception):
    """The venue answered something unusable (HTTP error, malformed body, unknown symbol) or was unreachable."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:  # float-ok: seconds
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class FeedStatus:
    """What the feed knows, for health reporting and tests.

    Attributes:
        fresh: A price was observed within ``stale_after_s`` (False = the paper book is frozen).
        connected: The stream is open (ws), or the last poll answered (rest).
        quotes: The last quote per symbol (with the venue's quantities).
        last_ok_ms: Wall-clock time of the last observation, or None.
        updates: Quotes pushed into the book (only changes count: of the prices, or of the quantities too for a
            sink that takes them).
        errors: Failures so far (each one logged).
        connects: Stream connections opened.
        last_error: The last failure's text.
    """

    fresh: bool = False
    connected: bool = False
    quotes: Mapping[str, Quote] = field(default_factory=dict)
    last_ok_ms: int | None = None
    updates: int = 0
    errors: int = 0
    connects: int = 0
    last_error: str | None = None


class Backoff:
    """Exponential backoff with jitter: the n-th delay is in [d/2, d] with d = min(max, initial·2ⁿ)."""

    def __init__(
        self,
        initial_s: float,  # float-ok: seconds
        max_s: float,  # float-ok: seconds
        rng: random.Random | None = None,
    ) -> None:
        if initial_s <= 0 or max_s < initial_s:
            raise ValueError("backoff needs 0 < initial_s <= max_s")
        self._initial = initial_s
        self._max = max_s
        self._rng = rng or random.Random()
        self._n = 0

    def next(self) -> float:  # float-ok: seconds
        """The next delay (grows until `reset`)."""
        ceiling = min(self._max, self._initial * 2 ** min(self._n, 30))
        self._n += 1
        return ceiling * (0.5 + self._rng.random() / 2)

    def reset(self) -> None:
        """Start again from the initial delay (after a success)."""
        self._n = 0


# ---------------------------------------------------------------------------------------------- parsing
def _symbols_query(symbols: Sequence[str]) -> str:
    # Binance wants the JSON array without spaces: symbols=["BTCUSDT","ETHUSDT"], percent-encoded.
    return "symbols=" + urllib.parse.quote(orjson.dumps(list(symbols)).decode(), safe="")


def _http_error(what: str, status: int, body: bytes, retry_after: str | None) -> FeedError:
    detail = body[:200].decode("utf-8", errors="replace")
    try:
        parsed = orjson.loads(body)
        if isinstance(parsed, dict) and "msg" in parsed:
            detail = f"{parsed.get('code')} {parsed['msg']}"
    except orjson.JSONDecodeError:
        pass
    retry = None
    if retry_after:
        try:
            retry = float(retry_after)  # float-ok: seconds
        except ValueError:
            retry = None
    return FeedError(f"{what} answered HTTP {status}: {detail}", retry)


def _price(value: object, what: str) -> Decimal:
    try:
        out = Decimal(str(value))
    except InvalidOperation:
        raise FeedError(f"{what} is not a number: {value!r}") from None
    if not out.is_finite() or out < 0:
        raise FeedError(f"{what} is not a usable price: {value!r}")
    return out


def parse_qty(value: object, what: str) -> Decimal | None:
    """A venue's quantity field (bookTicker ``bidQty``, ``B`` …) as a Decimal; None when the field is absent."""
    if value is None:
        return None
    try:
        out = Decimal(str(value))
    except InvalidOperation:
        raise FeedError(f"{what} is not a number: {value!r}") from None
    if not out.is_finite() or out < 0:
        raise FeedError(f"{what} is not a usable quantity: {value!r}")
    return out


def parse_book_tickers(body: bytes, symbols: Sequence[str]) -> dict[str, Quote]:
    """Quotes from a ``GET /api/v3/ticker/bookTicker`` body (one object or a list); empty sides are skipped.

    ``bidQty`` / ``askQty`` become the quote's quantities (None if the venue leaves them out).
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise FeedError("bookTicker answered with a body that is not JSON") from None
    items = data if isinstance(data, list) else [data]
    out: dict[str, Quote] = {}
    for item in items:
        if not isinstance(item, dict) or item.get("symbol") not in symbols:
            continue
        sym = str(item["symbol"])
        bid = _price(item.get("bidPrice"), f"{sym} bidPrice")
        ask = _price(item.get("askPrice"), f"{sym} askPrice")
        if bid > 0 and ask > 0:
            bid_qty = parse_qty(item.get("bidQty"), f"{sym} bidQty")
            out[sym] = Quote(bid, ask, bid_qty, parse_qty(item.get("askQty"), f"{sym} askQty"))
    return out
