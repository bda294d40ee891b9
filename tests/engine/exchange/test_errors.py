"""Every row of binance-spot.md §4.3 through the real ccxt `handle_errors`, on spot and loopback URLs."""

from __future__ import annotations

import json

import ccxt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.exchange import (
    AuthFailed,
    Banned,
    ClockSkew,
    DuplicateOrder,
    ExchangeError,
    FilterRejected,
    InsufficientBalance,
    InvalidRequest,
    MarketClosed,
    OrderNotFound,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    RetryLater,
    StopTrading,
    WouldTakeRejected,
    extract_ccxt_error,
    map_error,
)

SPOT_URL = "https://api.binance.com/api/v3/order"
LOOPBACK_URL = "http://127.0.0.1:18080/api/v3/order"

# (HTTP status, Binance code, msg, expected class for a create) — §4.3 plus the codes of §4.2
ROWS: list[tuple[int, int | None, str, type[ExchangeError]]] = [
    (400, -1013, "Filter failure: LOT_SIZE", FilterRejected),
    (400, -1013, "Filter failure: PRICE_FILTER", FilterRejected),
    (400, -1013, "Filter failure: MARKET_LOT_SIZE", FilterRejected),
    (400, -1013, "Filter failure: PERCENT_PRICE_BY_SIDE", FilterRejected),
    (400, -1013, "Filter failure: NOTIONAL", FilterRejected),
    (400, -1013, "Filter failure: MIN_NOTIONAL", FilterRejected),
    (400, -2010, "Filter failure: MAX_NUM_ORDERS", FilterRejected),
    (400, -2010, "Filter failure: MAX_POSITION", FilterRejected),
    (400, -2010, "Account has insufficient balance for requested action.", InsufficientBalance),
    (400, -2010, "Duplicate order sent.", DuplicateOrder),
    (400, -2010, "Order would immediately match and take.", WouldTakeRejected),
    (400, -2010, "Market is closed.", MarketClosed),
    (400, -2010, "This symbol is not permitted for this account.", Rejected),
    (400, -2011, "Unknown order sent.", OrderNotFound),
    (400, -2011, "Order was not canceled due to cancel restrictions.", InvalidRequest),
    (400, -2013, "Order does not exist.", OrderNotFound),
    (400, -2026, "Order was canceled or expired with no executed qty over 90 days ago.", OrderNotFound),
    (400, -2039, "Client order ID is not correct for this order ID.", InvalidRequest),
    (400, -2035, "User Data Stream subscription already active.", InvalidRequest),
    (400, -1021, "Timestamp for this request is outside of the recvWindow.", ClockSkew),
    (400, -1022, "Signature for this request is not valid.", AuthFailed),
    (401, -2014, "API-key format invalid.", AuthFailed),
    (401, -2015, "Invalid API-key, IP, or permissions for action.", AuthFailed),
    (429, -1015, "Too many new orders; current limit is 50 orders per 10 SECOND.", RateLimited),
    (429, -1003, "Too much request weight used; current limit is 6000 request weight per 1 MINUTE.", RateLimited),
    (418, -1003, "Way too much request weight used; IP banned until 1767225600000.", Banned),
    (200, -1003, "Too much request weight used.", RateLimited),
    (500, -1000, "An unknown error occurred while processing the request.", OutcomeUnknown),
    (503, -1001, "Internal error; unable to process your request. Please try again.", OutcomeUnknown),
    (503, -1006, "An unexpected response was received. Execution status unknown.", OutcomeUnknown),
    (503, -1008, "Server is currently overloaded with other requests.", OutcomeUnknown),
    (408, -1007, "Timeout waiting for response from backend server. Send status unknown.", OutcomeUnknown),
    (503, -1007, "Timeout waiting for response from backend server. Send status unknown.", OutcomeUnknown),
    (400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.", InvalidRequest),
    (400, -1121, "Invalid symbol.", InvalidRequest),
    (400, -1145, "Invalid cancelRestrictions.", InvalidRequest),
    (400, -1108, "Invalid asset.", InvalidRequest),
    (503, -1004, "Server is busy, please wait and try again.", OutcomeUnknown),
    (400, -1013, "Price * QTY is zero or less.", InvalidRequest),
    (400, -1013, "Invalid quantity.", InvalidRequest),
]

# responses without a JSON error body
RAW_ROWS: list[tuple[int, str, type[ExchangeError]]] = [
    (500, "<html>oops</html>", OutcomeUnknown),
    (502, "bad gateway", OutcomeUnknown),
    (504, "gateway timeout", OutcomeUnknown),
    (403, "<html>waf</html>", RetryLater),
    (400, '{"foo":1}', InvalidRequest),
]


def _ccxt_raise(url: str, status: int, body: str, *, authenticated: bool) -> BaseException:
    exchange = ccxt.binance()
    exchange.options["hasAlreadyAuthenticatedSuccessfully"] = authenticated
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    try:
        exchange.handle_errors(status, "Reason", url, "POST", {}, body, parsed, None, None)
        exchange.handle_http_status_code(status, "Reason", url, "POST", body)
    except ccxt.BaseError as exc:
        return exc
    raise AssertionError(f"ccxt raised nothing for {status} {body}")


@pytest.mark.parametrize("authenticated", [False, True])
@pytest.mark.parametrize(("status", "code", "msg", "expected"), ROWS)
def test_ccxt_rows_map_identically_on_spot_and_loopback(
    status: int, code: int | None, msg: str, expected: type[ExchangeError], authenticated: bool
) -> None:
    body = json.dumps({"code": code, "msg": msg})
    mapped = []
    for url in (SPOT_URL, LOOPBACK_URL):
        exc = _ccxt_raise(url, status, body, authenticated=authenticated)
        mapped.append(map_error(ccxt_exc=exc, operation="create_order"))
    assert [type(m) for m in mapped] == [expected, expected]
    # ccxt's exact-message exceptions drop the code but keep the message; either identifies the row
    assert mapped[0].code == code or mapped[0].exchange_message == msg
    # the same outcome when the gateway already knows status, code and message without ccxt
    direct = map_error(http_status=status, binance_code=code, message=msg, operation="create_order")
    assert type(direct) is expected


@pytest.mark.parametrize(("status", "body", "expected"), RAW_ROWS)
def test_raw_http_failures(status: int, body: str, expected: type[ExchangeError]) -> None:
    for url in (SPOT_URL, LOOPBACK_URL):
        exc = _ccxt_raise(url, status, body, authenticated=False)
        assert extract_ccxt_error(exc).http_status == status
        assert type(map_error(ccxt_exc=exc, operation="create_order")) is expected


def test_ccxt_really_differs_between_urls() -> None:
    """The reason for code-first mapping: ccxt's class depends on the URL for these codes."""
    for code, msg in [(-2026, "archived"), (-1108, "Invalid asset."), (-1004, "busy"), (-1145, "bad")]:
        body = json.dumps({"code": code, "msg": msg})
        spot = _ccxt_raise(SPOT_URL, 400, body, authenticated=False)
        loop = _ccxt_raise(LOOPBACK_URL, 400, body, authenticated=False)
        assert type(spot) is not type(loop)
        assert type(map_error(ccxt_exc=spot, operation="x")) is type(map_error(ccxt_exc=loop, operation="x"))
    body = json.dumps({"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."})
    assert isinstance(_ccxt_raise(SPOT_URL, 401, body, authenticated=True), ccxt.DDoSProtection)


def test_exact_message_exception_keeps_meaning_without_code() -> None:
    body = json.dumps({"code": -2010, "msg": "Account has insufficient balance for requested action."})
    exc = _ccxt_raise(SPOT_URL, 400, body, authenticated=False)
    found = extract_ccxt_error(exc)
    assert found.code is None
    assert found.message == "Account has insufficient balance for requested action."
    assert isinstance(map_error(ccxt_exc=exc, operation="create_order"), InsufficientBalance)


def test_filter_name_and_percent_price_flag() -> None:
    err = map_error(http_status=400, binance_code=-1013, message="Filter failure: PERCENT_PRICE_BY_SIDE", operation="c")
    assert isinstance(err, FilterRejected)
    assert err.filter_name == "PERCENT_PRICE_BY_SIDE"
    assert err.is_percent_price
    lot = map_error(http_status=400, binance_code=-1013, message="Filter failure: LOT_SIZE", operation="c")
    assert isinstance(lot, FilterRejected)
    assert not lot.is_percent_price


def test_retry_after_and_ban_end_are_read() -> None:
    err = map_error(http_status=429, binance_code=-1003, message="x", headers={"retry-after": "7"}, operation="o")
    assert isinstance(err, RateLimited)
    assert err.retry_after_s == 7
    ban = map_error(
        http_status=418,
        binance_code=-1003,
        message="Way too much request weight used; IP banned until 1767225600000.",
        headers={"Retry-After": "120"},
        operation="o",
    )
    assert isinstance(ban, Banned)
    assert ban.critical
    assert ban.retry_after_s == 120
    assert ban.banned_until_ms == 1767225600000


@pytest.mark.parametrize(
    "exc",
    [
        ccxt.RequestTimeout("binance POST https://api.binance.com/api/v3/order"),
        ccxt.ExchangeNotAvailable("binance POST https://api.binance.com/api/v3/order"),
        ccxt.NetworkError("binance connection reset"),
        TimeoutError(),
        ConnectionResetError("reset by peer"),
        RuntimeError("something nobody expected"),
    ],
)
def test_transport_failures_are_unknown_for_creates_and_retryable_for_reads(exc: BaseException) -> None:
    assert isinstance(map_error(ccxt_exc=exc, operation="create_order"), OutcomeUnknown)
    assert isinstance(map_error(ccxt_exc=exc, operation="cancel_order"), OutcomeUnknown)
    read = map_error(ccxt_exc=exc, operation="fetch_order")
    assert type(read) is RetryLater


def test_5xx_on_a_read_is_retry_later() -> None:
    err = map_error(http_status=503, binance_code=-1006, message="Execution status unknown.", operation="fetch")
    assert type(err) is RetryLater


def test_busy_is_unknown_unless_the_status_proves_it_was_refused() -> None:
    busy = {"binance_code": -1008, "message": "Server is currently overloaded with other requests."}
    assert type(map_error(http_status=400, operation="create_order", **busy)) is RetryLater  # type: ignore[arg-type]
    assert type(map_error(http_status=None, operation="create_order", **busy)) is OutcomeUnknown  # type: ignore[arg-type]
    assert type(map_error(http_status=503, operation="fetch_order", **busy)) is RetryLater  # type: ignore[arg-type]


def test_stop_trading_family_is_critical() -> None:
    for code in (-2014, -2015, -1022, -1002):
        err = map_error(http_status=401, binance_code=code, message="no", operation="create_order")
        assert isinstance(err, StopTrading)
        assert err.critical
    assert not map_error(http_status=400, binance_code=-2013, message="x", operation="f").critical


def test_context_is_flat_and_bounded() -> None:
    err = map_error(http_status=400, binance_code=-2013, message="m" * 1000, operation="fetch_order")
    ctx = err.context()
    assert ctx["kind"] == "OrderNotFound"
    assert ctx["code"] == "-2013"
    assert len(ctx["exchange_message"]) <= 300


def test_already_mapped_error_passes_through() -> None:
    err = OrderNotFound("x", operation="fetch_order")
    assert map_error(ccxt_exc=err, operation="fetch_order") is err


@given(
    status=st.one_of(st.none(), st.integers(100, 599)),
    code=st.one_of(st.none(), st.integers(-5000, 0)),
    message=st.one_of(st.none(), st.text(max_size=80)),
    op=st.sampled_from(["create_order", "cancel_order", "fetch_order"]),
)
def test_map_error_is_total(status: int | None, code: int | None, message: str | None, op: str) -> None:
    err = map_error(http_status=status, binance_code=code, message=message, operation=op)
    assert isinstance(err, Rejected | OutcomeUnknown | RetryLater | StopTrading)


@given(st.text(max_size=200))
def test_extract_never_raises(text: str) -> None:
    found = extract_ccxt_error(ccxt.ExchangeError(text))
    assert found.code is None or isinstance(found.code, int)


def test_a_bare_timeout_or_connection_error_is_named_in_the_message() -> None:
    # Found by a strategy author: a withheld create logged "create_order failed (code=None, status=None)".
    assert str(map_error(ccxt_exc=TimeoutError(), operation="create_order")).endswith("TimeoutError: no answer")
    assert "ConnectionResetError" in str(map_error(ccxt_exc=ConnectionResetError(), operation="fetch_order"))
