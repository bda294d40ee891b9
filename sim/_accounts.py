"""Accounts and balances (pure). Free and locked are kept consistent and never negative."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from sim._config import AccountSpec
from sim._errors import INSUFFICIENT_BALANCE, SimError, fmt

__all__ = ["Account", "Balance"]

ZERO = Decimal(0)


@dataclass
class Balance:
    """Free and locked amount of one asset."""

    free: Decimal = ZERO
    locked: Decimal = ZERO


@dataclass
class Account:
    """One simulated account: its key spec, balances and the assets touched since the last report."""

    spec: AccountSpec
    balances: dict[str, Balance] = field(default_factory=dict)
    update_time: int = 0
    touched: set[str] = field(default_factory=set)

    @classmethod
    def from_spec(cls, spec: AccountSpec) -> Account:
        """New account with the spec's starting balances."""
        acc = cls(spec=spec)
        for asset, amount in spec.balances.items():
            acc.balances[asset] = Balance(free=Decimal(amount))
        return acc

    @property
    def name(self) -> str:
        """The account's ledger name."""
        return self.spec.name

    def bal(self, asset: str) -> Balance:
        """The balance of ``asset`` (created at zero)."""
        b = self.balances.get(asset)
        if b is None:
            b = Balance()
            self.balances[asset] = b
        return b

    def require_free(self, asset: str, amount: Decimal) -> None:
        """Raise -2010 insufficient balance unless ``amount`` of ``asset`` is free."""
        if amount > self.bal(asset).free:
            raise SimError(400, -2010, INSUFFICIENT_BALANCE)

    def lock(self, asset: str, amount: Decimal) -> None:
        """Move ``amount`` from free to locked (checks the free balance)."""
        self.require_free(asset, amount)
        b = self.bal(asset)
        b.free -= amount
        b.locked += amount
        self.touched.add(asset)

    def unlock(self, asset: str, amount: Decimal) -> None:
        """Move ``amount`` from locked back to free."""
        b = self.bal(asset)
        if amount > b.locked:
            raise AssertionError(f"unlock {amount} {asset} > locked {b.locked}")
        b.locked -= amount
        b.free += amount
        self.touched.add(asset)

    def spend_locked(self, asset: str, amount: Decimal) -> None:
        """Remove ``amount`` from the locked balance (paid out in a trade)."""
        b = self.bal(asset)
        if amount > b.locked:
            raise AssertionError(f"spend {amount} {asset} > locked {b.locked}")
        b.locked -= amount
        self.touched.add(asset)

    def spend_free(self, asset: str, amount: Decimal) -> None:
        """Remove ``amount`` from the free balance (checks it)."""
        self.require_free(asset, amount)
        self.bal(asset).free -= amount
        self.touched.add(asset)

    def credit(self, asset: str, amount: Decimal) -> None:
        """Add ``amount`` (may be negative for a withdrawal, never below zero) to the free balance."""
        b = self.bal(asset)
        if b.free + amount < 0:
            raise SimError(400, -2010, INSUFFICIENT_BALANCE)
        b.free += amount
        self.touched.add(asset)

    def position_event(self, now_ms: int) -> dict[str, object] | None:
        """``outboundAccountPosition`` for the assets touched since the last call, or None."""
        if not self.touched:
            return None
        self.update_time = now_ms
        assets = sorted(self.touched)
        self.touched.clear()
        return {
            "e": "outboundAccountPosition",
            "E": now_ms,
            "u": now_ms,
            "B": [{"a": a, "f": fmt(self.bal(a).free), "l": fmt(self.bal(a).locked)} for a in assets],
        }

    def balances_json(self, omit_zero: bool = False) -> list[dict[str, str]]:
        """``balances`` of ``GET /api/v3/account``."""
        out = []
        for asset in sorted(self.balances):
            b = self.balances[asset]
            if omit_zero and b.free == 0 and b.locked == 0:
                continue
            out.append({"asset": asset, "free": fmt(b.free), "locked": fmt(b.locked)})
        return out
