"""`refusal_fields`: the request field a 422 `filter_failure` is about comes from the refusal's details."""

from __future__ import annotations

from engine.api import Refusal, RefusalReason
from engine.service._schemas import refusal_fields


def test_a_price_filter_refusal_whose_message_does_not_start_with_the_filter_is_about_the_price() -> None:
    # The field came from the message's first word: a refusal worded otherwise was put on `amount`.
    refusal = Refusal(
        RefusalReason.FILTER_FAILURE,
        "price 1.005 off the tick: PRICE_FILTER: tick 0.01",
        {"filter": "PRICE_FILTER", "field": "price", "value": "1.005"},
    )
    assert refusal_fields(refusal) == [{"field": "price", "message": refusal.message}]


def test_without_details_the_message_still_names_the_filter() -> None:
    refusal = Refusal(RefusalReason.FILTER_FAILURE, "PERCENT_PRICE_BY_SIDE: price 1 outside 2-3")
    assert refusal_fields(refusal)[0]["field"] == "price"
