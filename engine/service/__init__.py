"""The engine as a service: the daemon, its HTTP control API and the CLI client that talks to it.

Importing this package is light (no aiohttp, pydantic or ccxt): the CLI builds its parser from it. The
server-side names load their modules on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.service._client import ApiClient, ApiError
from engine.service._token import TokenSource, endpoint_file_for, ensure_token, read_endpoint, read_token_file

if TYPE_CHECKING:
    from engine.service._alerts import Alerts, Telegram, Webhook
    from engine.service._app import EventHub
    from engine.service._metrics import Metrics
    from engine.service._openapi import openapi_schema
    from engine.service._server import ControlApi

__all__ = [
    "Alerts",
    "ApiClient",
    "ApiError",
    "ControlApi",
    "EventHub",
    "Metrics",
    "Telegram",
    "TokenSource",
    "Webhook",
    "endpoint_file_for",
    "ensure_token",
    "openapi_schema",
    "read_endpoint",
    "read_token_file",
]

_LAZY = {
    "ControlApi": "engine.service._server",
    "EventHub": "engine.service._app",
    "Metrics": "engine.service._metrics",
    "Alerts": "engine.service._alerts",
    "Telegram": "engine.service._alerts",
    "Webhook": "engine.service._alerts",
    "openapi_schema": "engine.service._openapi",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
