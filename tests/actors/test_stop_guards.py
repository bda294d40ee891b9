"""The shutdown drain and the wallet read at a stop (found by a lifecycle review), on the mixins alone."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from actors._supervision import SupervisionMixin
from actors._wallet import WalletMixin
from actors.gateway._feedback import GatewayStats
from engine.clock import ManualClock
from engine.gateway import GatewayRequest, GatewayResult, Op

_IDLE = GatewayStats(queued=0, in_flight=0, sent=0, failed=0, blocked_until_ms=0, orders_halted=False,
                     clock_offset_ms=0)  # fmt: skip


class _Gateway:
    def __init__(self, stats: GatewayStats) -> None:
        self._stats = stats
        self.submitted: list[GatewayRequest] = []

    def stats(self) -> GatewayStats:
        return self._stats

    def submit(self, request: GatewayRequest) -> None:
        self.submitted.append(request)


def _root(stats: GatewayStats, clock: ManualClock) -> Any:
    root: Any = object.__new__(SupervisionMixin)
    root.gateway, root._clock = _Gateway(stats), clock
    return root


def test_a_stop_does_not_wait_for_requests_a_retry_after_holds_past_its_waits() -> None:
    # A 429 with Retry-After 90 s: reads queued behind it cannot leave; `stop(graceful=False)` waited 15 s for the
    # gateway to go idle, a graceful stop 30 s (the cancels too), and said nothing of why.
    clock = ManualClock(1_000_000)
    waits_end = clock.now_ms() + 30_000  # a graceful stop's two waits
    held = replace(_IDLE, queued=3, blocked_until_ms=clock.now_ms() + 90_000)
    assert _root(held, clock)._held_past(waits_end)
    # Diff review: a 20 s hold ends within a graceful stop's 30 s: its cancels leave, so it is waited out
    assert not _root(replace(held, blocked_until_ms=clock.now_ms() + 20_000), clock)._held_past(waits_end)
    assert not _root(replace(held, in_flight=1), clock)._held_past(waits_end)  # an answer still to come
    assert not _root(replace(_IDLE, queued=3), clock)._held_past(waits_end)


def test_an_account_answer_queued_behind_the_stop_sends_nothing() -> None:
    # The wallet's account answer arrived after the drain: it sent the prices request, whose answer went to the
    # stopped root (ERROR with a traceback at an ordinary stop).
    wallet: Any = object.__new__(WalletMixin)
    wallet.gateway, wallet._stopping, wallet._self = _Gateway(_IDLE), True, None
    wallet._alerts = lambda *_: None
    wallet.on_wallet_account(GatewayResult(GatewayRequest(Op.ACCOUNT, {}), data={"balances": []}))
    assert wallet.gateway.submitted == []
