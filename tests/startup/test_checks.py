"""Start-up check verdicts: each check says pass/warn/fail/skip and why."""

from __future__ import annotations

from typing import Any

from engine.startup import CheckStatus, ExchangeFacts, evaluate_checks, format_checks

INFO: dict[str, Any] = {
    "rateLimits": [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 50},
    ],
    "symbols": [
        {
            "symbol": "BTCUSDT",
            "status": "TRADING",
            "quoteAsset": "USDT",
            "filters": [
                {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000", "stepSize": "0.00001000"},
                {"filterType": "NOTIONAL", "minNotional": "5.00000000"},
            ],
        },
        {"symbol": "ETHUSDT", "status": "HALT", "quoteAsset": "USDT", "filters": []},
    ],
}
ACCOUNT = {"canTrade": True, "permissions": ["SPOT"]}


def _by_name(results: list[Any]) -> dict[str, Any]:
    return {r.name: r for r in results}


def test_all_pass_and_min_sizes_reported() -> None:
    facts = ExchangeFacts(INFO, account=ACCOUNT, api_restrictions={"enableWithdrawals": False}, clock_offset_ms=12)
    results = _by_name(
        evaluate_checks(facts, pairs=["BTC/USDT"], recv_window_ms=5000, allow_withdrawal_enabled_key=False)
    )
    assert all(r.status is CheckStatus.PASS for r in results.values())
    assert results["pair BTC/USDT"].detail == "TRADING; min qty 0.00001 step 0.00001, min notional 5 USDT"
    assert results["rate limits read"].detail == "REQUEST_WEIGHT 6000/1M, ORDERS 50/10S"


def test_failures_say_why() -> None:
    facts = ExchangeFacts(
        INFO,
        account={"canTrade": False, "permissions": ["SPOT"]},
        api_restrictions={"enableWithdrawals": True},
        clock_offset_ms=-7000,
    )
    results = _by_name(
        evaluate_checks(facts, pairs=["ETH/USDT", "DOGE/USDT"], recv_window_ms=5000, allow_withdrawal_enabled_key=False)
    )
    assert results["pair ETH/USDT"].detail == "status is HALT, not TRADING"
    assert results["pair DOGE/USDT"].detail == "not listed by the exchange"
    assert results["clock skew"].status is CheckStatus.FAIL
    assert results["spot trading enabled"].status is CheckStatus.FAIL
    assert results["withdrawals disabled on the key"].status is CheckStatus.FAIL
    assert "allow_withdrawal_enabled_key" in results["withdrawals disabled on the key"].detail


def test_withdrawals_allowed_explicitly_is_a_warning_and_testnet_skips() -> None:
    facts = ExchangeFacts(INFO, account=ACCOUNT, api_restrictions={"enableWithdrawals": True}, clock_offset_ms=0)
    allowed = _by_name(evaluate_checks(facts, pairs=[], recv_window_ms=5000, allow_withdrawal_enabled_key=True))
    assert allowed["withdrawals disabled on the key"].status is CheckStatus.WARN
    testnet = _by_name(
        evaluate_checks(facts, pairs=[], recv_window_ms=5000, allow_withdrawal_enabled_key=False, has_sapi=False)
    )
    assert testnet["withdrawals disabled on the key"].status is CheckStatus.SKIP


def test_unreachable_and_rejected_key() -> None:
    facts = ExchangeFacts(
        exchange_info_error="connection refused",
        account_error="AuthFailed -2015",
        api_restrictions_error="AuthFailed -2015",
        clock_error="connection refused",
    )
    results = evaluate_checks(facts, pairs=["BTC/USDT"], recv_window_ms=5000, allow_withdrawal_enabled_key=False)
    text = format_checks(results)
    assert "[FAIL] exchange reachable: connection refused" in text
    assert "[FAIL] API key accepted: AuthFailed -2015" in text
    assert "[FAIL] clock skew: connection refused" in text


def test_no_key_mode_skips_key_checks() -> None:
    facts = ExchangeFacts(INFO, clock_offset_ms=0)
    results = _by_name(
        evaluate_checks(
            facts, pairs=["BTC/USDT"], recv_window_ms=5000, allow_withdrawal_enabled_key=False, needs_key=False
        )
    )
    assert results["API key"].status is CheckStatus.SKIP
    assert "API key accepted" not in results
