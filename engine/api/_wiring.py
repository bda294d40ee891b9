"""Wiring from the configuration to endpoints: the venue, or the embedded simulator."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from engine.config import Config, ExchangeName
from engine.domain import pair_to_symbol

if TYPE_CHECKING:
    from actors.stream import StreamSettings
    from sim import Simulator

__all__ = ["Endpoint", "embedded_sim", "endpoint_for", "make_embedded_sim", "stream_settings"]


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to connect (credentials excluded from repr)."""

    exchange_id: str
    rest_base: str | None
    testnet: bool
    api_key: str | None
    secret: str | None

    def __repr__(self) -> str:
        return f"Endpoint(exchange_id={self.exchange_id!r}, rest_base={self.rest_base!r}, testnet={self.testnet})"


def make_embedded_sim(config: Config) -> Simulator:
    """The embedded simulator (not started) for the whitelisted pairs, seeded from ``[sim]``.

    Its one account holds `execution.dry_run_wallet` (a number is an amount of BTC), so paper trading is
    refused, filled and valued exactly as live trading would be with that wallet.
    """
    from sim import AccountSpec, SimConfig, Simulator

    wallet = config.execution.dry_run_wallet
    balances = dict(wallet) if isinstance(wallet, dict) else {"BTC": wallet}
    sim_config = SimConfig(
        seed=config.sim.seed,
        symbols=[pair_to_symbol(p) for p in config.exchange.pair_whitelist],
        market_tick_interval_s=float(config.sim.market_tick_interval_s),  # float-ok: seconds
        accounts=[AccountSpec(balances=balances)],
    )
    return Simulator(sim_config)


@contextmanager
def embedded_sim(config: Config) -> Iterator[Simulator]:
    """Run the embedded simulator for the duration of a `with` block."""
    with make_embedded_sim(config) as simulator:
        yield simulator


def endpoint_for(config: Config, sim: Simulator | None = None) -> Endpoint:
    """The endpoint and credentials the gateway should use for `config` (the simulator's own for sim)."""
    ex = config.exchange
    if ex.name is ExchangeName.SIM:
        if sim is None:
            raise ValueError("exchange.name = 'sim' needs the embedded simulator started")
        account = sim.accounts[0]
        return Endpoint("binance", sim.urls.rest, False, account.api_key, account.secret)
    return Endpoint(
        ex.name.value,
        ex.rest_url,
        ex.testnet,
        ex.key.get_secret_value() if ex.key else None,
        ex.secret.get_secret_value() if ex.secret else None,
    )


def stream_settings(config: Config, endpoint: Endpoint, sim: Simulator | None = None) -> StreamSettings | None:
    """The stream actor's settings for this configuration, or None when both streams are off."""
    from loguru import logger

    from actors.stream import StreamSettings
    from engine.venue import production_urls

    sc, ex = config.stream, config.exchange
    if not (sc.user_data or sc.market_data):
        return None
    kind: Literal["binance", "binance-testnet", "binanceus"]
    if sim is not None:
        kind, ws_api, stream, rest = "binance", sim.urls.ws_api, sim.urls.stream, sim.urls.rest
    else:
        venue = production_urls(ex.name.value, testnet=ex.testnet)
        kind = "binanceus" if ex.name is ExchangeName.BINANCEUS else ("binance-testnet" if ex.testnet else "binance")
        ws_api = ex.ws_api_url or venue.ws_api or ""
        stream = ex.stream_url or venue.stream or ""
        rest = ex.rest_url or venue.rest
    key, secret = "", ""
    if sc.user_data and endpoint.api_key and endpoint.secret:
        # As ccxt does: a PEM is RSA or Ed25519, anything else is an HMAC secret (the simulator's may be any).
        if "PRIVATE KEY" not in endpoint.secret:
            key, secret = endpoint.api_key, endpoint.secret
        else:
            # UBWA signs the user-data subscription with HMAC only; fills then come from reconciliation.
            logger.warning("user data stream off: UBWA subscribes with HMAC keys only; reconciling over REST instead")
    return StreamSettings(
        exchange=kind,
        ws_api_url=ws_api,
        stream_url=stream if stream.endswith("/") else stream + "/",
        rest_url=rest,
        api_key=key,
        api_secret=secret,
        symbols=tuple(pair_to_symbol(p) for p in ex.pair_whitelist) if sc.market_data else (),
        ping_interval_s=float(sc.ping_interval_s),  # float-ok: seconds
        ping_timeout_s=float(sc.ping_timeout_s),  # float-ok: seconds
        watchdog_silence_ms=int(sc.watchdog_silence_s * 1000),
        max_reconnect_backoff_ms=int(sc.max_reconnect_backoff_s * 1000),
    )
