"""Holding a create's bytes until its intent is durable, while ccxt prepares and signs it.

The write-ahead rule says an order's intent is committed before the order leaves. Waiting for the commit
before even handing the create to the gateway put the commit and the request's preparation (queueing, rate
budget, ccxt's parameter handling, signing) one after the other on the order's critical path. Instead the
gateway starts the call at once with a `SendGate` in the call's context, and the client's `fetch` — the last
step before aiohttp puts bytes on the wire — waits there for the commit. Nothing leaves earlier than before;
it only leaves sooner after the commit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Awaitable, Callable
from contextvars import ContextVar

__all__ = ["SEND_GATE", "STALE_AFTER_S", "WITHDRAWN_AT_STOP", "NotSent", "SendGate", "Withdrawn", "pass_gate"]

STALE_AFTER_S = 1.0
"""A create held at its gate longer than this is signed again before it leaves: its signed `timestamp` must
stay within Binance's recvWindow (5 s by default, and a slow commit is not a clock fault)."""


class NotSent(Exception):
    """The request never left: its gate failed (the intent could not be made durable)."""


class Withdrawn(NotSent):
    """The create never left: the engine began to stop before it did (its requester is answered: not sent)."""


WITHDRAWN_AT_STOP = "not sent: the engine is stopping"
"""The rejection of a create withdrawn as the engine stops: its caller hears `shutting_down`."""

HELD_PAST_LIMIT = "not sent: new orders are held until"
"""The start of the rejection of a create the order limits would hold past `max_create_hold` (a daily order count
reached, a long ban): its caller hears `halted` (the engine halts new orders until the hold ends)."""

CANCELED_BEFORE_SENT = "not sent: canceled before it left"
"""The rejection of a create its request's caller canceled while it waited in the gateway (a Retry-After, an order
window): it never leaves (`GatewayHandle.withdraw_create`)."""


class SendGate:
    """One call's gate: `durable` resolves (or fails) from the persistence thread; `on_open` runs on the
    loop once the intent is durable, and may wait (the gateway waits there for its rate budget, then arms the
    call's timeout: a slow commit is not a slow exchange), or raise `NotSent` (the gateway is stopping);
    `on_park` runs when the call has to wait (the gateway lends its slot to others meanwhile)."""

    def __init__(
        self,
        durable: concurrent.futures.Future[None],
        on_open: Callable[[], Awaitable[None]],
        on_park: Callable[[], None] | None = None,
    ) -> None:
        self._durable = durable
        self._on_open = on_open
        self._on_park = on_park
        self.opened = False

    async def passed(self) -> bool:
        """Return once the intent is durable and the request may leave — True if the wait was long enough for
        the request's signature to go stale (`STALE_AFTER_S`); raise `NotSent` if it must not leave."""
        durable = self._durable
        loop = asyncio.get_running_loop()
        started = loop.time()
        if not durable.done():
            if self._on_park is not None:
                self._on_park()
            waiter: asyncio.Future[None] = loop.create_future()

            def relay(_: concurrent.futures.Future[None]) -> None:
                # Persistence thread. The waiter is settled on the loop; a loop already closed (shutdown) has
                # nobody left to tell.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_settle, waiter)

            durable.add_done_callback(relay)
            await waiter  # a cancellation (shutdown, the call's cap) propagates; `durable` is left alone
        error = durable.exception()
        if error is not None:
            raise NotSent(f"the order intent is not durable: {error}") from error
        await self._on_open()
        self.opened = True
        return loop.time() - started > STALE_AFTER_S


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


SEND_GATE: ContextVar[SendGate | None] = ContextVar("bexec_send_gate", default=None)
"""The gate of the call running in this task, if any (set by the gateway, passed by the client's fetch)."""


async def pass_gate() -> bool:
    """Wait at the current call's gate, if it has one that has not opened yet (the client's `fetch`); True when
    the request waited so long that it must be signed again before it leaves."""
    gate = SEND_GATE.get()
    if gate is not None and not gate.opened:
        return await gate.passed()
    return False
