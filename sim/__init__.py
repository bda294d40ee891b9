"""Wire-level Binance Spot simulator: REST, WS API, market streams, matching and fault injection.

Usage from synchronous code::

    from sim import SimConfig, Simulator

    with Simulator(SimConfig(seed=7)) as sim:
        sim.urls.rest      # "http://127.0.0.1:<port>"   (REST, also /_sim/<op> control over HTTP)
        sim.urls.ws_api    # "ws://127.0.0.1:<port>/ws-api/v3"
        sim.urls.stream    # "ws://127.0.0.1:<port>/"    (/ws/<stream>, /stream?streams=…)
        key, secret = sim.accounts[0].api_key, sim.accounts[0].secret
        sim.control.set_price("BTCUSDT", "60000")
        sim.control.add_fault({"kind": "http_error", "target": "POST /api/v3/order", "count": 1})
        sim.control.ledger()  # orders, trades, balances, fault log

The pure core (``Exchange``, filters, balances, price process, rate limiter, fault schedule, signature
verification) has no I/O and can be used directly, e.g. as the paper-trading engine of dry-run mode with an
``ExternalPriceSource`` fed with real prices. ``Simulator(price_feed=PublicPriceFeed(...))`` drives the book
from a real venue's public bid/ask instead of the random walk (dry-run paper trading), with the venue's
exchangeInfo filters copied into ``SimConfig.symbol_info`` (``PublicMarket.fetch``).
"""

from sim._config import AccountSpec, RateLimitConfig, SimConfig
from sim._control import Control, ControlOps
from sim._core import Clock, wall_clock_ms
from sim._errors import SimError
from sim._exchange import Exchange
from sim._faults import FaultSchedule, FaultSpec
from sim._feed import (
    Backoff,
    FeedError,
    FeedStatus,
    PriceFeed,
    PublicMarket,
    PublicPriceFeed,
    Quote,
    QuoteSink,
)
from sim._price import ExternalPriceSource, PriceSource, RandomWalkPriceSource
from sim._server import Simulator, SimUrls
from sim._symbols import SymbolSpec, make_symbol_spec

__all__ = [
    "AccountSpec",
    "Backoff",
    "Clock",
    "Control",
    "ControlOps",
    "Exchange",
    "ExternalPriceSource",
    "FaultSchedule",
    "FaultSpec",
    "FeedError",
    "FeedStatus",
    "PriceFeed",
    "PriceSource",
    "PublicMarket",
    "PublicPriceFeed",
    "Quote",
    "QuoteSink",
    "RandomWalkPriceSource",
    "RateLimitConfig",
    "SimConfig",
    "SimError",
    "SimUrls",
    "Simulator",
    "SymbolSpec",
    "make_symbol_spec",
    "wall_clock_ms",
]
