"""The root's reconciliation, the only cure for lost events: every pair's open orders are scanned, which answers for
the live orders it lists (a pair's book looks up by client order id only those it does not list:
`PairBook.on_open_orders`) and finds orders placed elsewhere and engine orders the database does not know. It runs
after every stream gap, on the periodic cadence, every few seconds while a stream is not connected, and over one
pair each time its actor is restarted (a tell that raced the crash was dropped); a round is deferred while the
gateway has a backlog or is blocked (429/418), so reconciliation never crowds out trading nor spends the rate budget
twice on the same question (startup reconciliation got Nautilus users banned). Execution reports for pairs outside
the whitelist are orders placed elsewhere too: a tracking-only book records and announces them.

Reports the stream could not hand to a whitelisted pair's actor because it was dead come here too: they are
held (in order, bounded) until the root restarts it and then delivered to the new actor ahead of anything the
stream routes to it; past the restart budget the pair's own book becomes tracking-only here, so its fills are
still stored, and reconciliation rounds keep looking its orders up (read-only lookups, answered to the root;
a tracking-only book never sends a create or a cancel). The tracking-only books of pairs outside the
whitelist are reconciled for the engine's own orders only (placed before the whitelist changed, restored at
start): how many external orders they hold is up to whoever places them, and the rounds' rate cost must stay
bounded. A mixin of `RootActor` (its messages run on the root's thread)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

from loguru import logger

from actors._recovery import NOT_WHITELISTED, open_order_scans, split_by_pair
from actors._state import survives
from actors._tracked import TrackedMixin
from actors._wallet import AccountBook
from actors.stream._frames import AccountFrame
from actors.stream._watch import FIRST_SUBSCRIPTION
from engine.domain import Order, Pair
from engine.exchange import AccountPosition, BadFrame, ExecutionReport
from engine.execution import SymbolRules
from engine.gateway import GatewayResult
from engine.pair import (
    PairBook,
)

__all__ = ["ReconcileMixin"]

_ASK_TIMEOUT_S = 15.0
_RECONCILE_BACKLOG = 100
"""Gateway queue depth above which a reconciliation round waits for the next tick."""
_HELD_REPORTS = 10_000
"""Execution reports held per pair while its actor is dead; past this, the rest wait for a reconciliation."""


class ReconcileMixin(TrackedMixin):
    """Reconciliation rounds and the open-orders scan (see module docstring)."""

    # What `TrackedMixin` declares is not repeated here.
    _pairs: dict[Pair, Any]
    _symbol_pairs: dict[str, Pair]
    _stream_health: dict[str, Any]
    _specs: dict[str, dict[str, Any]]
    _s: Any
    _balances: AccountBook
    _deferred_rounds: dict[str, list[Pair]]
    """Rounds deferred by a gateway backlog (by reason): run again on the next tight tick."""
    _with_pair: Callable[..., Any]
    """Reach a pair actor, skipping a dead one (the root's `_with_pair`)."""
    _tell_pair: Callable[..., bool]
    refresh_wallet: Callable[[], None]
    """Read the account and re-value the wallet (the root's `WalletMixin`)."""

    def _scan_open_orders(self, pairs: list[Pair] | None = None) -> None:
        """Ask for the open orders of `pairs` (default: every whitelisted pair, halted ones included, and the pairs
        outside the whitelist whose restored orders the root tracks: the start's scan is their first word too)."""
        assert self.gateway is not None
        proxy = self._self
        scanned = dict.fromkeys([*self._books, *self._outside] if pairs is None else pairs)
        for request in open_order_scans(scanned, lambda pair: lambda r: proxy.on_open_orders.defer(pair, r)):
            self.gateway.submit(request)

    @survives
    def on_open_orders(self, pair: Pair | None, result: GatewayResult) -> None:
        """An openOrders answer: handed to the pair's current actor (which looks into unknown orders), or to
        the pair's tracking-only book when it is halted past the restart budget."""
        booked = {s: p for s, p in self._symbol_pairs.items() if p in self._books or p in self._outside_own}
        if result.error is not None:
            # Still told to the pairs' actors: the scan was their live orders' answer, and they now look each up.
            logger.bind(pair=pair).warning("open orders scan failed: {}", result.error)
            answers = {pair: result} if pair is not None else dict.fromkeys(booked.values(), result)
        else:
            answers = {pair: result} if pair is not None else split_by_pair(result, booked)
        for target, answer in answers.items():
            tracked = self._outside.get(target)
            if tracked is None:
                self._tell_pair(target, "on_open_orders", answer)
            else:  # the scan answers for the orders a round covers there (`_tracked_reconcilable`), as for a pair's
                among = {o.client_order_id for o in self._tracked_reconcilable(tracked)}
                apply = partial(tracked.on_open_orders, answer, self._clock.now_ms(), reconcile=True, among=among)
                self._track(tracked, "open orders", apply)

    @survives
    def reconcile_if_unhealthy(self) -> None:
        """The tight cadence: the rounds deferred by a backlog go again, and reconcile while a stream is not
        connected (events may be getting lost)."""
        deferred, self._deferred_rounds = self._deferred_rounds, {}
        for reason, pairs in deferred.items():
            self._round(pairs, reason)  # deferred again (kept) while the gateway is still backed up
        # A quiet market stream (connected, nothing received) loses no order event: its prices are polled instead.
        unhealthy = [name for name, h in self._stream_health.items() if str(h.state) not in ("connected", "quiet")]
        if unhealthy:
            self.reconcile(f"stream unhealthy: {', '.join(unhealthy)}")

    @survives
    def reconcile(self, reason: str) -> int:
        """Reconcile every live order after a stream gap (or on the cadence): scan each pair's open orders (its
        book looks up those the scan does not list); returns how many live orders the round covers. A round is
        skipped while the previous one is still queued: reconciliation must never crowd out trading or spend the
        rate budget twice on the same question.

        Whitelisted pairs halted past the restart budget are in the round too, through their tracking-only
        books: a fill lost while their actor was dead is still found (read-only lookups; nothing is traded). So
        are pairs no longer whitelisted while the engine's own orders from before are unfinished there
        (`restore_outside`).
        """
        tracked = [p for p, b in self._outside.items() if p not in self._books and self._tracked_reconcilable(b)]
        return self._round([*self._books, *tracked], reason)

    @survives
    def on_stream_gap(self, reason: str) -> None:
        """The user stream's gap (a reconnect, its first subscription, a silence): events may have been lost.

        The orders are reconciled, and the account read again: balance updates lost with the gap (or sent before
        the first subscription) would otherwise leave `balances()` stale until the minute's read.
        """
        self.reconcile(reason)
        self.refresh_wallet()

    def reconcile_pair(self, pair: Pair, reason: str) -> int:
        """A round over one pair only (after its actor was restarted): its orders and its open orders."""
        return self._round([pair], reason)

    def _round(self, pairs: list[Pair], reason: str) -> int:
        assert self.gateway is not None
        if self._stopping:  # a timer's round queued behind shutdown: nothing may be sent after the drain
            return 0
        stats = self.gateway.stats()
        if stats.queued > _RECONCILE_BACKLOG or stats.blocked_until_ms > self._clock.now_ms():
            # Not dropped: a gap's or a restart's round goes again on the next tight tick (`reconcile_if_unhealthy`).
            if reason != "periodic":
                self._deferred_rounds[reason] = sorted({*self._deferred_rounds.get(reason, ()), *pairs})
            logger.warning("reconciliation ({}) deferred: {} requests queued, blocked until {}", reason,
                           stats.queued, stats.blocked_until_ms)  # fmt: skip
            return 0
        for other, waiting in list(self._deferred_rounds.items()):
            if set(waiting) <= set(pairs):
                del self._deferred_rounds[other]  # this round asks the same questions now
        self._scan_open_orders(pairs)
        queried = 0
        for pair in pairs:
            asked = self._reconcilable(pair)
            if asked is None:
                continue
            # Answered by the scan above: each book looks up singly only those it does not list (`on_open_orders`).
            queried += len(asked)
        # Expected rounds (the cadence, the stream's first subscription) are routine; any other follows trouble.
        log = logger.info if reason in ("periodic", FIRST_SUBSCRIPTION) else logger.warning
        log("reconciliation ({}): {} live orders queried", reason, queried)
        return queried

    def _reconcilable(self, pair: Pair) -> list[Order] | None:
        """The orders of `pair` a round covers (counted: the scan answers them); None when its actor is dead (the
        restarted one is reconciled as soon as it is back: `child_failed`)."""
        tracked = self._outside.get(pair)
        if tracked is not None:  # halted past the budget, or not whitelisted: the root runs its book
            return self._tracked_reconcilable(tracked)
        orders: list[Order] | None = self._with_pair(
            pair, "reconcilable_orders", lambda proxy: proxy.reconcilable_orders().get(timeout=_ASK_TIMEOUT_S), None
        )
        return orders

    @survives
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
        if pair in self._books and pair not in self._outside:
            # A whitelisted pair whose actor was dead when the stream routed this (or is still).
            self._deliver_report(pair, report)
            return
        book = self._outside.get(pair)
        if book is None:
            book = self._outside[pair] = PairBook(pair, SymbolRules.from_exchange_info(spec), self._s.pair_settings)
            book.tracking_only = True
            book.tracking_reason = NOT_WHITELISTED
        self._track_report(book, report)

    def _deliver_report(self, pair: Pair, report: ExecutionReport) -> None:
        """To `pair`'s actor if it is alive; else held until `_start_pair` restarts it (or `_track_only`)."""
        if self._tell_pair(pair, "on_report", report):
            return
        held = self._held.setdefault(pair, deque())
        if len(held) < _HELD_REPORTS:
            held.append(report)
            return
        # Bounded: the rest is what reconciliation is for (asked for once the pair is back).
        if pair not in self._held_overflow:
            self._held_overflow.add(pair)
            message = f"{pair}: more than {_HELD_REPORTS} reports while its actor was dead; a reconciliation follows"
            self._alerts("fills_missing", message)

    def _apply_position(self, position: AccountPosition) -> None:
        # The balances that changed, as the exchange reports them after every fill: `balances()` stays
        # current between the minute's account reads (`AccountBook`: only newer than what is held is applied).
        applied = self._balances.position(position, self._clock.now_ms())
        if applied:
            logger.debug("balances updated from the stream: {}", ", ".join(applied))
