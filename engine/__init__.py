"""Binance spot execution engine: the domain and the public API, without threads.

Users import the facade from `engine.api` (``from engine.api import Engine``); configuration lives in
`engine.config`, the injected clock in `engine.clock`, and the pure kernels (order state machine, fallback
policy, risk and rate budget, retry policy, error tree) in the other subpackages. The actors that run them are
in `actors`, storage in `db`, the simulator in `sim`.

Nothing is re-exported here on purpose: ``import engine`` stays light, so the CLI's quick commands
(``--help``, ``check-config``) do not pay for pydantic, ccxt or pykka.
"""
