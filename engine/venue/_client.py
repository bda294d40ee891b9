"""Build the ccxt async client for a venue, pointed where it should be, with ccxt's own limiter off.

The engine owns the rate budget (it reads Binance's weight and order-count headers), so ccxt's client-side
throttle is disabled and every response's headers are handed to `on_response`. ccxt is imported here lazily:
``import ccxt.async_support`` costs ~0.7 s and is kept out of light commands.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine.venue._gate import pass_gate
from engine.venue._urls import rewrite_api_urls

__all__ = ["LEAN_OPTIONS", "ResponseHook", "make_client"]

ResponseHook = Callable[[int, Mapping[str, str], str, str], None]
"""Called with (HTTP status, response headers, method, url) for every REST response, errors included."""

LEAN_OPTIONS: dict[str, Any] = {
    # load_markets() then makes exactly one request (GET /api/v3/exchangeInfo) instead of seven.
    "fetchMarkets": {"types": ["spot"]},
    "fetchCurrencies": False,
    "fetchMargins": False,
    "defaultType": "spot",
    "warnOnFetchOpenOrdersWithoutSymbol": False,
}


class _StaleSignature(Exception):
    """A create waited at its gate past `STALE_AFTER_S`: its signed timestamp may be outside recvWindow."""


def make_client(
    exchange_id: str,
    *,
    api_key: str | None,
    secret: str | None,
    rest_base: str | None = None,
    testnet: bool = False,
    timeout_ms: int = 10_000,
    recv_window_ms: int = 5_000,
    on_response: ResponseHook | None = None,
) -> Any:
    """Create a ccxt async client (`binance` or `binanceus`) for the engine.

    Args:
        exchange_id: "binance" or "binanceus".
        api_key, secret: credentials (HMAC, RSA or Ed25519 PEM; ccxt picks the signer from the secret).
        rest_base: scheme://host[:port] to send every request to instead of the venue (the simulator).
        testnet: use the spot testnet URLs (binance only).
        timeout_ms: per-request timeout.
        recv_window_ms: Binance's recvWindow on signed requests.
        on_response: receives every response's status and headers (rate budget, clock).

    Must be called on the event loop thread that will own the client.
    """
    import ccxt.async_support as ccxt_async

    base_cls = getattr(ccxt_async, exchange_id)

    class EngineClient(base_cls):  # type: ignore[misc, valid-type]
        async def fetch2(self, *args: Any, **kwargs: Any) -> Any:
            try:
                return await super().fetch2(*args, **kwargs)
            except _StaleSignature:
                # Nothing left: sign it again with a fresh timestamp (its gate is open now, so it goes at once).
                return await super().fetch2(*args, **kwargs)

        async def fetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
            # The last step before the bytes leave: a create whose intent is still being committed waits
            # here, already signed (engine.venue._gate) — and is signed again if it waited long.
            if await pass_gate():
                raise _StaleSignature
            return await super().fetch(url, method, headers, body)

        def on_rest_response(
            self,
            code: int,
            reason: str,
            url: str,
            method: str,
            response_headers: Mapping[str, str],
            response_body: str,
            request_headers: Mapping[str, str],
            request_body: str,
        ) -> str:
            if on_response is not None:
                on_response(code, response_headers, method, url)
            body: str = super().on_rest_response(
                code, reason, url, method, response_headers, response_body, request_headers, request_body
            )
            return body

    client = EngineClient(
        {
            "apiKey": api_key or "",
            "secret": secret or "",
            "enableRateLimit": False,
            "timeout": timeout_ms,
            "options": {**LEAN_OPTIONS, "recvWindow": recv_window_ms},
        }
    )
    if testnet:
        client.set_sandbox_mode(True)
    if rest_base is not None:
        client.urls["api"] = rewrite_api_urls(client.urls["api"], rest_base)
    return client
