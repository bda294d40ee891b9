"""`since`/`until` at the edges of the calendar are a 422 like any bad value, not an OverflowError (HTTP 500).

Converting `0001-01-01T00:00:00+01:00` or `9999-12-31T23:59:59-01:00` to UTC leaves the datetime range.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError

from engine.service._app import ApiState, EventHub, build_app
from engine.service._schemas import OrdersQuery, TradesQuery, field_errors

TOKEN = "t0ken-for-the-time-limits-test"
EDGES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:59:59+01:00"]


@pytest.mark.parametrize("model", [OrdersQuery, TradesQuery])
@pytest.mark.parametrize("field", ["since", "until"])
@pytest.mark.parametrize("value", EDGES)
def test_times_past_the_calendar_after_conversion_are_validation_errors(model: Any, field: str, value: str) -> None:
    with pytest.raises(ValidationError) as raised:
        model.model_validate({field: value})
    assert [e["field"] for e in field_errors(raised.value)] == [field]


def test_the_extreme_times_that_do_convert_are_accepted() -> None:
    query = OrdersQuery.model_validate({"since": "0001-01-01T01:00:00+01:00", "until": "9999-12-31T23:59:59Z"})
    assert query.since is not None and query.since.year == 1


class _Engine:
    config = SimpleNamespace(risk=SimpleNamespace(kill_switch=False), exchange=SimpleNamespace(pair_whitelist=[]))


async def _get(path: str) -> tuple[int, Any]:
    app = build_app(ApiState(_Engine(), TOKEN, EventHub()))  # type: ignore[arg-type]
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        response = await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        return response.status, await response.json()


@pytest.mark.parametrize(("path", "field"), [("/orders", "since"), ("/trades", "until")])
@pytest.mark.parametrize("value", EDGES[:2])
def test_the_api_answers_422_naming_the_field(path: str, field: str, value: str) -> None:
    status, body = asyncio.run(_get(f"{path}?{field}={quote(value)}"))
    assert status == 422, body
    assert [f["field"] for f in body["fields"]] == [field]
