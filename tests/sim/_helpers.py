"""Shared helpers for the simulator tests (not collected)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

from sim import SimConfig, Simulator
from sim._exchange import Exchange

NOW = 1_767_225_600_000
LEAN = {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False}


def exchange(**kw: Any) -> Exchange:
    """A pure exchange with the market mover's randomness seeded."""
    return Exchange(SimConfig(**kw))


def order(ex: Exchange, account: str = "main", **params: str) -> Any:
    """Place an order with string params on the pure exchange."""
    return ex.place_order(ex.accounts[account], params, NOW)


def point_ccxt(client: Any, rest: str) -> None:
    """Rewrite every ccxt API URL to the simulator (binance-spot.md §1.1)."""
    for key, value in list(client.urls["api"].items()):
        if isinstance(value, str):
            client.urls["api"][key] = rest + urlparse(value).path


def make_ccxt(sim: Simulator, account: int = 0, lean: bool = True, module: Any = None) -> Any:
    """A real ccxt binance client pointed at ``sim``."""
    import ccxt

    mod = module or ccxt
    acc = sim.accounts[account]
    client = mod.binance(
        {
            "apiKey": acc.api_key,
            "secret": acc.secret,
            "enableRateLimit": False,
            "options": dict(LEAN) if lean else {},
        }
    )
    point_ccxt(client, sim.urls.rest)
    return client


@contextmanager
def running(**kw: Any) -> Iterator[Simulator]:
    """A started simulator with ``SimConfig(**kw)``."""
    with Simulator(SimConfig(**kw)) as sim:
        yield sim


def dec(value: object) -> Decimal:
    """Decimal from a Binance string."""
    return Decimal(str(value))
