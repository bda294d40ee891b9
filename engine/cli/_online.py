"""`check-config --online`: connect with the configured key and judge what the exchange answers.

For ``exchange.name = "sim"`` the embedded simulator is started on loopback and checked the same way, so the
command proves the whole path (signing, clock, filters) offline too.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any

from engine.api._wiring import Endpoint, gateway_settings
from engine.config import Config
from engine.startup import CheckResult, ExchangeFacts, evaluate_checks

__all__ = ["run_online_checks"]

_CALL_TIMEOUT_S = 30.0


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def run_online_checks(config: Config, endpoint: Endpoint) -> list[CheckResult]:
    """Run every start-up check against `endpoint` and return the verdicts."""
    from actors.gateway import GatewayActor
    from engine.clock import WallClock
    from engine.exchange._retry import ClockOffsetEstimator
    from engine.gateway import GatewayRequest, Op

    settings = gateway_settings(config, endpoint)
    wall = WallClock()
    # sync_time=False: an unreachable exchange becomes a failed check, not a crash at start.
    ref = GatewayActor.start(settings, clock=wall, sync_time=False)
    try:
        gw = ref.proxy().handle().get(timeout=_CALL_TIMEOUT_S)

        def call(op: Op) -> tuple[Any, str | None]:
            try:
                result = gw.call(GatewayRequest(op)).result(_CALL_TIMEOUT_S)
            except concurrent.futures.TimeoutError:
                return None, "no answer within 30 s"
            return (result.data, None) if result.error is None else (None, _describe(result.error))

        estimator = ClockOffsetEstimator()
        sent = wall.now_ms()
        time_data, clock_error = call(Op.TIME)
        if time_data is not None:
            estimator.add_sample(sent, int(time_data["serverTime"]), wall.now_ms())
        info, info_error = call(Op.EXCHANGE_INFO)
        needs_key = endpoint.api_key is not None
        account, account_error = call(Op.ACCOUNT) if needs_key else (None, None)
        has_sapi = not endpoint.testnet
        restrictions, restrictions_error = call(Op.API_RESTRICTIONS) if needs_key and has_sapi else (None, None)
    finally:
        ref.stop(timeout=_CALL_TIMEOUT_S)
    facts = ExchangeFacts(
        exchange_info=info,
        exchange_info_error=info_error,
        account=account,
        account_error=account_error,
        api_restrictions=restrictions,
        api_restrictions_error=restrictions_error,
        clock_offset_ms=estimator.offset_ms if time_data is not None else None,
        clock_error=clock_error,
    )
    return evaluate_checks(
        facts,
        pairs=config.exchange.pair_whitelist,
        recv_window_ms=config.exchange.recv_window_ms,
        allow_withdrawal_enabled_key=config.exchange.allow_withdrawal_enabled_key,
        has_sapi=has_sapi,
        needs_key=needs_key,
    )
