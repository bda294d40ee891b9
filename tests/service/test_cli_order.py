"""`python run.py order` in process, against a real control API over a real engine on the simulator (manual
clock): what the command sends and what it prints."""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterator
from typing import Any

import pytest

from engine.api import Engine, EventKind
from engine.service import ApiClient, ControlApi
from engine.service._commands import EXIT_OK, add_order_arguments, run_order
from sim import Simulator
from tests.engine_e2e import _engine_sim_helpers as _shared
from tests.engine_e2e._engine_sim_helpers import Events

sim = _shared.sim
start = _shared.start
TOKEN = "t0ken-for-the-cli-order-test"

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def rig(start: Any) -> Iterator[tuple[Engine, Events, ApiClient]]:
    engine, events = start()
    api = ControlApi(engine, TOKEN)
    try:
        yield engine, events, ApiClient(api.start("127.0.0.1", 0), TOKEN)
    finally:
        api.stop()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="order")
    add_order_arguments(parser)
    return parser


def _order(client: ApiClient, *argv: str) -> tuple[int, str]:
    args = _parser().parse_args(argv)
    args._api_client = client  # the daemon's URL and token, as the command would resolve them
    out = io.StringIO()
    return run_order(args, out), out.getvalue()


def test_a_market_order_with_a_price_goes_out_bounded_by_it(
    rig: tuple[Engine, Events, ApiClient], sim: Simulator
) -> None:
    # The price of a market order is its bound (execution.max_slippage_pct, 0.5 % here): an IOC limit at 60 300.
    _, _, client = rig
    code, text = _order(client, "buy", "BTC/USDT", "0.01", "--price", "60000", "--type", "market")
    assert code == EXIT_OK, text
    assert "accepted: buy 0.01 BTC/USDT limit @ 60300 " in text, text
    assert [(o["type"], o["timeInForce"]) for o in _shared._sim_orders(sim)] == [("LIMIT", "IOC")]


def test_the_price_help_says_what_it_means_with_a_market_order() -> None:
    assert "with --type market, a bound" in " ".join(_parser().format_help().split())


def test_a_duplicate_prints_the_requests_outcome_not_its_first_orders_status(
    rig: tuple[Engine, Events, ApiClient],
) -> None:
    # The limit times out and its market fallback fills the request: the first order reads canceled, nothing
    # filled, and printing only that told a script re-sending after a crash that nothing was bought.
    engine, events, client = rig
    argv = ("buy", "BTC/USDT", "0.01", "--price", "59950", "--key", "cli-dup-1")
    code, first = _order(client, *argv)
    assert code == EXIT_OK and "status=open" in first, first
    engine.ticker.advance(5_000)  # execution.limit_timeout_s = 5
    events.wait_for(EventKind.DONE)

    code, again = _order(client, *argv)
    assert code == EXIT_OK, again
    head = again.splitlines()[0]
    assert head.startswith("accepted (duplicate: nothing new was sent): buy 0.01 BTC/USDT limit @ 59950 "), head
    assert " trade=filled filled=0.01/0.01 average_price=" in head and "status=canceled" not in head, head
    assert again.splitlines()[1] == first.splitlines()[1]  # the same request and first order


def test_a_duplicate_of_a_request_still_executing_prints_its_latest_order(
    rig: tuple[Engine, Events, ApiClient],
) -> None:
    _, _, client = rig
    argv = ("buy", "BTC/USDT", "0.01", "--price", "59950", "--key", "cli-dup-2")
    code, first = _order(client, *argv)
    assert code == EXIT_OK, first
    code, again = _order(client, *argv)
    assert code == EXIT_OK, again
    cid = first.splitlines()[1].split("client_order_id=")[1]
    assert again.splitlines()[0].endswith(f" still executing: latest order {cid} status=open"), again
