"""The root's reconciliation, the only cure for lost events: every live order is looked up by client order
id and every pair's open orders are scanned (orders placed elsewhere, engine orders the database does not
know). It runs after every stream gap, on the periodic cadence, and every few seconds while a stream is not
connected; a round is deferred while the gateway has a backlog or is blocked (429/418), so reconciliation
never crowds out trading nor spends the rate budget twice on the same question (startup reconciliation got
Nautilus users banned). Execution reports for pairs outside the whitelist are orders placed elsewhere too:
a tracking-only book records and announces them. A mixin of `RootActor` (its messages run on the root's thread)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loguru import logger

from actors._feeds import reconcile_requests
from actors._recovery import open_order_scans, split_by_pair
from actors.stream._frames import AccountFrame
from engine.clock import Clock
from engine.domain import Pair
from engine.exchange import AccountPosition, BadFrame, ExecutionReport
from engine.execution import SymbolRules
from engine.gateway import GatewayResult
from engine.pair import Alert, Emit, PairBook, Persist

__all__ = ["ReconcileMixin"]

_ASK_TIMEOUT_S = 15.0
_RECONCILE_BACKLOG = 100
"""Gateway queue depth above which a reconciliation round waits for the next tick."""


class ReconcileMixin:
    """Reconciliation rounds and the open-orders scan (see module docstring)."""

    gateway: Any
    _clock: Clock
    _self: Any
    _pairs: dict[Pair, Any]
    _routing: Any
    _symbol_pairs: dict[str, Pair]
    _stream_health: dict[str, Any]
    _specs: dict[str, dict[str, Any]]
    _outside: dict[Pair, PairBook]
    _store: Any
    _bus: Any
    _s: Any
    _alerts: Callable[[str, str], None]
    _account: dict[str, Any] | None
    _account_ms: int | None

    def _scan_open_orders(self) -> None:
        assert self.gateway is not None
        proxy = self._self
        for request in open_order_scans(self._pairs, lambda pair: lambda r: proxy.on_open_orders.defer(pair, r)):
            self.gateway.submit(request)

    def on_open_orders(self, pair: Pair | None, result: GatewayResult) -> None:
        """An openOrders answer: handed to the pair's current actor (which looks into unknown orders)."""
        if result.error is not None:
            logger.bind(pair=pair).warning("open orders scan failed: {}", result.error)
            return
        whitelisted = {s: p for s, p in self._symbol_pairs.items() if p in self._pairs}
        answers = {pair: result} if pair is not None else split_by_pair(result, whitelisted)
        for target, answer in answers.items():
            route = self._routing.get(target)
            if route is not None:
                route.on_open_orders.defer(answer)

    def reconcile_if_unhealthy(self) -> None:
        """The tight cadence: reconcile while a stream is not connected (events may be getting lost)."""
        unhealthy = [name for name, h in self._stream_health.items() if str(h.state) != "connected"]
        if unhealthy:
            self.reconcile(f"stream unhealthy: {', '.join(unhealthy)}")

    def reconcile(self, reason: str) -> int:
        """Query every live order after a stream gap (or on the cadence) and scan each pair's open orders;
        returns how many orders were queried. A round is skipped while the previous one is still queued:
        reconciliation must never crowd out trading or spend the rate budget twice on the same question."""
        assert self.gateway is not None
        stats = self.gateway.stats()
        if stats.queued > _RECONCILE_BACKLOG or stats.blocked_until_ms > self._clock.now_ms():
            logger.warning("reconciliation ({}) deferred: {} requests queued, blocked until {}", reason,
                           stats.queued, stats.blocked_until_ms)  # fmt: skip
            return 0
        self._scan_open_orders()
        queried = 0
        for pair, ref in self._pairs.items():
            proxy = ref.proxy()
            orders = proxy.reconcilable_orders().get(timeout=_ASK_TIMEOUT_S)
            for request in reconcile_requests(pair, orders, proxy.on_result.defer):
                self.gateway.submit(request)
                queried += 1
        log = logger.info if reason == "periodic" else logger.warning
        log("reconciliation ({}): {} live orders queried", reason, queried)
        return queried

    def on_unrouted(self, report: Any) -> None:
        """A user-data event for no whitelisted pair (or an account event), never dropped: an execution report
        is an order placed outside the engine, recorded and announced through a tracking-only book."""
        if isinstance(report, AccountFrame):  # left unparsed on UBWA's thread: parsed here, off the fill path
            try:
                report = report.parse()
            except BadFrame as exc:
                logger.warning("unreadable account event skipped: {}", exc)
                return
        if isinstance(report, AccountPosition):
            self._apply_position(report)
            return
        pair = self._symbol_pairs.get(str(getattr(report, "symbol", "")))
        spec = self._specs.get(str(getattr(report, "symbol", "")))
        if not isinstance(report, ExecutionReport) or pair is None or spec is None:
            logger.info("user-data event outside the pair books: {}", report)
            return
        book = self._outside.get(pair)
        if book is None:
            book = self._outside[pair] = PairBook(pair, SymbolRules.from_exchange_info(spec), self._s.pair_settings)
        self._carry_out(pair, book.on_report(report, self._clock.now_ms()))
        book.forget_finished()

    def _apply_position(self, position: AccountPosition) -> None:
        # The balances that changed, as the exchange reports them after every fill: `balances()` stays
        # current between the minute's account reads (only newer than what is held is applied).
        account = self._account
        if account is None or position.event_time_ms < (self._account_ms or 0):
            return
        rows = {str(r.get("asset")): r for r in account.get("balances", ()) if isinstance(r, dict)}
        for entry in position.balances:
            rows[entry.asset] = {"asset": entry.asset, "free": str(entry.free), "locked": str(entry.locked)}
        self._account = {**account, "balances": list(rows.values())}
        self._account_ms = position.event_time_ms
        logger.debug("balances updated from the stream: {}", ", ".join(e.asset for e in position.balances))

    def _carry_out(self, pair: Pair, commands: list[Any]) -> None:
        # Only what a tracking-only book produces: records, events and alerts (it never trades).
        assert self._store is not None and self._bus is not None
        records = [c.item for c in commands if isinstance(c, Persist)]
        if records:
            self._store.save_many(records)
        for command in commands:
            if isinstance(command, Emit):
                self._bus.proxy().publish.defer(command.event)
            elif isinstance(command, Alert):
                self._alerts(command.key, f"{pair} {command.client_order_id or ''}: {command.message}")
