"""Stream actor: owns the UBWA managers (user data over the WS API, bookTicker market data).

Parses raw frames into typed reports and tells them up; coalesces prices; watches health (signals, silence,
``eventStreamTerminated``, ``serverShutdown``), reconnects with backoff inside Binance's connection budget
(slower after a rate-limited refusal, which is never fatal; after a refused timestamp, -1021, once the clock
offset is re-measured, never fatal either: the subscription is signed with the exchange's time, as REST
requests are), and fires ``on_gap`` whenever events may have been lost — the first subscription included — so
the engine reconciles over REST.
"""

from actors.stream._actor import StreamActor, StreamProxy
from actors.stream._backoff import Backoff, ConnectionBudget
from actors.stream._decisions import (
    MARKET_QUIET_MS,
    CreateStream,
    Decision,
    FireGap,
    HealthState,
    ReportHealth,
    ResyncClock,
    ScheduleRecreate,
    SendProbe,
    StopStream,
    StreamHealth,
    StreamRole,
)
from actors.stream._frames import (
    PROBE_PREFIX,
    LatestPrices,
    PriceUpdate,
    ProbeReply,
    classify_user_frame,
    parse_book_ticker,
    probe_request,
)
from actors.stream._rejections import (
    BUSY_CODES,
    CLOCK_SKEW_CODES,
    FATAL_SUBSCRIBE_CODES,
    RATE_LIMIT_CODES,
    THROTTLE_MIN_DELAY_MS,
    Rejection,
    RejectionKind,
    classify_rejection,
    stream_rejection,
    subscribe_rejection,
)
from actors.stream._servertime import ServerTime
from actors.stream._settings import UBWA_EXCHANGES, ExchangeKind, StreamSettings
from actors.stream._watch import FIRST_SUBSCRIPTION, StreamWatch

__all__ = [
    "BUSY_CODES",
    "CLOCK_SKEW_CODES",
    "FATAL_SUBSCRIBE_CODES",
    "FIRST_SUBSCRIPTION",
    "MARKET_QUIET_MS",
    "PROBE_PREFIX",
    "RATE_LIMIT_CODES",
    "THROTTLE_MIN_DELAY_MS",
    "UBWA_EXCHANGES",
    "Backoff",
    "ConnectionBudget",
    "CreateStream",
    "Decision",
    "ExchangeKind",
    "FireGap",
    "HealthState",
    "LatestPrices",
    "PriceUpdate",
    "ProbeReply",
    "Rejection",
    "RejectionKind",
    "ReportHealth",
    "ResyncClock",
    "ScheduleRecreate",
    "SendProbe",
    "ServerTime",
    "StopStream",
    "StreamActor",
    "StreamHealth",
    "StreamProxy",
    "StreamRole",
    "StreamSettings",
    "StreamWatch",
    "classify_rejection",
    "classify_user_frame",
    "parse_book_ticker",
    "probe_request",
    "stream_rejection",
    "subscribe_rejection",
]
