"""Start-up checks: pure verdicts over what the exchange answered (the runner fetches, this judges).

Each check prints pass / warn / fail / skip with why. Trading starts only when none failed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from engine.domain import pair_to_symbol

__all__ = ["CheckResult", "CheckStatus", "ExchangeFacts", "evaluate_checks", "format_checks"]


class CheckStatus(StrEnum):
    """Outcome of one check."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict and the reason for it."""

    name: str
    status: CheckStatus
    detail: str


@dataclass(frozen=True)
class ExchangeFacts:
    """What the runner learned from the exchange; an `*_error` is set instead when a call failed."""

    exchange_info: Mapping[str, Any] | None = None
    exchange_info_error: str | None = None
    account: Mapping[str, Any] | None = None
    account_error: str | None = None
    api_restrictions: Mapping[str, Any] | None = None
    api_restrictions_error: str | None = None
    clock_offset_ms: int | None = None
    clock_error: str | None = None


def _filters(symbol: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(f.get("filterType")): f for f in symbol.get("filters", ())}


def _pairs_check(info: Mapping[str, Any], pairs: Sequence[str]) -> list[CheckResult]:
    symbols = {str(s.get("symbol")): s for s in info.get("symbols", ())}
    out = []
    for pair in pairs:
        sym = symbols.get(pair_to_symbol(pair))
        if sym is None:
            out.append(CheckResult(f"pair {pair}", CheckStatus.FAIL, "not listed by the exchange"))
            continue
        status = str(sym.get("status"))
        if status != "TRADING":
            out.append(CheckResult(f"pair {pair}", CheckStatus.FAIL, f"status is {status}, not TRADING"))
            continue
        f = _filters(sym)
        lot = f.get("LOT_SIZE", {})
        notional = f.get("NOTIONAL") or f.get("MIN_NOTIONAL") or {}
        detail = (
            f"TRADING; min qty {Decimal(str(lot.get('minQty', '0'))).normalize()} step "
            f"{Decimal(str(lot.get('stepSize', '0'))).normalize()}, min notional "
            f"{Decimal(str(notional.get('minNotional', '0'))).normalize()} {sym.get('quoteAsset', '')}"
        )
        out.append(CheckResult(f"pair {pair}", CheckStatus.PASS, detail))
    return out


def evaluate_checks(
    facts: ExchangeFacts,
    *,
    pairs: Sequence[str],
    recv_window_ms: int,
    allow_withdrawal_enabled_key: bool,
    has_sapi: bool = True,
    needs_key: bool = True,
) -> list[CheckResult]:
    """Judge the facts: key accepted, withdrawals off, spot trading on, pairs TRADING, clock, rate limits."""
    out: list[CheckResult] = []
    if facts.exchange_info is None:
        out.append(CheckResult("exchange reachable", CheckStatus.FAIL, facts.exchange_info_error or "no answer"))
    else:
        out.append(CheckResult("exchange reachable", CheckStatus.PASS, "exchangeInfo answered"))
        limits = facts.exchange_info.get("rateLimits") or []
        described = ", ".join(
            f"{r.get('rateLimitType')} {r.get('limit')}/{r.get('intervalNum')}{str(r.get('interval', ''))[:1]}"
            for r in limits
        )
        out.append(
            CheckResult(
                "rate limits read",
                CheckStatus.PASS if limits else CheckStatus.WARN,
                described or "exchangeInfo lists none; documented defaults apply",
            )
        )
        out.extend(_pairs_check(facts.exchange_info, pairs))

    if facts.clock_offset_ms is None:
        out.append(CheckResult("clock skew", CheckStatus.FAIL, facts.clock_error or "not measured"))
    else:
        ok = abs(facts.clock_offset_ms) < recv_window_ms
        out.append(
            CheckResult(
                "clock skew",
                CheckStatus.PASS if ok else CheckStatus.FAIL,
                f"offset {facts.clock_offset_ms} ms, recvWindow {recv_window_ms} ms",
            )
        )

    if not needs_key:
        out.append(CheckResult("API key", CheckStatus.SKIP, "no key needed in this mode"))
        return out
    if facts.account is None:
        out.append(CheckResult("API key accepted", CheckStatus.FAIL, facts.account_error or "no answer"))
    else:
        out.append(CheckResult("API key accepted", CheckStatus.PASS, "signed account call succeeded"))
        can_trade = bool(facts.account.get("canTrade"))
        permissions = [str(p) for p in facts.account.get("permissions", ())]
        spot = can_trade and (not permissions or "SPOT" in permissions)
        out.append(
            CheckResult(
                "spot trading enabled",
                CheckStatus.PASS if spot else CheckStatus.FAIL,
                f"canTrade={can_trade} permissions={permissions}",
            )
        )
    out.append(_withdrawals(facts, allow_withdrawal_enabled_key, has_sapi))
    return out


def _withdrawals(facts: ExchangeFacts, allowed: bool, has_sapi: bool) -> CheckResult:
    name = "withdrawals disabled on the key"
    if not has_sapi:
        return CheckResult(name, CheckStatus.SKIP, "this venue has no /sapi (testnet): cannot check")
    if facts.api_restrictions is None:
        return CheckResult(name, CheckStatus.FAIL, facts.api_restrictions_error or "no answer")
    if not facts.api_restrictions.get("enableWithdrawals"):
        return CheckResult(name, CheckStatus.PASS, "enableWithdrawals=false")
    if allowed:
        return CheckResult(
            name, CheckStatus.WARN, "enableWithdrawals=true, allowed by exchange.allow_withdrawal_enabled_key"
        )
    return CheckResult(
        name,
        CheckStatus.FAIL,
        "enableWithdrawals=true: use a key without withdrawal permission "
        "(or set exchange.allow_withdrawal_enabled_key = true)",
    )


def format_checks(results: Sequence[CheckResult]) -> str:
    """One line per check: status, name, why."""
    return "\n".join(f"[{r.status.value.upper():4}] {r.name}: {r.detail}" for r in results)
