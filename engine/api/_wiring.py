"""Wiring from the configuration to endpoints: the venue, the embedded simulator, or the paper exchange.

Dry run on a real venue (``exchange.name`` binance/binanceus, ``execution.dry_run = true``) trades on a local
*paper* simulator: its book follows the venue's public best bid/ask (`sim.PublicPriceFeed`), its filters are the
venue's own exchangeInfo, its wallet is ``execution.dry_run_wallet``. The engine's gateway and streams talk to
that simulator only; the venue sees unsigned public market-data requests and never the API key.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from engine.config import Config, ExchangeName
from engine.domain import FallbackKind, pair_to_symbol

if TYPE_CHECKING:
    from actors.gateway import GatewaySettings
    from actors.stream import StreamSettings
    from engine.execution import RiskManager
    from engine.pair import PairSettings
    from sim import Simulator

__all__ = [
    "Endpoint",
    "default_risk_manager",
    "draw_jitter_seed",
    "embedded_sim",
    "endpoint_for",
    "gateway_settings",
    "make_embedded_sim",
    "make_paper_sim",
    "pair_settings",
    "paper_venue_urls",
    "stream_settings",
]


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


def _wallet(config: Config) -> dict[str, Decimal]:
    wallet = config.execution.dry_run_wallet
    return dict(wallet) if isinstance(wallet, dict) else {"BTC": wallet}


def make_embedded_sim(config: Config) -> Simulator:
    """The embedded simulator (not started) for the whitelisted pairs, seeded from ``[sim]``.

    Its one account holds `execution.dry_run_wallet` (a number is an amount of BTC), so paper trading is
    refused, filled and valued exactly as live trading would be with that wallet.
    """
    from sim import AccountSpec, SimConfig, Simulator

    balances = _wallet(config)
    sim_config = SimConfig(
        seed=config.sim.seed,
        symbols=[pair_to_symbol(p) for p in config.exchange.pair_whitelist],
        market_tick_interval_s=float(config.sim.market_tick_interval_s),  # float-ok: seconds
        volatility=float(config.sim.volatility_pct / 100),  # float-ok: a model parameter (log-return deviation)
        accounts=[AccountSpec(balances=balances)],
        ids_from_clock=True,  # a restart on the same database must not hand out the ids an earlier run stored
    )
    return Simulator(sim_config)


def paper_venue_urls(config: Config) -> tuple[str, str | None]:
    """The real venue's public REST base and market-stream base for `config` (``[exchange]`` overrides win)."""
    from engine.venue import production_urls

    ex = config.exchange
    if ex.name is ExchangeName.SIM:
        raise ValueError("exchange.name = 'sim' has no real venue")
    venue = production_urls(ex.name.value, testnet=ex.testnet)
    return ex.rest_url or venue.rest, ex.stream_url or venue.stream


def make_paper_sim(
    config: Config,
    *,
    transport: Literal["ws", "rest"] | None = None,
    poll_interval_s: float = 1.0,  # float-ok: seconds
    stale_after_s: float | None = None,  # float-ok: seconds
    backoff_initial_s: float = 0.5,  # float-ok: seconds
) -> Simulator:
    """The paper exchange of dry run on a real venue (not started; `start()` it, `stop()` it).

    Reads the venue's exchangeInfo and best bid/ask of the whitelisted pairs once (unsigned public GETs), then
    builds a simulator with those filters, the ``execution.dry_run_wallet`` balances and no random walk: its
    book moves only with the venue's public prices, streamed (or polled, ``transport="rest"``) by a
    `sim.PublicPriceFeed` that has no API key to send. A resting paper order fills completely, at its limit,
    when the venue's quote moves through it. Silence or errors of the venue are logged and retried with
    backoff; after ``stale_after_s`` (default ``stream.watchdog_silence_s``) the book is logged as frozen.

    Raises:
        RuntimeError: the venue's public API cannot be read or does not list a whitelisted pair (offline,
            paper trading runs on ``exchange.name = "sim"``).
    """
    from loguru import logger

    from sim import AccountSpec, FeedError, PublicMarket, PublicPriceFeed, SimConfig, Simulator

    ex = config.exchange
    if not config.execution.dry_run:
        raise ValueError("the paper exchange is for dry run only (execution.dry_run = true)")
    rest, stream = paper_venue_urls(config)
    symbols = [pair_to_symbol(p) for p in ex.pair_whitelist]
    timeout = float(ex.request_timeout_s)  # float-ok: seconds
    try:
        market = PublicMarket.fetch(rest, symbols, timeout)
    except FeedError as exc:
        raise RuntimeError(
            f"dry run on {ex.name.value} trades on paper at the venue's public prices, which cannot be read: {exc} "
            "(offline, use exchange.name = 'sim')"
        ) from None
    no_book = [s for s in symbols if s not in market.quotes]
    if no_book:
        raise RuntimeError(f"dry run on {ex.name.value}: {rest} has no bid/ask for {', '.join(no_book)}")
    stale = float(config.stream.watchdog_silence_s) if stale_after_s is None else stale_after_s  # float-ok: seconds
    feed = PublicPriceFeed(
        rest,
        symbols,
        stream_url=stream,
        transport=transport or ("ws" if stream else "rest"),
        poll_interval_s=poll_interval_s,
        stale_after_s=stale,
        backoff_initial_s=backoff_initial_s,
        backoff_max_s=max(float(config.stream.max_reconnect_backoff_s), backoff_initial_s),  # float-ok: seconds
        request_timeout_s=timeout,
        initial=market.quotes,
        venue=rest,
        seed=config.sim.seed,  # the retry jitter replays with the run
    )
    sim_config = SimConfig(
        seed=config.sim.seed,
        symbols=symbols,
        symbol_info={s: dict(market.symbol_info[s]) for s in symbols},
        start_prices={s: (q.bid + q.ask) / 2 for s, q in market.quotes.items()},
        volatility=0.0,
        jump_probability=0.0,
        market_tick_interval_s=0.0,
        cross_fills="quote_size",  # fills bounded by the venue's shown size at its best price (docs/operations.md)
        accounts=[AccountSpec(balances=_wallet(config))],
        ids_from_clock=True,  # as the embedded simulator: ids never repeat an earlier run's
    )
    logger.info(
        "dry run on {}: paper exchange on loopback following the public prices of {} ({}); no order and no API "
        "key is ever sent to the venue",
        ex.name.value,
        rest,
        feed.transport,
    )
    return Simulator(sim_config, price_feed=feed)


@contextmanager
def embedded_sim(config: Config) -> Iterator[Simulator]:
    """Run the embedded simulator for the duration of a `with` block."""
    with make_embedded_sim(config) as simulator:
        yield simulator


def endpoint_for(config: Config, sim: Simulator | None = None) -> Endpoint:
    """The endpoint and credentials the gateway should use for `config`.

    The simulator's own for ``exchange.name = "sim"``, and for dry run on a real venue when its paper simulator
    (`make_paper_sim`) is given: the configured key is then never used.
    """
    ex = config.exchange
    if ex.name is ExchangeName.SIM or (sim is not None and config.execution.dry_run):
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


def draw_jitter_seed() -> int:
    """The jitter seed of an engine started without one: random (the test suite seeds it by the test's name)."""
    return random.SystemRandom().randrange(2**32)


def gateway_settings(config: Config, endpoint: Endpoint, *, jitter_seed: int | None = None) -> GatewaySettings:
    """The gateway's settings for `endpoint` under `config` (`jitter_seed`: its retry jitter's, to replay a run)."""
    from actors.gateway import GatewaySettings

    return GatewaySettings(
        exchange_id=endpoint.exchange_id,
        api_key=endpoint.api_key,
        secret=endpoint.secret,
        rest_base=endpoint.rest_base,
        testnet=endpoint.testnet,
        timeout_ms=int(config.exchange.request_timeout_s * 1000),
        recv_window_ms=config.exchange.recv_window_ms,
        max_create_hold_ms=config.exchange.max_create_hold_s * 1000,
        jitter_seed=jitter_seed,
    )


def stream_settings(
    config: Config, endpoint: Endpoint, sim: Simulator | None = None, *, jitter_seed: int | None = None
) -> StreamSettings | None:
    """The stream actor's settings for this configuration, or None when both streams are off."""

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
        # HMAC, RSA or Ed25519: the stream actor's manager signs the subscription with any of them.
        key, secret = endpoint.api_key, endpoint.secret
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
        report_handoff_pause_us=sc.report_handoff_pause_us,
        jitter_seed=jitter_seed,
    )


def pair_settings(config: Config) -> PairSettings:
    """The pair books' settings from ``[exchange]`` and ``[execution]``."""
    from engine.execution import ExecutionConfig, PriceSource, SlippageAction
    from engine.pair import PairSettings

    ex = config.execution
    return PairSettings(
        exchange="binance" if config.exchange.name is ExchangeName.SIM else config.exchange.name.value,
        execution=ExecutionConfig(
            limit_timeout_ms=int(ex.limit_timeout_s * 1000),
            fallback=FallbackKind(ex.fallback),
            max_slippage=ex.max_slippage_pct / 100,
            slippage_action=SlippageAction(ex.slippage_action),
            price_source=PriceSource(ex.limit_price_side),
            fallback_after_external_cancel=ex.fallback_after_external_cancel,
        ),
        volatility_trigger=ex.volatility_trigger_pct / 100,
        volatility_window_ms=int(ex.volatility_window_s * 1000),
        conflict_policy=ex.conflict_policy,
        unknown_outcome_grace_ms=int(ex.unknown_outcome_grace_s * 1000),
    )


def default_risk_manager(config: Config) -> RiskManager:
    """The default risk manager from ``[risk]``: the notional limit applies in every whitelisted quote asset."""
    from engine.execution import DefaultRiskManager

    quotes = {pair.split("/")[1] for pair in config.exchange.pair_whitelist}
    return DefaultRiskManager(
        max_notional_per_order=dict.fromkeys(sorted(quotes), config.risk.max_order_notional),
        max_open_orders_per_pair=config.risk.max_open_orders_per_pair,
    )
