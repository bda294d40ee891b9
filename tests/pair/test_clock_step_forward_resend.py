"""A host clock stepped forward does not cut short the grace before a create of unknown outcome is sent again.

Binance keeps client order ids unique among open orders only: a market create that timed out, then re-sent once
"not found" is past the grace, buys twice if the first one executed (REST shows an order 10–20 s late). The time
review found a 60 s forward step re-sending after 4 s of real time, with the pure core fed the wall clock; the
engine's clock (`SystemClock`) does not step, so the grace lasts its real 60 s (within the 5 % catch-up rate)."""

from __future__ import annotations

from engine.clock import SLEW, SystemClock
from engine.exchange import OrderNotFound, OutcomeUnknown
from engine.gateway import Op
from tests.pair._book_helpers import T0, Harness, request

MS = 1_000_000


def test_a_forward_step_does_not_shorten_the_unknown_outcome_grace() -> None:
    host = {"wall": T0 * MS, "steady": 0}
    clock = SystemClock(wall_ns=lambda: host["wall"], steady=lambda: host["steady"])
    h = Harness()  # the default grace: 60 s
    h.now = clock.now_ms()
    h.place(request(price=None))  # a market request
    h.answer(error=OutcomeUnknown("timeout", operation="create_order"))
    real_ms, stepped = 0, False
    while real_ms < 120_000:
        pending = [k for k in h.timers if k.startswith("lookup:")]
        if not pending:
            break
        due = h.timers.pop(pending[0])
        wait_ms = max(1, due - h.now)  # the ticker fires after the time asked for has passed
        if not stepped:
            host["wall"] += 60_000 * MS  # NTP steps the host clock a minute forward
            stepped = True
        host["wall"] += wait_ms * MS
        host["steady"] += wait_ms * MS
        real_ms += wait_ms
        h.now = clock.now_ms()
        h.run(h.book.on_timer(pending[0], h.now))
        creates = [r for r in h.sent if r.op is Op.CREATE_ORDER]
        if len(creates) == 2:
            break
        if h.sent[-1].op is Op.FETCH_ORDER:  # REST does not show the order yet
            h.answer(error=OrderNotFound("Order does not exist.", operation="fetch_order", code=-2013))
    creates = [r for r in h.sent if r.op is Op.CREATE_ORDER]
    assert len(creates) == 2, "the create was never re-sent"
    assert real_ms >= 60_000 * (SLEW - 1) // SLEW, f"re-sent after {real_ms} ms of real time"
