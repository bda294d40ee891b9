"""Error mapping of code-less HTTP statuses and boundaries: an ambiguous create failure is never "rejected" (found by
mutation testing)."""

from __future__ import annotations

import ccxt

from engine.exchange import OutcomeUnknown, RetryLater, map_error


def test_a_408_on_a_create_is_an_unknown_outcome_not_a_rejection() -> None:  # kills E8
    # ccxt's handle_http_status_code text for a gateway timeout: the create may have reached the matching engine
    exc = ccxt.RequestTimeout("binance POST https://api.binance.com/api/v3/order 408 Request Timeout ")
    assert type(map_error(ccxt_exc=exc, operation="create_order")) is OutcomeUnknown
    assert type(map_error(http_status=408, operation="cancel_order")) is OutcomeUnknown
    assert type(map_error(http_status=408, operation="fetch_order")) is RetryLater


def test_server_busy_on_a_500_may_have_run() -> None:  # kills E7
    err = map_error(http_status=500, binance_code=-1004, message="Server is busy, please wait and try again.",
                    operation="create_order")  # fmt: skip
    assert type(err) is OutcomeUnknown


def test_service_shutting_down_is_retry_later() -> None:  # kills E2
    err = map_error(http_status=400, binance_code=-1016, message="This service is no longer available.",
                    operation="create_order")  # fmt: skip
    assert type(err) is RetryLater


def test_an_unlisted_code_on_a_500_is_not_a_rejection() -> None:  # kills E10
    err = map_error(http_status=500, binance_code=-1199, message="something new", operation="create_order")
    assert type(err) is OutcomeUnknown


def test_a_418_or_429_without_a_binance_code_is_still_a_ban_or_a_rate_limit() -> None:  # kills E12, E13
    from engine.exchange import Banned, RateLimited

    assert type(map_error(http_status=418, message="<html>teapot</html>", operation="fetch_order")) is Banned
    assert type(map_error(http_status=429, message="<html>slow down</html>", operation="create_order")) is RateLimited
    ban = ccxt.DDoSProtection("binance 418 I'm a teapot <html></html>")
    assert type(map_error(ccxt_exc=ban, operation="create_order")) is Banned
    limited = ccxt.DDoSProtection("binance 429 Too Many Requests <html></html>")
    assert type(map_error(ccxt_exc=limited, operation="create_order")) is RateLimited


def test_a_ban_message_without_an_http_status_is_a_ban() -> None:  # kills E21
    from engine.exchange import Banned

    err = map_error(binance_code=-1003, message="Way too much request weight used; IP banned until 1767225600000.",
                    operation="fetch_order")  # fmt: skip
    assert type(err) is Banned and err.banned_until_ms == 1767225600000


def test_a_401_without_a_code_is_an_auth_failure() -> None:  # kills E36
    from engine.exchange import AuthFailed

    err = map_error(http_status=401, message="<html>Unauthorized</html>", operation="create_order")
    assert type(err) is AuthFailed and err.critical
