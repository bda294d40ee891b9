"""The pair book's recovery half: resuming stored requests after a restart, and orders nobody placed here.

Pure, like the rest of the book. Three situations:

- **Crash recovery** (`restore`): the requests without a trade row and every order not known to be terminal
  come back from the database; each request gets its plan back (`engine.execution.restore_plan`); a live
  order is brought up to date by the start's open-orders scan (looked up by client order id if it is not
  listed), any other looked up, an unknown create outcome through the usual resolver (grace period first).
- **Late reports**: a report for one of the engine's orders that already left memory asks the database
  (`LookupStored`) and is applied to the stored order; a fill after the request's summary updates the
  trade and is alerted.
- **Manual intervention**: an order without this database's client-id tag (a person in the Binance UI, another
  engine on the account) is recorded as EXTERNAL, tracked to its end, announced (event + alert) and never traded
  against; an order with it that the database does not know is adopted the same way (alert `adopted_order`).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace
from decimal import Decimal

from loguru import logger

from engine.api import EventKind
from engine.domain import (
    ClientOrderId,
    Fill,
    Order,
    OrderRequest,
    OrderRole,
    Pair,
    Priority,
    RequestId,
    RequestRecord,
    Side,
    Trade,
    TradeStatus,
    plain_decimal,
)
from engine.exchange import ExecutionReport, ExecutionType, Resolution, client_order_id, is_engine_id, is_own_id
from engine.execution import Book, ExecutionCommand, Phase, SymbolRules, restore_plan
from engine.gateway import GatewayResult
from engine.orders import FillEvent
from engine.pair._commands import Alert, Command, Emit, LookupStored, Persist, Schedule, Send
from engine.pair._legs import RECONCILED, Execution, Leg, Stage, filled_status, order_of, plan_key
from engine.pair._orders import RESYNC_LOOKUPS, OrderDesk
from engine.pair._params import fetch_request
from engine.pair._records import leg_event
from engine.pair._restore import leg_from_stored, plan_leg_of, stranger_leg
from engine.pair._seen import SeenKeys
from engine.pair._settings import PairSettings
from engine.pair._sighting import Sighting
from engine.venue import WireFormatError

__all__ = ["RecoveringBook", "Sighting"]  # Sighting re-exported from engine.pair._sighting


class RecoveringBook(OrderDesk):
    """`OrderDesk` plus recovery; `PairBook` derives from it (see module docstring)."""

    _execs: dict[RequestId, Execution]
    _by_key: dict[str, RequestId]
    _seen: SeenKeys
    book: Book

    def __init__(self, pair: Pair, rules: SymbolRules, settings: PairSettings) -> None:
        super().__init__(pair, rules, settings)
        self._resuming: list[tuple[Execution, list[ExecutionCommand]]] = []
        self._to_fetch: list[ClientOrderId] = []

    # ---- crash recovery -----------------------------------------------------------------------------
    def remember_keys(self, keys: Iterable[str]) -> None:
        """Idempotency keys used before the restart: a replay of one finds its order in the database."""
        for key in keys:
            self._seen.add(key)

    def restore(
        self,
        requests: list[RequestRecord],
        orders: list[Order],
        fills: dict[str, list[Fill]],
        now_ms: int,
        *,
        trades: Mapping[str, Trade] | None = None,
    ) -> int:
        """Take back this pair's unfinished requests and live orders; returns how many requests resumed.
        `trades`: the stored trades of requests already summed up whose orders are still live (late fills). Nothing
        is sent here: `resume` looks restored orders up (a live one waits for the start's scan, `on_open_orders`).
        """
        by_request: dict[str, list[Order]] = {}
        for order in orders:
            if order.pair == self.pair:
                by_request.setdefault(order.request_id, []).append(order)
        resumed = 0
        for record in requests:
            request = record.request
            stored = by_request.pop(request.request_id, [])
            if request.pair != self.pair:
                continue
            if not stored:
                logger.bind(pair=self.pair, request_id=request.request_id).warning("stored request has no order")
                continue
            self._resume_request(record, request, stored, fills, now_ms)
            resumed += 1
        for rest in by_request.values():
            for order in rest:  # live orders of finished (or unknown) requests: tracked to their end
                leg = self._stored_leg(order, fills.get(order.client_order_id, []), order_priority(order), now_ms)
                leg.told_closed = True
                leg.summed_trade = (trades or {}).get(order.request_id)
        return resumed

    def _stored_leg(self, order: Order, fills: list[Fill], priority: Priority, now_ms: int) -> Leg:
        leg = leg_from_stored(order, fills, symbol=self.symbol, priority=priority, now_ms=now_ms,
                              grace_ms=self.settings.unknown_outcome_grace_ms)  # fmt: skip
        self._legs[leg.cid] = leg
        if leg.exchange_cid is not None:  # amended outside the engine under another id: its reports carry that one
            self._aliases[leg.exchange_cid] = (leg.cid, leg.state.exchange_order_id)
        if leg.resolver is None:
            self._to_fetch.append(leg.cid)
        return leg

    def _resume_request(
        self, record: RequestRecord, request: OrderRequest, stored: list[Order], fills: dict[str, list[Fill]],
        now_ms: int,
    ) -> None:  # fmt: skip
        stored.sort(key=lambda o: (o.role is not OrderRole.PRIMARY, o.created_at, o.client_order_id))
        created_ms = int(request.created_at.timestamp() * 1000)
        # The limit's time ran from when it was placed, not from the request: a request queued behind another one
        # on the pair (conflict_policy = queue) started later than it was made.
        started_ms = int(stored[0].created_at.timestamp() * 1000)
        plan, commands = restore_plan(
            request,
            self.rules,
            [plan_leg_of(o, fills.get(o.client_order_id, []), self.symbol, request.priority) for o in stored],
            created_ms=started_ms,
            now_ms=now_ms,
            reference_price=record.reference_price,
            book=self.book,
            config=self.settings.execution,
            canceled=record.canceled,
            retry_at_ms=self._retry_at_ms(record, stored[-1]),
        )
        legs = [self._stored_leg(o, fills.get(o.client_order_id, []), request.priority, now_ms) for o in stored]
        for leg in legs[:-1]:
            leg.told_closed = True  # the plan counts the earlier legs as closed already
        if plan.phase is Phase.FALLBACK_WAIT:
            legs[-1].told_closed = True  # its create failed with retry-later: the plan waits to send the remainder
        execution = Execution(request, created_ms, plan=plan, legs=[leg.cid for leg in legs], resolved=True,
                              story=["resumed after a restart"],
                              canceled=record if record.canceled is not None else None)  # fmt: skip
        self._execs[request.request_id] = execution
        self._by_key[request.idempotency_key] = request.request_id
        self._seen.add(request.idempotency_key)
        self._resuming.append((execution, commands))
        logger.bind(pair=self.pair, request_id=request.request_id, client_order_id=legs[-1].cid).info(
            "request resumed after a restart: phase {}, {} leg(s)", plan.phase.value, len(legs)
        )

    def _retry_at_ms(self, record: RequestRecord, last: Order) -> int | None:
        """When the plan was to re-send the fallback whose create failed with retry-later, if that order is the
        request's last (a later one sent, that wait was over). None in a tracking-only book: it sends nothing, and
        the failed order ends the request as before."""
        at = record.fallback_retry_at
        if at is None or record.fallback_retry != last.client_order_id or self.tracking_only:
            return None
        return int(at.timestamp() * 1000)

    def _take_resuming(self) -> tuple[list[tuple[Execution, list[ExecutionCommand]]], list[ClientOrderId]]:
        resuming, fetch = self._resuming, self._to_fetch
        self._resuming, self._to_fetch = [], []
        return resuming, fetch

    # ---- memory and restarts -------------------------------------------------------------------------
    @abstractmethod
    def active(self) -> list[Execution]:
        """Executions not yet done."""

    @abstractmethod
    def reconcilable(self, *, tracking_only: bool = False) -> list[Order]: ...

    @abstractmethod
    def _carry(self, execution: Execution, commands: list[ExecutionCommand], now_ms: int) -> None:
        """Carry out plan commands (the request level)."""

    def forget_finished(self) -> int:
        """Drop finished executions and their legs from memory (they are stored); returns how many.

        Their idempotency keys stay in the Bloom filter: `maybe_seen` sends a replay to the database.
        """
        done = [rid for rid, e in self._execs.items() if e.stage is Stage.DONE]
        for rid in done:
            execution = self._execs.pop(rid)
            self._by_key.pop(execution.request.idempotency_key, None)
            for cid in execution.legs:
                self._legs.pop(cid, None)
        return len(done) + self._forget_strangers()

    def maybe_seen(self, request: OrderRequest) -> ClientOrderId | None:
        """The primary client order id to look up in the database when the key may have been executed
        before but is no longer in memory; None when the key is in memory or certainly new."""
        key = request.idempotency_key
        if key in self._by_key or key not in self._seen:
            return None
        execution = self.settings.execution
        return client_order_id(key, pair=self.pair, namespace=execution.id_namespace, tag=execution.id_tag)

    def resume(self, now_ms: int) -> list[Command]:
        """Timers to re-arm after the actor restarted (timers die with an actor; the book does not)."""
        self._out = []
        resuming, fetch = self._take_resuming()
        for execution, commands in resuming:
            self._carry(execution, commands, now_ms)
        for execution in self.active():
            if execution.deadline_ms is not None:
                self._out.append(Schedule(plan_key(execution.request.request_id), execution.deadline_ms))
        self._rearm_order_timers(now_ms)  # before the restored orders' lookups below: they are sent here
        for cid in fetch:
            leg = self._legs.get(cid)
            if leg is not None and leg.resolver is None:
                leg.resync_left = RESYNC_LOOKUPS
                # A live one waits for the start's open-orders scan (`on_open_orders`): singly, 300 took a minute.
                leg.resync_by_scan = leg.state.status in RECONCILED
                if not leg.resync_by_scan:
                    self._out.append(Send(fetch_request(self.symbol, self.pair, cid)))
        return self._take()

    # ---- orders not in memory -----------------------------------------------------------------------
    def on_report(self, report: object, now_ms: int) -> list[Command]:
        """An execution report; one for an order not in memory is a late report or a stranger."""
        if isinstance(report, ExecutionReport):
            cid = ClientOrderId(report.orig_client_order_id or report.client_order_id)
            if cid not in self._legs:
                self._out = []
                alias = self._aliases.get(cid)
                own_cid = alias[0] if alias is not None and alias[1] in (None, report.order_id) else None
                leg = self._legs.get(own_cid) if own_cid else self._by_order_id(report.order_id, report.side)
                if leg is not None:  # ours, amended outside the engine: a REPLACED report names the new id in `c`
                    replaced = report.execution_type is ExecutionType.REPLACED
                    self._amended(leg, report.client_order_id if replaced else cid, report.quantity, now_ms)
                    own = replace(report, client_order_id=leg.cid, orig_client_order_id=None)
                    return self._take() + super().on_report(own, now_ms)
                sighting = Sighting.of_report(report)  # ours and amended, but no longer in memory: as a late report
                self._sighted(replace(sighting, client_order_id=own_cid) if own_cid else sighting, now_ms)
                return self._take()
            leg = self._legs[cid]
            known = leg.exchange_qty if leg.exchange_qty is not None else leg.state.amount
            replaced = report.execution_type is ExecutionType.REPLACED
            if replaced or 0 < report.quantity < known:
                self._out = []  # amended, under a new id or its own (seen by its quantity, the REPLACED missed)
                self._amended(leg, report.client_order_id if replaced else cid, report.quantity, now_ms)
                return self._take() + super().on_report(report, now_ms)
        return super().on_report(report, now_ms)

    def on_open_orders(
        self, result: GatewayResult, now_ms: int, *, reconcile: bool = False, among: Collection[str] | None = None
    ) -> list[Command]:
        """The exchange's open orders of this pair: any not in memory is looked into. With `reconcile`, it answers
        for the orders it lists of those reconciliation covers (`among`, default `reconcilable`) as a lookup would;
        those it does not list are looked up one by one; a failed one looks up only those awaiting a first word."""
        self._out = []
        failed = result.error is not None or not isinstance(result.data, list)
        rows = [] if failed else result.data
        waiting = {c for c, leg in self._legs.items() if leg.resync_left and leg.resync_by_scan}
        covered = {o.client_order_id for o in self.reconcilable()} if among is None else set(among)
        if result.sent_ms > 0:  # an order acked after the scan left may be missing from it: its own path answers
            covered = {
                c for c in covered if (leg := self._legs.get(ClientOrderId(c))) and leg.acked_ms <= result.sent_ms
            }
        wanted = (waiting if failed else covered | waiting) if reconcile else set()
        for row in rows:
            if not isinstance(row, dict):
                continue
            leg = self._legs.get(ClientOrderId(str(row.get("clientOrderId", ""))))
            if leg is None and (leg := self._by_order_id(row.get("orderId"), row.get("side"))) is not None:
                self._amended(leg, str(row.get("clientOrderId", "")), None, now_ms)  # ours, under another id
            if leg is not None:
                gave_up = leg.resolver is not None and leg.resolver.state is Resolution.GAVE_UP
                if gave_up or (leg.cid in wanted and leg.resolver is None and not leg.terminal):
                    self._found_listed(leg, row, now_ms)
                    wanted.discard(leg.cid)
                continue
            try:
                sighting = Sighting.of_rest(row)
            except (WireFormatError, ValueError, KeyError, TypeError) as exc:  # one odd row must not stop the rest
                logger.bind(pair=self.pair).error("unreadable open order {}: {}", row.get("orderId"), exc)
                continue
            alias = self._aliases.get(sighting.client_order_id)
            if alias is not None and alias[1] in (None, row.get("orderId")):
                # Ours, amended outside the engine and finished since the scan left (no longer in memory): as a
                # late sighting of our own order, as its reports are (it was adopted as an external order, and its
                # row clashed with ours on the exchange order id).
                sighting = replace(sighting, client_order_id=alias[0])
            self._sighted(sighting, now_ms)
        for cid in sorted(wanted):
            if (leg := self._legs.get(ClientOrderId(cid))) is not None and not leg.lookup_pending:
                leg.resync_by_scan, leg.lookup_pending = False, True  # its own lookup answers (`_on_fetch` retries)
                self._out.append(Send(fetch_request(self.symbol, self.pair, leg.cid, leg.order_ref)))
        return self._take()

    def _found_listed(self, leg: Leg, row: dict[str, object], now_ms: int) -> None:
        # The row answers as a lookup would (`_on_found`): for an order whose create outcome stayed unknown after
        # every lookup, the answer its lookups never got.
        try:
            self._on_found(leg, row, now_ms)
        except (WireFormatError, ValueError, KeyError, TypeError) as exc:  # an odd row must not kill the actor
            logger.bind(pair=self.pair, client_order_id=leg.cid).error("unreadable open order: {}", exc)
            if not leg.lookup_pending:
                leg.resync_by_scan, leg.lookup_pending = False, True
                self._out.append(Send(fetch_request(self.symbol, self.pair, leg.cid, leg.order_ref)))
            return
        self._leg_changed(leg, now_ms)

    def _by_order_id(self, order_id: object, side: object) -> Leg | None:
        """The leg of this exchange order id on the same side, if in memory (reports and rows name orders amended
        outside the engine by their new client id)."""
        if not isinstance(order_id, int) or isinstance(order_id, bool):
            return None
        wanted = side if isinstance(side, Side) else next((s for s in Side if s.value == str(side).lower()), None)
        return next((leg for leg in self._legs.values()
                     if leg.state.exchange_order_id == order_id and leg.state.side is wanted), None)  # fmt: skip

    def _sighted(self, sighting: Sighting, now_ms: int) -> None:
        if is_own_id(sighting.client_order_id, self.settings.execution.id_tag):
            self._out.append(LookupStored(sighting.client_order_id, sighting))
        else:
            self._adopt(sighting, OrderRole.EXTERNAL, now_ms)

    def on_stored(
        self, sighting: Sighting, order: Order | None, fills: list[Fill], trade: Trade | None, now_ms: int
    ) -> list[Command]:
        """The database's answer to `LookupStored`: apply the sighting to the stored order, or adopt it."""
        self._out = []
        cid = sighting.client_order_id
        leg = self._legs.get(cid)
        if leg is None and order is None:
            self._adopt(sighting, OrderRole.PRIMARY, now_ms)
            return self._take()
        if leg is None:
            assert order is not None
            leg = self._stored_leg(order, fills, order_priority(order), now_ms)
            leg.acked_ms = now_ms  # back in memory from now: a scan sent before it came back says nothing of it
            # Looked up below only if this sighting leaves it incomplete (the fetch list is for restarts).
            if cid in self._to_fetch:
                self._to_fetch.remove(cid)
            leg.told_closed = True
        if leg.request_id not in self._execs and trade is not None:
            # Its request was summed up: the fills applied below are added to the trade (`_leg_filled`).
            leg.summed_trade = trade
        for event in sighting.events:
            self._apply(leg, event, now_ms)
        self._leg_changed(leg, now_ms)
        return self._take()

    def _late_fill(self, leg: Leg, trade: Trade, fill: FillEvent, now_ms: int) -> None:
        # The trade sums every leg of the request: add what this fill brought, its fee included (by asset).
        qty = fill.quantity
        filled = trade.filled + qty
        total_quote = (trade.average_price or Decimal(0)) * trade.filled + fill.quote_quantity
        fees = dict(trade.fees)
        if fill.commission > 0:
            fees[fill.commission_asset] = fees.get(fill.commission_asset, Decimal(0)) + fill.commission
        status = filled_status(filled, trade.requested, self.rules.floor_qty)
        updated = Trade.model_validate({
            **trade.model_dump(),
            "filled": filled,
            "average_price": total_quote / filled if filled > 0 else None,
            "fees": fees,
            "status": status,
            "remainder": max(Decimal(0), trade.requested - filled),
            "dust": trade.dust or (status is TradeStatus.FILLED and filled < trade.requested),
            "note": f"{trade.note}; late fill of {plain_decimal(qty)} after the summary".lstrip("; "),
        })  # fmt: skip
        leg.summed_trade = updated
        self._out.append(Persist(updated))
        message = f"fill of {plain_decimal(qty)} arrived after request {trade.request_id} was summarized; trade updated"
        self._out.append(Alert("late_fill", message, leg.cid))

    def _adopt(self, sighting: Sighting, role: OrderRole, now_ms: int) -> None:
        leg = stranger_leg(
            cid=sighting.client_order_id, pair=self.pair, symbol=self.symbol, side=sighting.side,
            order_type=sighting.order_type, quantity=sighting.quantity, price=sighting.price, role=role,
            now_ms=now_ms, exchange=self.settings.exchange,
        )  # fmt: skip
        self._legs[leg.cid] = leg
        # Known from now: a scan sent before this could not list it, so its absence there means nothing.
        leg.acked, leg.acked_ms = True, now_ms
        leg.told_closed = True
        self._out.append(Persist(order_of(leg)))
        for event in sighting.events:
            self._apply(leg, event, now_ms)
        external = role is OrderRole.EXTERNAL
        what = "engine order unknown to the database"
        if external:  # an engine id with another database's tag: another engine's order on this account
            outside = "by another engine" if is_engine_id(leg.cid) else "outside the engine"
            what = f"external order (placed {outside})"
        quantity = plain_decimal(sighting.quantity) if sighting.quantity > 0 else "(for a quote amount)"
        price = plain_decimal(sighting.price) if sighting.price else "market"
        message = (f"{what} seen via {sighting.source}: {sighting.side.value} {quantity} "
                   f"{sighting.order_type} at {price}; tracked, not managed")  # fmt: skip
        logger.bind(pair=self.pair, client_order_id=leg.cid).warning(message)
        self._out.append(Emit(leg_event(EventKind.EXTERNAL, leg, now_ms, message)))
        self._out.append(Alert("external_order" if external else "adopted_order", message, leg.cid))

    def _forget_strangers(self) -> int:
        """Drop finished orders that belong to no request in memory (restored orphans, strangers)."""
        gone = [
            cid for cid, leg in self._legs.items()
            if leg.request_id not in self._execs and leg.terminal and leg.state.missing_qty <= 0
        ]  # fmt: skip
        for cid in gone:
            del self._legs[cid]
        return len(gone)


def order_priority(order: Order) -> Priority:
    """The gateway priority of a tracked order's follow-up calls (lookups, cancels)."""
    return Priority.FALLBACK if order.role is OrderRole.FALLBACK else Priority.EXIT
