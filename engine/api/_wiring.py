"""Wiring from the configuration to endpoints: the venue, or the embedded simulator."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.config import Config, ExchangeName
from engine.domain import pair_to_symbol

if TYPE_CHECKING:
    from sim import Simulator

__all__ = ["Endpoint", "embedded_sim", "endpoint_for", "make_embedded_sim"]


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
