"""`AccountBook`: the account's balances as last known, the REST snapshot and the stream's updates ordered by the
exchange's account-update times, never by arrival (nor by the engine's clock).

The defect it fixes showed once in six runs of the BNB-fee end-to-end test: a wallet read answered after a fill's
`outboundAccountPosition` (the read waits for its prices) replaced the account with a snapshot from before the
fill, and `balances()` showed BNB already spent as free until the next minute's read; only the assets a later
update named were healed."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from actors._wallet import AccountBook
from engine.exchange import AccountPosition, BalanceEntry


def _snapshot(update_ms: int, **free: str) -> dict[str, object]:
    return {"updateTime": update_ms, "balances": [{"asset": a, "free": f, "locked": "0"} for a, f in free.items()]}


def _position(update_ms: int, **free: str) -> AccountPosition:
    entries = tuple(BalanceEntry(a, Decimal(f), Decimal(0)) for a, f in free.items())
    return AccountPosition(update_ms + 1, update_ms, entries)


def _free(book: AccountBook) -> dict[str, str]:
    assert book.account is not None
    return {str(r["asset"]): str(r["free"]) for r in book.account["balances"]}


def test_a_snapshot_taken_before_a_fill_and_answered_after_its_update_does_not_roll_the_asset_back() -> None:
    book = AccountBook()
    book.snapshot(_snapshot(1_000, BNB="0.0005", BTC="0"), now_ms=10)
    # The fill at 2,000 paid its fee in BNB: the stream says so at once.
    assert book.position(_position(2_000, BNB="0.00020025", BTC="0.009994"), now_ms=20) == ["BNB", "BTC"]
    # The minute's read had read the account at 1,500 (before the fill) and is answered now, its prices read.
    merged = book.snapshot(_snapshot(1_500, BNB="0.0005", BTC="0", USDT="99400"), now_ms=30)
    assert _free(book) == {"BNB": "0.00020025", "BTC": "0.009994", "USDT": "99400"}
    assert merged is book.account  # the valuation sees the same
    # A later read that holds the fill takes over, and an update older than it is ignored.
    book.snapshot(_snapshot(2_500, BNB="0.0002", BTC="0.009994", USDT="99400.16"), now_ms=40)
    assert book.position(_position(2_000, BNB="9"), now_ms=50) == []
    assert _free(book) == {"BNB": "0.0002", "BTC": "0.009994", "USDT": "99400.16"}


def test_an_update_stamped_behind_the_engines_clock_is_not_dropped() -> None:
    # The read was stamped with the engine's clock and the updates compared with it: an update whose exchange time
    # was a clock offset behind was dropped though it came after the read.
    book = AccountBook()
    book.snapshot(_snapshot(1_000, BTC="1"), now_ms=1_050)  # the engine's clock 50 ms ahead of the exchange's
    assert book.position(_position(1_020, BTC="1.5"), now_ms=1_060) == ["BTC"]
    assert _free(book) == {"BTC": "1.5"}


def test_nothing_before_the_first_snapshot() -> None:
    assert AccountBook().position(_position(1, BTC="1"), now_ms=1) == []


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 50), st.integers(0, 9)), max_size=30))
def test_the_balance_held_is_the_newest_by_the_exchanges_time_whatever_the_arrival_order(
    steps: list[tuple[bool, int, int]],
) -> None:
    # Each step is a snapshot or an update of BTC at an account-update time, its value that time (so the newest
    # value is always the greatest time's): whatever order they arrive in, the book ends on the newest one seen.
    book = AccountBook()
    book.snapshot(_snapshot(0, BTC="0"), now_ms=0)
    newest = 0
    for is_snapshot, when, _ in steps:
        if is_snapshot:
            book.snapshot(_snapshot(when, BTC=str(when)), now_ms=0)
        else:
            book.position(_position(when, BTC=str(when)), now_ms=0)
        newest = max(newest, when)
        assert Decimal(_free(book)["BTC"]) == newest


def test_balances_are_plain_exact_text() -> None:
    # Found by a strategy author: `Engine.balances()` gave "0E-8" (the control API converted, Python did not).
    from types import SimpleNamespace

    from actors._wallet import WalletMixin

    account = {"balances": [{"asset": "BTC", "free": "1.50000000", "locked": "0E-8"}, {"asset": "ETH", "free": "0"}]}
    root = SimpleNamespace(_balances=SimpleNamespace(account=account, as_of_ms=5),
                           _state=SimpleNamespace(intake=lambda: SimpleNamespace(wallet_btc=None)))  # fmt: skip
    assert WalletMixin.balances(root)["balances"] == {"BTC": {"free": "1.5", "locked": "0"}}  # type: ignore[arg-type]
