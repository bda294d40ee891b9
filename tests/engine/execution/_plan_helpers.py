"""Shared builders of the execution-plan tests (not collected)."""

from __future__ import annotations

from decimal import Decimal

from engine.domain import TradeId
from engine.exchange import client_order_id
from engine.execution import (
    ExecutionCommand,
    ExecutionConfig,
    ExecutionPlan,
    ExecutionResult,
    LegFilled,
    PlaceOrder,
    ReportResult,
)
from tests.engine.execution.conftest_data import BOOK, RULES, request

D = Decimal
PRIMARY = client_order_id("req-1", pair="BTC/USDT")
FALLBACK1 = client_order_id("req-1", pair="BTC/USDT", fallback=1)
CONFIG = ExecutionConfig(limit_timeout_ms=10_000, max_slippage=D("0.01"))


def only(commands: list[ExecutionCommand], kind: type) -> object:
    assert len(commands) == 1, commands
    assert isinstance(commands[0], kind), commands
    return commands[0]


def result_of(commands: list[ExecutionCommand]) -> ExecutionResult:
    report = only(commands, ReportResult)
    assert isinstance(report, ReportResult)
    return report.result


def fill(cid: str, trade: int, qty: str, price: str = "50000") -> LegFilled:
    return LegFilled(cid, TradeId(trade), D(qty), D(price), D("0.00001"), "BNB")  # type: ignore[arg-type]


def started(config: ExecutionConfig = CONFIG, **kwargs: object) -> ExecutionPlan:
    plan, commands = ExecutionPlan.start(request(**kwargs), RULES, BOOK, 0, config)  # type: ignore[arg-type]
    place = only(commands, PlaceOrder)
    assert isinstance(place, PlaceOrder)
    return plan
