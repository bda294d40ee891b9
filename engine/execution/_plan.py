"""The execution plan of one request: limit first, then the exact remainder as a fallback. Pure.

```
 start ──(filters fail)─────────────────────────────────────────────────────────────► DONE (refused)
   │ PlaceOrder(limit)                         limit FILLED
   ▼                                   ┌────────────────────────────────────────────► DONE (filled)
 LIMIT_WORKING ──timeout / volatile──► CANCELING ──cancel confirmed / expired──┐
   │  │ PERCENT_PRICE rejection                                                ▼
   │  └──────────────────────────────────────────────────────────────► fallback step ──► DONE (dust,
   │ canceled outside, STP- or exchange-expired (stop, or fallback     │  slippage refused, none)
   │ if configured)                                                    │
   ▼                                                                   │ PlaceOrder(market | IOC at bound)
 DONE (canceled_externally)                                            ▼
                                   FALLBACK_WAIT ◄──retry later── FALLBACK_WORKING ──closed──► DONE
                                        └──────────── re-place (new leg id) ──┘   rejected ──► DONE
```

`Abort` (the caller cancels) cancels the live leg and ends the plan with `canceled` once it closes, no fallback.

The remainder is `requested − the limit's cumulative quantity at the exchange` rounded DOWN to the lot
step, so limit fills plus fallback fills never exceed the request; what cannot be sent (below the step,
the minimum quantity or the minimum notional) is reported as dust, never dropped; a remainder ABOVE a
maximum is a filter failure, reported too. A failed cancel is re-sent (idempotent) after a growing delay.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from loguru import logger

from engine.domain import (
    ClientOrderId,
    FallbackKind,
    OrderRequest,
    OrderRole,
    OrderStatus,
    OrderType,
    Priority,
    TimeInForce,
    plain_decimal,
)
from engine.exchange import (
    Banned,
    ExchangeError,
    FilterRejected,
    OutcomeUnknown,
    RetryLater,
    StopTrading,
    client_order_id,
)
from engine.execution._guards import Book, capped_detail, check_slippage, within_bound
from engine.execution._model import (
    Abort,
    CancelFailed,
    CancelOrder,
    ExecutionCommand,
    ExecutionConfig,
    ExecutionEvent,
    ExecutionResult,
    LegAcked,
    LegAmended,
    LegClosed,
    LegFailed,
    LegFilled,
    LegNotCreated,
    OrderSpec,
    PlaceOrder,
    PriceUpdate,
    ReportResult,
    Tick,
    _Leg,
    _summarize,
    choose_limit_price,
)
from engine.execution._phase import Phase, _Timer
from engine.execution._reasons import ResultReason, rejected_reason, unfinished_reason
from engine.execution._resend import market_again, retry_kind, retry_now, retry_wait_ms
from engine.execution._rules import SymbolRules

__all__ = ["ExecutionPlan", "Phase"]


class ExecutionPlan:
    """State machine for one request. Create with `ExecutionPlan.start`; feed events to `handle`."""

    def __init__(self, request: OrderRequest, rules: SymbolRules, config: ExecutionConfig, requested: Decimal) -> None:
        self.request = request
        self.rules = rules
        self.config = config
        self.requested = requested
        """The amount rounded down to the lot step (what can be traded)."""
        self.phase = Phase.LIMIT_WORKING
        self.reference_price: Decimal | None = None
        self.book: Book | None = None
        self._legs: list[_Leg] = []
        self._timer: _Timer | None = None
        self._fallback_attempts = 0
        self._capped = False
        self._cancel_failures = 0  # failed cancels so far: the retry delay doubles with each
        self._retry = (FallbackKind.MARKET, OrderRole.FALLBACK)  # what a retry-later re-placement sends
        self._price_needed = False  # a wait resumed after a restart: a retry due with no price waits for one
        self._aborted = ""  # why the caller canceled; no fallback follows once set
        self.skipped_wait = False  # a volatile market: the fallback went out in place of the limit
        self.canceling: ClientOrderId | None = None  # the order a cancel was sent for (not a restored closed one)
        self.amended = False  # the primary was amended outside the engine (`LegAmended`)
        self.result: ExecutionResult | None = None

    # ---- construction -------------------------------------------------------------------------------------
    @classmethod
    def start(cls, request: OrderRequest, rules: SymbolRules, book: Book, now_ms: int,
              config: ExecutionConfig | None = None, *, volatile: bool = False,
              ) -> tuple[ExecutionPlan, list[ExecutionCommand]]:  # fmt: skip
        """Plan a request: check the filters and place the limit (or, for a market request or a volatile
        market, go straight to the fallback step)."""
        config = cls.config_for(request, config)
        market = request.order_type is OrderType.MARKET
        plan = cls(request, rules, config, rules.floor_qty(request.amount, market=market))
        plan.book = book
        plan.reference_price = request.price if request.price is not None else book.mid
        if market:
            if plan.requested <= 0:  # below the lot step: refused as a limit of that size is, not "filled"
                violation = rules.check(
                    side=request.side, quantity=plan.requested, price=None, reference_price=book.mid
                )
                detail = str(violation) if violation else f"quantity {plain_decimal(request.amount)} below the lot step"
                return plan, plan._finish(
                    ResultReason.REFUSED_FILTER, detail, details=violation.details if violation else None
                )
            # A price is a bound: an IOC at the slippage bound around it (a plain market order could walk past it).
            kind = FallbackKind.MARKET if request.price is None else FallbackKind.IOC_LIMIT
            return plan, plan._place_remainder(kind=kind, role=OrderRole.PRIMARY)
        if volatile and plan._fallback_would_trade():
            # the market is moving: skip the limit's wait, go straight to the bounded fallback
            plan.skipped_wait = True
            return plan, plan._place_remainder(kind=config.fallback, role=OrderRole.PRIMARY)
        price = request.price if request.price is not None else choose_limit_price(
            request.side, book, config.price_source, request.order_type)  # fmt: skip
        if price is None:
            return plan, plan._finish(ResultReason.REFUSED_NO_PRICE, "no price given and the book is empty")
        price = rules.round_price(price, request.side)
        violation = rules.check(side=request.side, quantity=plan.requested, price=price, reference_price=book.mid)
        if violation is None and config.fallback is FallbackKind.MARKET:  # known now: not only once the limit waited
            violation = rules.check_market_fallback(plan.requested)
        if violation is not None:
            # PERCENT_PRICE included: judged on the mid, this refuses a price far from the market (a fat finger) that
            # a fallback would turn into a market order. In a spike the exchange judges on its lagging average
            # price and rejects limits near the market: that rejection goes to the fallback (`_on_failed`).
            return plan, plan._finish(ResultReason.REFUSED_FILTER, str(violation), dust=violation.is_dust,
                                      details=violation.details)  # fmt: skip
        limit_type = OrderType.LIMIT_MAKER if request.order_type is OrderType.LIMIT_MAKER else OrderType.LIMIT
        spec = OrderSpec(
            client_order_id=client_order_id(
                request.idempotency_key, pair=request.pair, namespace=config.id_namespace, tag=config.id_tag
            ),
            symbol=rules.symbol,
            side=request.side,
            order_type=limit_type,
            quantity=plan.requested,
            price=price,
            time_in_force=None if limit_type is OrderType.LIMIT_MAKER else request.time_in_force,
            role=OrderRole.PRIMARY,
            priority=request.priority,
        )
        plan._legs.append(_Leg(spec))
        plan._timer = _Timer(now_ms + config.limit_timeout_ms, "limit_timeout")
        return plan, [PlaceOrder(spec)]

    @staticmethod
    def config_for(request: OrderRequest, config: ExecutionConfig | None) -> ExecutionConfig:
        """The configuration with the request's own limit timeout and fallback (`ExecutionConfig.for_request`)."""
        return (config or ExecutionConfig()).for_request(request)

    # ---- queries ------------------------------------------------------------------------------------------
    @property
    def next_deadline_ms(self) -> int | None:
        """When the plan next wants a `Tick` (None when it waits only for exchange events)."""
        return None if self._timer is None or self.phase is Phase.DONE else self._timer.at_ms

    @property
    def filled(self) -> Decimal:
        """Total filled over all legs (exchange cumulative where known)."""
        return sum((leg.filled for leg in self._legs), Decimal(0))

    @property
    def fallback_retry(self) -> tuple[ClientOrderId, int] | None:
        """While the plan waits to send the remainder again (FALLBACK_WAIT): the order whose create failed with a
        retry-later error, and when (stored with the request, so that a restart resumes the wait)."""
        if self.phase is not Phase.FALLBACK_WAIT or self._timer is None or not self._legs:
            return None
        return self._legs[-1].spec.client_order_id, self._timer.at_ms

    def leg_ids(self) -> tuple[str, ...]:
        """Client order ids of every leg, in order."""
        return tuple(leg.spec.client_order_id for leg in self._legs)

    def _leg(self, cid: str) -> _Leg | None:
        for leg in self._legs:  # one or two legs: a loop beats building a generator (every event asks)
            if leg.spec.client_order_id == cid:
                return leg
        return None

    # ---- events -------------------------------------------------------------------------------------------
    def handle(self, event: ExecutionEvent, now_ms: int) -> list[ExecutionCommand]:
        """Apply one event at `now_ms`; return the commands to carry out. Never raises."""
        if isinstance(event, PriceUpdate):
            self.book = event.book
            # as in `start`: with no fallback that could trade, canceling early would only lose the limit's chance
            skip_wait = event.volatile and self.phase is Phase.LIMIT_WORKING and self._legs
            if skip_wait and self._fallback_would_trade():
                return self._cancel_live("volatility spike: skipping the wait")
            if self.phase is Phase.FALLBACK_WAIT and self._timer is None:
                return retry_now(self)  # it came due with no price to judge it by
            return []
        if isinstance(event, Tick):
            return self._on_tick(now_ms)
        if isinstance(event, Abort):
            return self._abort(event.reason)
        leg = self._leg(event.client_order_id)
        if leg is None:
            logger.warning("event for unknown leg {cid} ignored", cid=event.client_order_id)
            return []
        if isinstance(event, LegFilled):
            recorded = leg.add_fill(event.trade_id, event.quantity, event.quantity * event.price)
            if recorded and event.commission > 0:
                asset = event.commission_asset
                leg.fees[asset] = leg.fees.get(asset, Decimal(0)) + event.commission
            return []
        if self.phase is Phase.DONE:
            return []
        if isinstance(event, LegAcked):
            return []
        if isinstance(event, LegAmended):
            self.amended = self.amended or leg.spec.role is OrderRole.PRIMARY
            return []
        if isinstance(event, LegClosed):
            return self._on_closed(leg, event, now_ms)
        if isinstance(event, LegFailed):
            return self._on_failed(leg, event.error, now_ms)
        if isinstance(event, LegNotCreated):
            if leg.closed is not None or leg is not self._legs[-1]:
                return []
            if self.phase is Phase.CANCELING:
                # we were canceling a leg that never existed: nothing filled, go on (or end, if aborted)
                return self._on_closed(leg, LegClosed(leg.spec.client_order_id, OrderStatus.CANCELED, Decimal(0)),
                                       now_ms)  # fmt: skip
            # same client order id: safe, the first never existed (a market order: if the book still allows it)
            return market_again(self, leg) if leg.spec.order_type is OrderType.MARKET else [PlaceOrder(leg.spec)]
        if isinstance(event, CancelFailed) and self.phase is Phase.CANCELING and leg is self._legs[-1]:
            # Retried whatever the error: -2011 may be REST lagging the matching engine (ccxt #8179), a stop-trading
            # error (key, ban) leaves the order live too. A closed order's LegClosed (status lookup) ends the wait.
            self._cancel_failures += 1
            retry_after = event.error.retry_after_s if isinstance(event.error, RetryLater | Banned) else None
            delay = self.config.cancel_retry_delay_ms(self._cancel_failures, retry_after)
            self._timer = _Timer(now_ms + delay, "cancel_retry")
        return []

    def _on_tick(self, now_ms: int) -> list[ExecutionCommand]:
        timer = self._timer
        if timer is None or now_ms < timer.at_ms or self.phase is Phase.DONE:
            return []
        self._timer = None
        if timer.what == "limit_timeout" and self.phase is Phase.LIMIT_WORKING:
            return self._cancel_live("limit timeout")
        if timer.what == "cancel_retry" and self.phase is Phase.CANCELING:
            return self._cancel_live("retrying the cancel")
        if timer.what == "fallback_retry" and self.phase is Phase.FALLBACK_WAIT:
            return retry_now(self)
        return []

    def _cancel_live(self, reason: str) -> list[ExecutionCommand]:
        live = self._legs[-1]  # the primary while the limit works; the fallback when the caller aborts
        self.phase, self.canceling = Phase.CANCELING, live.spec.client_order_id
        self._timer = None
        return [CancelOrder(live.spec.client_order_id, live.spec.symbol, reason)]

    def _abort(self, reason: str) -> list[ExecutionCommand]:
        if self.phase is Phase.DONE or self._aborted:
            return []
        self._aborted = reason
        if not self._legs or self._legs[-1].closed is not None:
            return self._finish(ResultReason.CANCELED, reason)  # nothing live (e.g. waiting to re-place)
        return self._cancel_live(reason)

    def _on_closed(self, leg: _Leg, event: LegClosed, now_ms: int) -> list[ExecutionCommand]:
        leg.closed = event.status
        # FILLED means all of it, whatever fills are still on their way
        all_of_it = event.status is OrderStatus.FILLED and not (self.amended and leg is self._legs[0])  # amended: less
        cum = leg.spec.quantity if all_of_it else min(event.cum_qty, leg.spec.quantity)
        leg.cum_qty = max(leg.cum_qty, cum)
        leg.cum_quote = max(leg.cum_quote, event.cum_quote)
        if leg is not self._legs[-1]:
            return []  # an old leg closing late: its quantity is already in the totals
        if self.filled >= self.requested:
            late = event.status is OrderStatus.FILLED and self.canceling == leg.spec.client_order_id  # cancel too late
            return self._finish(ResultReason.FILLED, "filled before the cancel took effect" if late else "filled")
        if self._aborted:
            return self._finish(ResultReason.CANCELED, self._aborted)
        if event.status is OrderStatus.REJECTED:
            return self._on_failed(leg, ExchangeError("rejected by the exchange"), now_ms)
        if leg.spec.role is OrderRole.PRIMARY and self._fallback_attempts == 0 and leg.spec.order_type is not (
                OrderType.MARKET):  # fmt: skip
            # canceled outside, expired meeting this account's order (STP): a fallback would trade against it; or a
            # resting GTC limit the exchange expired by its own rules (a halt): a market order at once is no answer
            expired = event.status is OrderStatus.EXPIRED and leg.spec.resting
            outside = self.phase is Phase.LIMIT_WORKING and (event.status is OrderStatus.CANCELED or expired)
            if (event.prevented or outside or self.amended) and not self.config.fallback_after_external_cancel:
                how = ("expired by self-trade prevention" if event.prevented else "expired by the exchange" if expired
                       else "canceled outside the engine" if outside
                       else f"amended outside the engine, then {event.status.value}")  # fmt: skip
                return self._finish(ResultReason.CANCELED_EXTERNALLY, f"limit order {how}; fallback not sent")
            # our cancel confirmed, or the exchange expired the limit (IOC/FOK, or by its own rules)
            return self._place_remainder(kind=self.config.fallback, role=OrderRole.FALLBACK)
        if event.status is OrderStatus.FILLED:  # all it was sent for: the rest is below the market lot step
            left = plain_decimal(self.requested - self.filled)
            return self._finish(ResultReason.DUST, f"remainder {left} below the step", dust=True,
                                details={"remainder": left})  # fmt: skip
        # a market / IOC leg expired with a remainder: liquidity or the slippage bound ran out (`unfinished_reason`)
        why = "IOC at the slippage bound" if leg.spec.order_type is OrderType.LIMIT else "market order"
        detail = f"{why} {event.status.value} with a remainder"
        if leg.spec.slippage_capped:  # the market was beyond the bound when it left: said, with the numbers
            detail, details = capped_detail(detail, leg.spec.price, self.reference_price, self.config.max_slippage)
            return self._finish(unfinished_reason(self.request), detail, details=details)
        return self._finish(unfinished_reason(self.request), detail)

    def _on_failed(self, leg: _Leg, error: ExchangeError, now_ms: int) -> list[ExecutionCommand]:
        if isinstance(error, OutcomeUnknown):
            return []  # the resolver owns it; LegAcked or LegNotCreated follows
        leg.error = f"{type(error).__name__}: {error}"
        leg.closed = OrderStatus.REJECTED
        if self._aborted:
            return self._finish(ResultReason.CANCELED, f"{self._aborted}; {leg.error}")
        is_primary_limit = leg.spec.role is OrderRole.PRIMARY and leg.spec.order_type is not OrderType.MARKET
        if is_primary_limit and self._fallback_attempts == 0:
            if isinstance(error, FilterRejected) and error.is_percent_price and self.config.fallback is not (
                    FallbackKind.NONE):  # fmt: skip
                # the market ran away from the limit price: the volatility case, go to the fallback now
                return self._place_remainder(kind=self.config.fallback, role=OrderRole.FALLBACK)
            reason = ResultReason.STOP_TRADING if isinstance(error, StopTrading) else ResultReason.LIMIT_REJECTED
            return self._finish(reason, leg.error)
        if isinstance(error, RetryLater) and self._fallback_attempts < self.config.max_fallback_attempts:
            # nothing was executed: safe to place again (with a new leg id) once the exchange allows
            self.phase = Phase.FALLBACK_WAIT
            self._retry = (retry_kind(leg.spec, self.request, self.config), OrderRole.FALLBACK)
            self._timer = _Timer(now_ms + retry_wait_ms(error, self.config), "fallback_retry")
            return []
        reason = ResultReason.STOP_TRADING if isinstance(error, StopTrading) else rejected_reason(self.request)
        return self._finish(reason, leg.error)

    # ---- the fallback step --------------------------------------------------------------------------------
    def _fallback_would_trade(self) -> bool:
        """Would the fallback go out uncapped now? A spike skips the limit's wait only then (`within_bound`)."""
        config = self.config
        return config.fallback is not FallbackKind.NONE and within_bound(
            self.request.side, self.reference_price, self.book, config.max_slippage)  # fmt: skip

    def _place_remainder(self, *, kind: FallbackKind, role: OrderRole) -> list[ExecutionCommand]:
        remainder = self.requested - self.filled
        if remainder <= 0:
            return self._finish(ResultReason.FILLED, "filled")
        if kind is FallbackKind.NONE:
            if self.request.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):  # no timeout: it expired at once
                asked = self.request.time_in_force.value
                why = f"{asked} expired with the rest unfilled; no fallback ({asked} requests get one only when given)"
                return self._finish(ResultReason.FALLBACK_NONE, why)
            return self._finish(ResultReason.FALLBACK_NONE, "limit not filled in time; no fallback configured")
        book = self.book
        reference = self.reference_price
        side = self.request.side
        if book is None or reference is None:
            return self._finish(ResultReason.REFUSED_NO_PRICE, "no reference price for the slippage guard")
        decision = check_slippage(side, reference, book, self.config.max_slippage, self.config.slippage_action)
        if not decision.allowed:
            return self._finish(ResultReason.SLIPPAGE_REFUSED, decision.reason or "slippage", details=decision.details)
        self._capped = self._capped or decision.capped
        price: Decimal | None
        tif: TimeInForce | None
        if decision.capped or kind is FallbackKind.IOC_LIMIT:
            # a marketable IOC limit at the bound: fills what is within the bound, the rest expires
            order_type, price, tif = OrderType.LIMIT, self.rules.round_price(decision.bound, side), TimeInForce.IOC
            quantity = self.rules.floor_qty(remainder)
            average = book.mid  # stands for Binance's average price in PERCENT_PRICE(_BY_SIDE)
        else:
            order_type, price, tif = OrderType.MARKET, None, None
            quantity = self.rules.floor_qty(remainder, market=True)
            average = decision.current  # what the market order's notional is judged at
        violation = self.rules.check(side=side, quantity=quantity, price=price, reference_price=average)
        if violation is not None or quantity <= 0:
            dust = violation is None or violation.is_dust
            reason = ResultReason.DUST if dust else ResultReason.REFUSED_FILTER
            return self._finish(reason, f"remainder {plain_decimal(remainder)} not tradable: "
                                f"{violation or 'below the step'}", dust=dust,
                                details={**(violation.details if violation else {}),
                                         "remainder": plain_decimal(remainder)})  # fmt: skip
        self._fallback_attempts += 1
        primary = self._legs[0].spec.client_order_id if self._legs else None
        attempt = self._fallback_attempts if role is OrderRole.FALLBACK else 0
        key, namespace = self.request.idempotency_key, self.config.id_namespace
        spec = OrderSpec(
            client_order_id=client_order_id(key, pair=self.request.pair, fallback=attempt, namespace=namespace,
                                            tag=self.config.id_tag),
            symbol=self.rules.symbol,
            side=side,
            order_type=order_type,
            quantity=quantity,
            price=price,
            time_in_force=tif,
            role=role,
            priority=Priority.FALLBACK if role is OrderRole.FALLBACK else self.request.priority,
            parent_client_order_id=primary if role is OrderRole.FALLBACK else None,
            slippage_capped=decision.capped,
        )  # fmt: skip
        self._legs.append(_Leg(spec))
        self.phase = Phase.FALLBACK_WORKING
        self._timer = None
        return [PlaceOrder(spec)]

    # ---- the end ------------------------------------------------------------------------------------------
    def _finish(self, reason: ResultReason, detail: str, *, dust: bool = False,
                details: Mapping[str, str] | None = None) -> list[ExecutionCommand]:  # fmt: skip
        self.phase = Phase.DONE
        self._timer = None
        below_step = self.rules.floor_qty(self.request.amount - self.filled) <= 0
        self.result = _summarize(self.request, self._legs, reason, detail, dust=dust, capped=self._capped,
                                 details=details, below_step=below_step)  # fmt: skip
        return [ReportResult(self.result)]
