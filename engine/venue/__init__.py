"""The ccxt adapter: client construction, the loop thread that owns it, and Binance's REST wire format."""

from engine.venue._client import LEAN_OPTIONS, ResponseHook, make_client
from engine.venue._gate import (
    CANCELED_BEFORE_SENT,
    HELD_PAST_LIMIT,
    SEND_GATE,
    WITHDRAWN_AT_STOP,
    NotSent,
    SendGate,
    Withdrawn,
    pass_gate,
)
from engine.venue._loop import LoopThread
from engine.venue._urls import VenueUrls, production_urls, rewrite_api_urls
from engine.venue._wire import (
    BINANCE_STATUS,
    OrderSnapshot,
    WireFill,
    WireFormatError,
    format_decimal,
    parse_order,
    side_param,
)

__all__ = [
    "BINANCE_STATUS",
    "CANCELED_BEFORE_SENT",
    "HELD_PAST_LIMIT",
    "LEAN_OPTIONS",
    "SEND_GATE",
    "WITHDRAWN_AT_STOP",
    "LoopThread",
    "NotSent",
    "OrderSnapshot",
    "ResponseHook",
    "SendGate",
    "VenueUrls",
    "WireFill",
    "WireFormatError",
    "Withdrawn",
    "format_decimal",
    "make_client",
    "parse_order",
    "pass_gate",
    "production_urls",
    "rewrite_api_urls",
    "side_param",
]
