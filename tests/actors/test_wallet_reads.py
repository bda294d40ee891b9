"""The root's wallet reads (`WalletMixin`): one at a time, so a flapping user stream — each gap asks for the
account again — does not spend the account's request weight (20) once per gap."""

from __future__ import annotations

from typing import Any

from actors._wallet import _WALLET_READ_STALE_MS, WalletMixin
from engine.clock import ManualClock
from engine.gateway import GatewayRequest, GatewayResult, Op


class _Gateway:
    def __init__(self) -> None:
        self.sent: list[GatewayRequest] = []

    def submit(self, request: GatewayRequest) -> None:
        self.sent.append(request)


class _Self:
    """The root's own proxy: `x.defer(...)` is called at once here (the test is the root's thread)."""

    def __init__(self, owner: Any) -> None:
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._owner, name)
        return type("Deferred", (), {"defer": staticmethod(method)})()


class _Wallet(WalletMixin):
    def __init__(self) -> None:
        self.gateway = _Gateway()
        self._clock = ManualClock()
        self._stopping = False
        self._self = _Self(self)
        self._symbol_pairs = {}
        self.valued: list[Any] = []

    def _set_wallet(self, account: Any, tickers: Any) -> None:
        self.valued.append((account, tickers))


def _answer(wallet: _Wallet, data: Any = None, error: Exception | None = None) -> None:
    request = wallet.gateway.sent[-1]
    assert request.reply_to is not None
    request.reply_to(GatewayResult(request, data=data, error=error))


def test_gaps_during_a_wallet_read_ask_one_more_read_after_it() -> None:
    # Each gap read the account again: a flapping stream spent weight 20 per gap. One read at a time now, and
    # one more after it when gaps came meanwhile (the read under way may predate them).
    wallet = _Wallet()
    wallet.refresh_wallet()
    assert [r.op for r in wallet.gateway.sent] == [Op.ACCOUNT]
    _answer(wallet, {"balances": []})
    assert [r.op for r in wallet.gateway.sent] == [Op.ACCOUNT, Op.TICKER_PRICE]
    _answer(wallet, [])
    assert len(wallet.valued) == 1
    wallet.refresh_wallet()  # done: the next gap reads again
    wallet.refresh_wallet()  # three more gaps while it is under way …
    wallet.refresh_wallet()
    wallet.refresh_wallet()
    assert [r.op for r in wallet.gateway.sent][2:] == [Op.ACCOUNT]
    _answer(wallet, {"balances": []})
    _answer(wallet, [])
    assert [r.op for r in wallet.gateway.sent][2:] == [Op.ACCOUNT, Op.TICKER_PRICE, Op.ACCOUNT]  # … one more
    _answer(wallet, {"balances": []})
    _answer(wallet, [])
    assert len(wallet.gateway.sent) == 6 and len(wallet.valued) == 3  # and no more


def test_a_failed_read_or_one_never_answered_does_not_hold_the_next_back() -> None:
    wallet = _Wallet()
    wallet.refresh_wallet()
    _answer(wallet, error=RuntimeError("503"))
    wallet.refresh_wallet()
    assert [r.op for r in wallet.gateway.sent] == [Op.ACCOUNT, Op.ACCOUNT]
    wallet._clock.advance(_WALLET_READ_STALE_MS)  # this one is never answered
    wallet.refresh_wallet()
    assert [r.op for r in wallet.gateway.sent] == [Op.ACCOUNT, Op.ACCOUNT, Op.ACCOUNT]
