"""Endpoint sets per venue, and pointing ccxt's URL table at another host (the simulator, a proxy)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["VenueUrls", "production_urls", "rewrite_api_urls"]


@dataclass(frozen=True)
class VenueUrls:
    """Where a venue lives.

    Attributes:
        rest: scheme and host (and port) of the REST API, without a path, e.g. ``https://api.binance.com``.
        ws_api: the full WebSocket API URL (``…/ws-api/v3``); None where the venue has none (binance.us).
        stream: the market-stream base URL ending in ``/``.
    """

    rest: str
    ws_api: str | None
    stream: str | None


_PRODUCTION: dict[tuple[str, bool], VenueUrls] = {
    ("binance", False): VenueUrls(
        "https://api.binance.com", "wss://ws-api.binance.com:443/ws-api/v3", "wss://stream.binance.com:9443/"
    ),
    ("binance", True): VenueUrls(
        "https://testnet.binance.vision",
        "wss://ws-api.testnet.binance.vision/ws-api/v3",
        "wss://stream.testnet.binance.vision/",
    ),
    ("binanceus", False): VenueUrls("https://api.binance.us", None, "wss://stream.binance.us:9443/"),
}


def production_urls(exchange: str, *, testnet: bool = False) -> VenueUrls:
    """The public endpoints of `exchange` ("binance" or "binanceus"); raises ValueError for anything else."""
    try:
        return _PRODUCTION[(exchange, testnet)]
    except KeyError:
        raise ValueError(f"no endpoints known for exchange={exchange!r} testnet={testnet}") from None


def rewrite_api_urls(api: Mapping[str, object], rest_base: str) -> dict[str, object]:
    """Return ccxt's ``urls['api']`` table with every URL moved to `rest_base`, keeping each path.

    ccxt builds request URLs as ``urls['api'][name] + '/' + path``, and binance's table also carries futures,
    options and portfolio-margin hosts; every entry is rewritten so nothing can reach the real venue by accident.
    """
    base = rest_base.rstrip("/")
    out: dict[str, object] = {}
    for name, value in api.items():
        if isinstance(value, str):
            out[name] = base + urlsplit(value).path
        elif isinstance(value, Mapping):
            out[name] = rewrite_api_urls(value, rest_base)
        else:
            out[name] = value
    return out
