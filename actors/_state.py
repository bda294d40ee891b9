"""The root's plain parts, no actor in them: its settings, the engine-wide intake state the pair books consult
(`EngineState`, with the causes of the halted state) and the routing table the stream reads. Re-exported by
`actors.root`.

The halted state has causes (restart budget, stop-trading error, database spool full): each is set and
lifted on its own (`EngineState.halt`/`lift`), so the database coming back never lifts a ban's halt.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar, cast

from loguru import logger

from actors.gateway import GatewaySettings
from actors.stream import StreamSettings
from engine.config import Config
from engine.domain import Pair
from engine.execution import DefaultRiskManager, RiskManager
from engine.pair import IntakeContext, PairSettings

__all__ = [
    "HALT_BAN",
    "HALT_DATABASE",
    "HALT_ORDER_LIMIT",
    "HALT_RESTARTS",
    "HALT_STOP_TRADING",
    "EngineState",
    "RootSettings",
    "Routing",
    "survives",
]

_F = TypeVar("_F", bound=Callable[..., Any])


def survives(handler: _F) -> _F:
    """For a root message told (not asked): an unexpected exception is logged and alerted (`root_error`), and the
    root goes on. pykka stops an actor whose tell raised, and the root is the supervisor: without it no pair
    actor is restarted, and `Engine.stop` cannot reach the children."""

    @functools.wraps(handler)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return handler(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the supervisor must outlive one bad message; logged, alerted
            logger.exception("root: {} failed; the engine goes on", handler.__name__)
            self._alerts("root_error", f"{handler.__name__} failed: {type(exc).__name__}: {exc}")
            return None

    return cast("_F", guarded)


HALT_RESTARTS = "restart_budget"
"""Halt cause: a pair actor died past the restart budget (lifted only by restarting the engine)."""
HALT_STOP_TRADING = "stop_trading"
"""Halt cause: a stop-trading error from the exchange (bad key; an IP ban of unknown length; lifted only by
restarting)."""
HALT_BAN = "ip_ban"
"""Halt cause: a 418 IP ban whose end the exchange gave (Retry-After): lifted when the ban ends."""
HALT_ORDER_LIMIT = "order_limit"
"""Halt cause: the order limits would hold new orders past `exchange.max_create_hold_s` (the daily order count
reached): lifted when the hold ends."""
HALT_DATABASE = "database"
"""Halt cause: the database is down and the spool full (lifted when persistence reports ok)."""


@dataclass(frozen=True)
class RootSettings:
    """Everything the root needs beyond the configuration."""

    config: Config
    gateway: GatewaySettings
    database_url: str
    spool_path: Path
    pair_settings: PairSettings
    risk_manager: RiskManager = field(default_factory=DefaultRiskManager)
    restart_budget: int | None = None
    """Pair-actor restarts allowed within `restart_window_ms` (None: ``execution.restart_budget``)."""
    restart_window_ms: int | None = None
    """The sliding window of the restart budget (None: ``execution.restart_window_s``)."""
    price_poll_ms: int = 1_000
    wallet_refresh_ms: int = 60_000
    stream: StreamSettings | None = None
    reconcile_interval_ms: int = 60_000
    listeners: tuple[Callable[[Any], None], ...] = ()
    """Event listeners subscribed before anything starts (they hear crash recovery too)."""
    unhealthy_reconcile_ms: int = 5_000
    """The reconciliation cadence while a stream is not connected."""

    def restart_limits(self) -> tuple[int, int]:
        """(restarts allowed, window in ms): more restarts than that within the window halt the engine."""
        execution = self.config.execution
        budget = execution.restart_budget if self.restart_budget is None else self.restart_budget
        window_ms = int(execution.restart_window_s * 1000) if self.restart_window_ms is None else self.restart_window_ms
        return budget, window_ms


class EngineState:
    """Engine-wide facts the pair books consult at intake (thread-safe: read by every pair actor).

    `halted` is derived from a set of causes: halted while any remains, `halt_reason` lists them all.
    """

    def __init__(
        self, *, kill_switch: bool = False, min_wallet_btc: Decimal = Decimal("0.0001"), require_wallet: bool = False
    ) -> None:
        self._lock = threading.Lock()
        self._ctx = IntakeContext(kill_switch=kill_switch, min_wallet_btc=min_wallet_btc, require_wallet=require_wallet)
        self._halts: dict[str, str] = {}
        self.children_stopped = threading.Event()
        """Set once the root has stopped its children (its `on_stop`, or its `on_failure` should it die: pykka
        marks a failed actor stopped before that runs, so `Engine.stop` waits on this instead) and every one of
        them stopped within its timeout: not when one may still run (the database lock is kept then)."""
        self.children_stop_over = threading.Event()
        """Set once the root is done stopping its children, whether or not they all stopped: what to wait on
        behind a dead root before reading `children_stopped` (which a stuck child leaves unset for good)."""

    def intake(self) -> IntakeContext:
        """The current intake context."""
        return self._ctx

    def update(self, **changes: Any) -> IntakeContext:
        """Change some fields atomically (not `halted`/`halt_reason`: see `halt` and `lift`)."""
        if {"halted", "halt_reason"} & changes.keys():
            raise ValueError("the halted state has causes: use EngineState.halt()/lift()")
        with self._lock:
            self._ctx = replace(self._ctx, **changes)
            return self._ctx

    def halt(self, cause: str, reason: str) -> IntakeContext:
        """Halt new orders for `cause` (a `HALT_*` name); the same cause again only updates its reason."""
        with self._lock:
            self._halts[cause] = reason
            return self._set_halted()

    def lift(self, cause: str) -> IntakeContext:
        """Remove one cause; the engine stays halted while another remains."""
        with self._lock:
            self._halts.pop(cause, None)
            return self._set_halted()

    def halt_causes(self) -> frozenset[str]:
        """The causes the engine is halted for (empty when it is not)."""
        with self._lock:
            return frozenset(self._halts)

    def _set_halted(self) -> IntakeContext:
        self._ctx = replace(self._ctx, halted=bool(self._halts), halt_reason="; ".join(self._halts.values()))
        return self._ctx


@dataclass
class Routing:
    """Pair → current pair actor proxy; replaced whole on a restart so readers never see half an update."""

    routes: dict[Pair, Any] = field(default_factory=dict)
    homes: dict[Pair, Any] = field(default_factory=dict)
    """Pair → what outlives its actors (`actors._pair_home._Home`, stable across restarts): callers' requests go
    through it (`_Home.place`), race-free with a crash."""

    def get(self, pair: Pair) -> Any:
        """The proxy of `pair`'s actor, or None."""
        return self.routes.get(pair)
