"""What the pair actor needs of persistence (`StoreLike`) and asks of it: a caller's cancel stored ahead of its send
(`send_cancel_ahead`), an order that left the book's memory (`stored_view`), and the answer to a replayed idempotency
key (`replayed_outcome`). Re-exported by `actors._pair_home`."""

from __future__ import annotations

import concurrent.futures
import contextlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from loguru import logger

from engine.api import PlaceOutcome, Refusal, RefusalReason
from engine.domain import ClientOrderId, Order, OrderRequest, OrderStatus
from engine.pair import CancelAhead, key_reused, replay_outcome

__all__ = ["StoreLike", "replayed_outcome", "send_cancel_ahead", "stored_view"]


class StoreLike(Protocol):
    """What the pair actor needs of persistence (`actors.persistence.PersistenceHandle`)."""

    proxy: Any
    """The persistence actor's proxy (queries: `get_order(cid)` → future)."""

    def save_many(self, records: Sequence[Any]) -> None:
        """Fire-and-forget store of several records, in order, as one message."""

    def write_ahead_then(
        self,
        record: Any,
        on_durable: Callable[[], None],
        on_failed: Callable[[BaseException], None],
        companions: Sequence[Any] = (),
    ) -> None:
        """Store `record` with `companions` in one commit; call `on_durable()` once they are durable, else
        `on_failed(error)` (both on the persistence thread)."""


def send_cancel_ahead(
    command: CancelAhead, send: Callable[[concurrent.futures.Future[None]], None], store: StoreLike,
    companions: Sequence[Any] = (),
) -> None:  # fmt: skip
    """Carry out a `CancelAhead`: `send(gate)` queues the cancel at the gateway behind `gate`, which opens once its
    record (with `companions`) is stored — or once storing it failed: the database may delay a cancel by one
    commit, never hold it back (a failure is logged: only a crash before the retry would then matter). Raises
    what `store` raises, the gate opened first."""
    stored: concurrent.futures.Future[None] = concurrent.futures.Future()
    bound = logger.bind(pair=command.send.pair, client_order_id=command.send.key)

    def open_gate(exc: BaseException | None = None) -> None:
        if exc is not None:
            bound.error("the caller's cancel leaves with its request's cancel not stored: {}", exc)
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            stored.set_result(None)

    send(stored)
    try:
        store.write_ahead_then(command.record, open_gate, open_gate, companions)
    except Exception as exc:
        open_gate(exc)
        raise


def stored_view(store: Any, cid: ClientOrderId, timeout_s: float) -> tuple[Order | None, list[Any], Any]:  # float-ok: s
    """What `PairBook.on_stored` needs of an order that left memory: the stored order, its fills and its
    request's trade, asked of persistence (`store`: its proxy). Raises what the asks raise."""
    order = store.get_order(cid).get(timeout=timeout_s)
    if order is None:
        return None, [], None
    return order, store.fills_of(cid).get(timeout=timeout_s), store.get_trade(order.request_id).get(timeout=timeout_s)


def replayed_outcome(
    store: Any,
    request: OrderRequest,
    cid: ClientOrderId,
    timeout_s: float,  # float-ok: seconds
) -> PlaceOutcome | None:
    """The answer to a replayed idempotency key whose primary order is `cid`, from the database (`store`:
    persistence's proxy); None when no such order was stored (the key is new after all: a Bloom false positive).
    A lookup that fails is a `conflict` to retry later: placing the request again could duplicate it."""
    bound = logger.bind(pair=request.pair, client_order_id=cid)
    try:
        order = store.get_order(cid).get(timeout=timeout_s)
        stored = None if order is None else store.request_of(order.request_id).get(timeout=timeout_s)
    except Exception as exc:  # noqa: BLE001 - any failure: we cannot tell, so do not risk a duplicate
        bound.error("idempotency lookup failed: {}", exc)
        return Refusal(
            RefusalReason.CONFLICT, f"cannot check the idempotency key now ({exc}); retry later", {"retry": "1"}
        )
    if order is None:
        return None
    reused = None if stored is None else key_reused(stored.request, request)
    if reused is not None:
        bound.warning("idempotency key reused for another request: {}", reused.message)
        return reused
    if order.status is OrderStatus.REJECTED:
        # its fallback may have executed the request: answer with that order, not "rejected"
        children = store.children_of(cid).get(timeout=timeout_s)
        order = next((c for c in children if c.status is not OrderStatus.REJECTED), order)
    bound.info("idempotency key replayed; answering from the database")
    return replay_outcome(order)
