"""The simulator's `/_sim/` control routes refuse requests a web page makes (the browser names their origin).

Found in a security review: `make run`'s embedded simulator listens on loopback, and a page the operator visits could
reach its control routes with an <img> GET or a text/plain POST and fill or cancel paper orders. Scripts and curl
send no Origin or Sec-Fetch-Site header and are served as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests

from sim import SimConfig, Simulator


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimConfig(seed=1, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)})) as simulator:
        yield simulator


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}],
)
def test_a_request_from_a_web_page_is_refused(sim: Simulator, headers: dict[str, str]) -> None:
    before = sim.control.price("BTCUSDT")
    url = f"{sim.urls.rest}/_sim/set_price"
    answer = requests.post(url, data='{"symbol": "BTCUSDT", "price": "1"}', headers=headers, timeout=5)
    assert answer.status_code == 403
    assert requests.get(url, params={"symbol": "BTCUSDT", "price": "1"}, headers=headers, timeout=5).status_code == 403
    assert sim.control.price("BTCUSDT") == before


def test_a_script_is_served(sim: Simulator) -> None:
    answer = requests.post(f"{sim.urls.rest}/_sim/set_price", json={"symbol": "BTCUSDT", "price": "61000"}, timeout=5)
    assert answer.status_code == 200, answer.text
    assert sim.control.price("BTCUSDT") == Decimal(61000)
