"""The pure per-pair execution book and the commands its actor carries out."""

from engine.pair._book import PairBook
from engine.pair._commands import (
    Alert,
    CancelAhead,
    Command,
    Emit,
    LookupStored,
    Persist,
    Resolve,
    Schedule,
    Send,
    Unschedule,
    Withdraw,
    WriteAhead,
)
from engine.pair._intake import IntakeContext, check_intake
from engine.pair._legs import PLAN_TIMER_PREFIX, Execution, Leg, Stage, order_of, trade_of
from engine.pair._outcomes import WithdrawnKeys, key_reused, replay_outcome
from engine.pair._seen import SeenKeys
from engine.pair._settings import PairSettings
from engine.pair._shutdown import SHUTDOWN_CANCEL, ShutdownTally, is_unknown

__all__ = [
    "PLAN_TIMER_PREFIX",
    "SHUTDOWN_CANCEL",
    "Alert",
    "CancelAhead",
    "Command",
    "Emit",
    "Execution",
    "IntakeContext",
    "Leg",
    "LookupStored",
    "PairBook",
    "PairSettings",
    "Persist",
    "Resolve",
    "Schedule",
    "SeenKeys",
    "Send",
    "ShutdownTally",
    "Stage",
    "Unschedule",
    "Withdraw",
    "WithdrawnKeys",
    "WriteAhead",
    "check_intake",
    "is_unknown",
    "key_reused",
    "order_of",
    "replay_outcome",
    "trade_of",
]
