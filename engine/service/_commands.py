"""CLI client commands: ``order``, ``cancel``, ``status``, ``watch``, ``balances`` — talking to a running daemon.

Exit codes (the same for every command, so scripts can branch on them):

- 0: done (order accepted, cancel requested, daemon healthy, ``watch`` stopped by Ctrl-C or ``--count``)
- 1: refused by the engine (the reason is printed; ``cancel``: the request had already finished), ``status``
  found the engine halted or paused, or the configuration is invalid
- 2: usage error or invalid input (the field is named)
- 3: not found (unknown order, request or pair; ``cancel``: no such request on the pair, executing or stored)
- 4: authentication failed (wrong or missing token; a token file that is invalid, or ``--token-file`` unreadable)
- 5: the daemon is not reachable (no token file at ``api.token_path`` yet: it has not started), or answered
  unexpectedly (``watch``: its event stream closed)

The configuration is read as a client's: a live one needs no exchange key or secret here (the daemon has them).

The URL comes from ``--url``, else the endpoint file a running daemon writes next to its token file, else
``api.host``/``api.port``; the token from ``--token-file``, else ``api.token`` (``FREQTRADE__API__TOKEN``),
else the file at ``api.token_path``. Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TextIO

from engine.service._client import ApiClient, ApiError
from engine.service._views import event_line, health_rows

__all__ = [
    "EXIT_AUTH",
    "EXIT_INVALID",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_UNREACHABLE",
    "add_balances_arguments",
    "add_cancel_arguments",
    "add_order_arguments",
    "add_status_arguments",
    "add_watch_arguments",
    "run_balances",
    "run_cancel",
    "run_order",
    "run_status",
    "run_watch",
]

EXIT_OK, EXIT_REFUSED, EXIT_INVALID, EXIT_NOT_FOUND, EXIT_AUTH, EXIT_UNREACHABLE = 0, 1, 2, 3, 4, 5
_STATUS_EXIT = {401: EXIT_AUTH, 404: EXIT_NOT_FOUND, 409: EXIT_REFUSED, 422: EXIT_INVALID}


def _decimal_arg(text: str) -> str:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a decimal number: {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number greater than 0: {text!r}")
    return text  # sent as the string the user typed: exact, never through a float


def _pair_arg(text: str) -> str:
    pair = text.upper().replace("-", "/")
    if pair.count("/") != 1 or not all(part.isalnum() for part in pair.split("/")):
        raise argparse.ArgumentTypeError(f"a pair is BASE/QUOTE, e.g. BTC/USDT: {text!r}")
    return pair


def _connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", dest="config_opt", metavar="PATH", default=None, help="TOML configuration")
    parser.add_argument("--url", default=None, help="control API URL (default: the running daemon's)")
    parser.add_argument("--token-file", type=Path, default=None, help="bearer token file (default: api.token_path)")
    parser.add_argument("--json", action="store_true", help="print the daemon's JSON answer (for scripts)")


def add_order_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``order``."""
    parser.add_argument("side", choices=["buy", "sell"])
    parser.add_argument("pair", type=_pair_arg, help="e.g. BTC/USDT")
    parser.add_argument("amount", type=_decimal_arg, help="base-asset amount, e.g. 0.01")
    parser.add_argument(
        "--price",
        type=_decimal_arg,
        default=None,
        help="limit price (without: market; --type limit: best bid/ask); with --type market, a bound: sent as an "
        "IOC limit at execution.max_slippage_pct beyond it",
    )
    parser.add_argument("--type", dest="order_type", choices=["limit", "market", "limit_maker"], default=None)
    parser.add_argument("--timeout", type=_decimal_arg, default=None, help="seconds before the fallback")
    parser.add_argument("--fallback", choices=["market", "ioc_limit", "none"], default=None)
    parser.add_argument("--key", dest="idempotency_key", default=None, help="idempotency key (same key, same order)")
    parser.add_argument("--strategy", default=None, help="strategy name stored with the trade")
    parser.add_argument("--timeframe", default=None, help='candle timeframe stored with the trade, e.g. "5m"')
    _connection_arguments(parser)


def add_cancel_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cancel``."""
    parser.add_argument("pair", type=_pair_arg, help="e.g. BTC/USDT")
    parser.add_argument("request_id", help="the request id printed by `order`")
    _connection_arguments(parser)


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``status``."""
    parser.add_argument("--pair", type=_pair_arg, default=None, help="only this pair's open orders")
    _connection_arguments(parser)


def add_balances_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``balances``."""
    _connection_arguments(parser)


def add_watch_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``watch``."""
    parser.add_argument("--pair", type=_pair_arg, default=None, help="only this pair's events")
    parser.add_argument("--count", type=int, default=None, help="exit after this many events")
    _connection_arguments(parser)


def _client(args: argparse.Namespace) -> ApiClient | int:
    """The client for the configured daemon, or the exit code after printing why there is none.

    The configuration is read as a client's (`for_trading=False`): the daemon holds the exchange key and secret,
    a client needs only the API's endpoint and token.
    """
    from engine.config import resolve_config
    from engine.service._token import endpoint_file_for, read_endpoint, read_token_file

    loaded, problems = resolve_config(getattr(args, "config_opt", None), for_trading=False)
    if loaded is None:
        print(f"configuration invalid: {len(problems)} problem(s)", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_REFUSED
    api = loaded.config.api
    endpoint = endpoint_file_for(api.token_path)
    url = args.url or read_endpoint(endpoint) or f"http://{api.host}:{api.port}"
    if args.url is None:
        args._stale_endpoint = _stale_endpoint(endpoint)
    try:
        if args.token_file is None and api.token is not None:
            token = api.token.get_secret_value()
        else:
            token = read_token_file(args.token_file or api.token_path)
    except ValueError as exc:  # a file that is there but holds no usable token: the daemon would refuse it (401)
        print(f"error: {exc}; pass the daemon's token file with --token-file", file=sys.stderr)
        return EXIT_AUTH
    except OSError as exc:
        if args.token_file is not None:  # the token named on the command line is missing: no token to send
            print(f"error: cannot read the API token file {args.token_file}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_AUTH
        print(f"error: no API token ({exc}); start the daemon first or pass --token-file", file=sys.stderr)
        return EXIT_UNREACHABLE
    try:
        return ApiClient(url, token)
    except ValueError as exc:  # a --url that is not http://host:port
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID


def _call(args: argparse.Namespace, method: str, path: str, body: object = None) -> tuple[int, dict[str, Any]] | int:
    # One client per invocation: the configuration is resolved once even when a command makes two calls.
    client: ApiClient | int = getattr(args, "_api_client", None) or _client(args)
    if isinstance(client, int):
        return client
    args._api_client = client
    try:
        return client.request(method, path, body)
    except ApiError as exc:
        _unreachable(args, exc)
        return EXIT_UNREACHABLE


def _stale_endpoint(path: Path) -> str | None:
    """What to say of an endpoint file left by a daemon that is gone (a kill -9), or None when there is none.

    `read_endpoint` skips such a file, so the client falls back to ``api.host``/``api.port``: without this note an
    operator sees "not reachable" at a URL the daemon never used and cannot tell why.
    """
    from engine.service._token import endpoint_record

    record = endpoint_record(path)
    if record is None or record[2]:
        return None
    url, pid, _ = record
    return (
        f"{path} names the daemon at {url} with pid {pid}, which is not running: the file is stale (that "
        "daemon was killed or crashed); start the daemon again, or pass --url"
    )


def _unreachable(args: argparse.Namespace, exc: ApiError) -> None:
    print(f"error: {exc}", file=sys.stderr)
    stale = getattr(args, "_stale_endpoint", None)
    if stale and "not reachable" in str(exc):
        print(f"  {stale}", file=sys.stderr)


def _failure(status: int, data: dict[str, Any], out: TextIO, as_json: bool) -> int:
    if as_json:
        out.write(json.dumps(data) + "\n")
    elif status == 401:
        print("error: authentication failed (check the token file; from another host, the clocks must agree "
              "within 30 s)", file=sys.stderr)  # fmt: skip
    else:
        print(f"{data.get('error', 'error')}: {data.get('message', f'HTTP {status}')}", file=sys.stderr)
        # The way forward: the request in the way of a conflict, the id of a request still executing (504).
        extra = {**(data.get("details") or {}), **({"request_id": data["request_id"]} if "request_id" in data else {})}
        if extra:
            print("  " + ", ".join(f"{k}={v}" for k, v in sorted(extra.items())), file=sys.stderr)
    return _STATUS_EXIT.get(status, EXIT_UNREACHABLE)


def run_order(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``order``: submit one request and print the order (or the refusal); for a known idempotency key, what the
    original request did (its trade once finished, else its latest order), nothing new being sent."""
    out = out or sys.stdout
    body: dict[str, Any] = {
        "pair": args.pair,
        "side": args.side,
        "amount": args.amount,
        "order_type": args.order_type or ("limit" if args.price else "market"),
    }
    optional = {
        "price": args.price,
        "limit_timeout": args.timeout,
        "fallback": args.fallback,
        "idempotency_key": args.idempotency_key,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    context = {k: v for k, v in (("strategy", args.strategy), ("timeframe", args.timeframe)) if v}
    if context:
        body["context"] = context
    answer = _call(args, "POST", "/orders", body)
    if isinstance(answer, int):
        return answer
    status, data = answer
    if status not in (200, 201):
        return _failure(status, data, out, args.json)
    if args.json:
        out.write(json.dumps(data) + "\n")
        return EXIT_OK
    order = data["order"]
    price = f" @ {order['price']}" if order.get("price") else ""
    seen, state = ("", f"status={order['status']}") if not data.get("duplicate") else _duplicate(data)
    out.write(
        f"accepted{seen}: {order['side']} {order['amount']} {order['pair']} {order['order_type']}{price} "
        f"{state}\n  request_id={order['request_id']}  client_order_id={order['client_order_id']}\n"
    )
    return EXIT_OK


def _duplicate(data: dict[str, Any]) -> tuple[str, str]:
    """What a duplicate's answer says of the original request: its outcome once finished, else its latest order.

    Not the first order's status: after a timed-out limit it reads canceled with nothing filled although the
    fallback may have filled the request, and a script re-sending after a crash would buy again.
    """
    trade, latest = data.get("trade"), data.get("latest")
    if trade is not None:
        average = f" average_price={trade['average_price']}" if trade.get("average_price") else ""
        state = f"trade={trade['status']} filled={trade['filled']}/{trade['requested']}{average}"
    elif latest is not None:
        state = f"still executing: latest order {latest['client_order_id']} status={latest['status']}"
    else:
        state = "still executing"
    return " (duplicate: nothing new was sent)", state


def run_cancel(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``cancel``: cancel a request's open order(s)."""
    out = out or sys.stdout
    answer = _call(args, "DELETE", ApiClient.pair_path(args.pair, args.request_id))
    if isinstance(answer, int):
        return answer
    status, data = answer
    if status != 202:
        return _failure(status, data, out, args.json)
    orders = len(data.get("client_order_ids") or []) + len(data.get("at_ack") or [])
    human = f"cancel requested for {orders} order(s) ({data.get('status')}): {data.get('message')}\n"
    out.write(json.dumps(data) + "\n" if args.json else human)
    return EXIT_OK


def run_status(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``status``: health and open orders; exit 1 when the engine is halted or paused."""
    out = out or sys.stdout
    answer = _call(args, "GET", "/health")
    if isinstance(answer, int):
        return answer
    status, health = answer
    if status != 200:
        return _failure(status, health, out, args.json)
    path = "/orders" + (f"?pair={args.pair}" if args.pair else "")
    answer = _call(args, "GET", path)
    if isinstance(answer, int):
        return answer
    status, listing = answer
    if status != 200:
        return _failure(status, listing, out, args.json)
    code = EXIT_REFUSED if health.get("status") in _NOT_TRADING else EXIT_OK
    if args.json:
        out.write(json.dumps({"health": health, "orders": listing["orders"]}) + "\n")
        return code
    from db.cli import render_table

    out.write(
        f"status={health.get('status')} halted={health.get('halted')} paused={health.get('paused')} "
        f"exchange={health.get('exchange')} dry_run={health.get('dry_run')} open_orders={health.get('open_orders')} "
        f"restarts={health.get('restarts', '-')} wallet_btc={health.get('wallet_btc') or '-'}\n"
    )
    if health.get("halt_reason"):
        out.write(f"halted: {health['halt_reason']}\n")
    render_table(["component", "state", "detail"], health_rows(health), out)
    out.write("\n")
    headers = [
        "created",
        "request_id",
        "client_order_id",
        "pair",
        "side",
        "type",
        "status",
        "price",
        "amount",
        "filled",
    ]
    keys = ["created_at", "request_id", "client_order_id", "pair", "side", "order_type", "status", "price", "amount"]
    rows = [[o.get(k) for k in keys] + [o.get("filled")] for o in listing["orders"]]
    render_table(headers, rows, out)
    return code


_NOT_TRADING = frozenset({"halted", "paused", "draining"})


def run_balances(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``balances``: the account's balances as the daemon last read them (free, locked, total per asset)."""
    out = out or sys.stdout
    answer = _call(args, "GET", "/balances")
    if isinstance(answer, int):
        return answer
    status, data = answer
    if status != 200:
        return _failure(status, data, out, args.json)
    if args.json:
        out.write(json.dumps(data) + "\n")
        return EXIT_OK
    from db.cli import render_table

    rows = [
        [asset, Decimal(b["free"]), Decimal(b["locked"]), Decimal(b["free"]) + Decimal(b["locked"])]
        for asset, b in sorted(data.get("balances", {}).items())
    ]
    render_table(["asset", "free", "locked", "total"], rows, out)
    as_of = data.get("as_of_ms")
    out.write(f"wallet_btc={data.get('wallet_btc') or '-'} as_of_ms={as_of if as_of is not None else '-'}\n")
    return EXIT_OK


def run_watch(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``watch``: print order events as they happen, until Ctrl-C or ``--count`` events (exit 0); a stream the
    daemon ends or loses (a stop, a kill) is said on stderr with the reason, exit 5."""
    out = out or sys.stdout
    client = _client(args)
    if isinstance(client, int):
        return client
    seen = 0
    try:
        for event in client.events(args.pair, on_open=lambda: _opened(client.url)):
            out.write(json.dumps(event) + "\n" if args.json else event_line(event) + "\n")
            out.flush()
            seen += 1
            if args.count is not None and seen >= args.count:
                break
    except ApiError as exc:
        _unreachable(args, exc)
        return EXIT_AUTH if "HTTP 401" in str(exc) else EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


def _opened(url: str) -> None:
    # On stderr, so --json output stays clean; scripts (and tests) wait for it to know nothing will be missed.
    print(f"watching order events from {url}", file=sys.stderr, flush=True)
