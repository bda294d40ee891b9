"""Requests to a running engine: placing orders, told to the pair's actor (canceling them: `_cancels`).

`EngineRequests` is mixed into `Engine`. Arguments are validated here, in the caller's thread, into an
`OrderRequest`; a placement the engine cannot take is answered with a `Refusal`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import pykka
from pydantic import ValidationError

from engine.api._lifecycle import refuse_on_engine_thread
from engine.api._types import Placement, PlaceOutcome, Refusal, RefusalReason
from engine.domain import (
    FallbackKind,
    OrderRequest,
    OrderType,
    Pair,
    Priority,
    RequestId,
    Side,
    StrategyContext,
    TimeInForce,
    check_significant,
)

if TYPE_CHECKING:
    from actors.root import EngineState, Routing
    from engine.clock import Clock

__all__ = ["EngineRequests", "EngineStopped", "EngineTimeout", "running"]

Number = Decimal | str | int
_P = ParamSpec("_P")
_T = TypeVar("_T")
_E = TypeVar("_E", bound=Enum)


def _member(name: str, kind: type[_E], value: object, case: Callable[[str], str]) -> _E:
    """`value` as a member of `kind`: the member itself, or its value in any letter case (`case` writes it as the
    enum does). A refusal lists every valid value."""
    if isinstance(value, kind):
        return value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return kind(case(value))
    valid = ", ".join(str(member.value) for member in kind)
    raise ValueError(f"{name}: {value!r} is not one of {valid} (any letter case)")


def _key(value: str | None, request_id: RequestId) -> str:
    """The idempotency key: the caller's, or the request's own id when there is none. An empty one is refused:
    taken as "no key" it would silently let a re-sent request execute twice."""
    if value is None:
        return request_id
    if not isinstance(value, str) or not value:
        raise ValueError(f"idempotency_key: {'must not be empty' if value == '' else 'must be a string'} (omit it, "
                         "or pass None, for a request without one)")  # fmt: skip
    return value


def _decimal(name: str, value: object) -> Decimal:
    if isinstance(value, float | bool) or not isinstance(value, Decimal | str | int):
        # Not only float: anything whose text parses (numpy's float32 among them) slipped past as a number.
        raise ValueError(f"{name} must be a Decimal, str or int, not {type(value).__name__} (money is never a float)")
    if isinstance(value, str) and "_" in value:  # Decimal reads "0_001" as 1: a typo must not buy a thousand times
        raise ValueError(f"{name}: no digit separators, got {value!r}")
    try:
        out = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{name} is not a number: {value!r}") from None
    if not out.is_finite():
        raise ValueError(f"{name} must be finite")
    return out


class EngineStopped(RuntimeError):
    """The engine was stopped: it answers no more queries (a placement after the stop is refused instead)."""


class EngineTimeout(TimeoutError):
    """An actor the query asked did not answer in time (busy, or stuck); the engine still runs."""


def running(what: str) -> Callable[[Callable[Concatenate[Any, _P], _T]], Callable[Concatenate[Any, _P], _T]]:
    """Decorate an `Engine` query: `EngineStopped` once the engine is stopped — also for a query that was
    already running when `stop()` stopped the actor it was asking (pykka's `ActorDeadError`, or the root's
    "no persistence actor"). Outside a stop those errors are raised as they are: they mean something else.
    """

    def wrap(fn: Callable[Concatenate[Any, _P], _T]) -> Callable[Concatenate[Any, _P], _T]:
        @functools.wraps(fn)
        def call(self: Any, *args: _P.args, **kwargs: _P.kwargs) -> _T:
            refuse_on_engine_thread(what)
            self._require_running(what)
            try:
                return fn(self, *args, **kwargs)
            except (pykka.ActorDeadError, _NoStore):
                if self._stopped:
                    raise EngineStopped(f"the engine stopped while answering {what}") from None
                raise
            except pykka.Timeout as exc:
                # pykka's is a plain Exception: as a TimeoutError callers (the control API's 504) can tell it.
                raise EngineTimeout(f"no answer in time for {what}: {exc}") from None

        return call

    return wrap


class _NoStore(RuntimeError):
    """The root has no persistence actor (it is stopping or stopped)."""


class EngineRequests:
    """Mixed into `Engine`: `place_order`, told to the pair's actor without waiting."""

    _stopped: bool
    _closed: bool
    _routing: Routing
    _state: EngineState
    _whitelist: tuple[Pair, ...]
    """The configured whitelist: a pair is in it whether or not its actor ever started (routing says that)."""
    clock: Clock
    _actor_answer: Callable[[Placement], concurrent.futures.Future[PlaceOutcome]]

    def place_order(
        self,
        pair: str,
        side: str | Side,
        amount: Number,
        price: Number | None = None,
        order_type: str | OrderType = "limit",
        *,
        priority: Priority | int | str = Priority.ENTRY,
        idempotency_key: str | None = None,
        context: StrategyContext | Mapping[str, Any] | None = None,
        limit_timeout: Number | None = None,
        fallback: str | FallbackKind | None = None,
        time_in_force: str | TimeInForce = TimeInForce.GTC,
    ) -> Placement:
        """Execute a request: a limit order (or market), chased and fallen back per configuration.

        Returns a `Placement`: a future resolving to `Accepted(order)` at the exchange's ack, or a `Refusal`
        with a machine-readable `reason` (`risk_limit`, `wallet_below_minimum`, `filter_failure`, `conflict`,
        `halted`, `not_whitelisted`, `invalid_request`, `rejected`, …) — never None — with the request's
        `request_id`, to cancel it even before the ack (queued behind another request of its pair). The same
        `idempotency_key` twice on a pair sends nothing new: it answers `Accepted(duplicate=True)` with what the
        original request did — its `trade` once it has finished, its `latest` order (the fallback once one was
        sent) — read when the duplicate is answered, and the placement's `request_id` names the original request
        from that answer on (keys are per pair: the same key on another pair is another request).

        `price`: a limit's price; without one, a limit rests at the best bid or ask of the moment it starts
        (`execution.limit_price_side`: `maker`, the own side of the book, or `taker`; a `LIMIT_MAKER` always takes its
        own side). With a market order a price is a bound: the order goes out as an IOC limit at the slippage bound
        around it, and what the book does not offer within it expires. A request with `time_in_force` IOC or FOK
        gets no fallback unless one is given: it asked to trade at its price now or not at all. `priority`: the
        request's level in the gateway queue, `ENTRY` (default), `EXIT` or `FALLBACK`; `CANCEL` is refused (it is
        the cancels' own level).
        `side`, `order_type`, `time_in_force`, `fallback` and `priority` (by name: "exit") take the enum member or
        its value in any letter case ("BUY", "ioc", "Market"); anything else is refused `invalid_request` with the
        valid values listed.
        `idempotency_key`: None (the default) for a request without one; an empty key is refused.
        """
        request_id = RequestId(uuid.uuid4().hex)
        future = Placement(request_id)
        # Running from the start: `future.cancel()` says False, since it cannot stop the request (`cancel_order`
        # does); it returned True and the order was placed all the same.
        future.set_running_or_notify_cancel()
        if self._stopped:
            future.set_result(Refusal(RefusalReason.SHUTTING_DOWN, "the engine is stopped"))
            return future
        try:
            request = OrderRequest(
                request_id=request_id,
                pair=pair,
                side=_member("side", Side, side, str.lower),
                amount=check_significant("amount", _decimal("amount", amount)),
                price=None if price is None else check_significant("price", _decimal("price", price)),
                order_type=_member("order_type", OrderType, order_type, str.lower),
                time_in_force=_member("time_in_force", TimeInForce, time_in_force, str.upper),
                priority=_priority(priority),
                idempotency_key=_key(idempotency_key, request_id),
                context=context if isinstance(context, StrategyContext) else StrategyContext(**(context or {})),
                limit_timeout_s=None if limit_timeout is None else _decimal("limit_timeout", limit_timeout),
                fallback=None if fallback is None else _member("fallback", FallbackKind, fallback, str.lower),
                created_at=self.clock.now(),
            )
        except (ValidationError, ValueError, TypeError) as exc:  # TypeError: a `context` that is not a mapping
            future.set_result(Refusal(RefusalReason.INVALID_REQUEST, _short(exc)))
            return future
        if request.priority is Priority.CANCEL:
            # The cancel level is what lets a cancel overtake a backlog of creates: a create there would queue
            # ahead of the cancels it must never delay.
            future.set_result(Refusal(RefusalReason.INVALID_REQUEST, "priority: a new order is entry, exit or "
                                      "fallback; cancel is the level of cancels"))  # fmt: skip
            return future
        if Pair(request.pair) not in self._whitelist:
            future.set_result(Refusal(RefusalReason.NOT_WHITELISTED, f"{request.pair} is not in the pair whitelist"))
            return future
        # The actor answers a future of its own: a duplicate's answer is completed (`_replays`) before the caller's.
        if not self._tell_pair(Pair(request.pair), "place", request, self._actor_answer(future)):
            future.set_result(self._unreachable(request.pair))
        return future

    def _require_running(self, what: str) -> None:
        # Clear and the same everywhere: pykka's "actor not found" is no error for a caller to interpret. Reads are
        # not refused during the drain (the root's wait until it is over: its thread runs the stop); a query the
        # stop overtakes is turned into the same error by `running`.
        if self._closed:
            raise EngineStopped(f"the engine is stopped: {what} is not available")

    def _tell_pair(self, pair: Pair, method: str, *args: Any) -> bool:
        """Tell `pair`'s actor (`place`, `cancel`), through the pair's home (`_Home.tell_running`: race-free with a
        crash, a message is taken by the restarted actor); False when no actor runs the pair (restarting, or past
        the budget)."""
        home = self._routing.homes.get(pair)
        return home is not None and bool(home.tell_running(method, *args))

    def _unreachable(self, pair: str) -> Refusal:
        ctx = self._state.intake()
        if ctx.halted:
            return Refusal(RefusalReason.HALTED, f"the engine is halted ({ctx.halt_reason or 'see alerts'}); the "
                           f"{pair} actor is stopped; nothing was sent")  # fmt: skip
        return Refusal(RefusalReason.HALTED, f"the {pair} actor is restarting; nothing was sent; retry",
                       {"retry": "1"})  # fmt: skip


_ARGUMENT_NAMES = {"limit_timeout_s": "limit_timeout"}
"""Fields named as the caller names them (`place_order`'s arguments), not as the model stores them."""


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        # A context given as a mapping is validated on its own (`StrategyContext(**context)`): its fields are the
        # caller's `context.<name>`.
        prefix = ("context",) if exc.title == StrategyContext.__name__ else ()
        return "; ".join(_error_text(e, prefix) for e in exc.errors(include_input=False, include_url=False))
    return str(exc)


def _error_text(error: Any, prefix: tuple[str, ...]) -> str:
    loc = (*prefix, *error["loc"])
    where = ".".join(_ARGUMENT_NAMES.get(str(p), str(p)) for p in loc) or "request"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden" and loc[:1] == ("context",):
        fields = ", ".join(name for name in StrategyContext.model_fields)
        message = f"not a context field (the fields: {fields}; other indicator values go in `extra`)"
    return f"{where}: {message}"


def _priority(value: Priority | int | str) -> Priority:
    valid = ", ".join(f"{p.name} ({p.value})" for p in Priority if p is not Priority.CANCEL)
    if isinstance(value, str) and not isinstance(value, Priority):  # its name in any letter case, as the other enums
        try:
            return Priority[value.upper()]
        except KeyError:
            raise ValueError(f"priority: {value!r} is not a request priority; one of {valid}") from None
    if isinstance(value, bool) or not isinstance(value, int):  # True is 1: the fallbacks' level, silently
        raise ValueError(f"priority: {value!r} is not a request priority; one of {valid}")
    try:
        return Priority(value)
    except ValueError:
        raise ValueError(f"priority: {value!r} is not a request priority; one of {valid}") from None
