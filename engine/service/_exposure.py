"""Start-up warnings about secrets sent in clear text: a control API listening beyond loopback (plain HTTP with
the bearer token) and alert destinations reached over ``http://`` (the webhook token, the Telegram bot token).

Stdlib only: the daemon imports it at import time. The warnings name hosts, never a URL's path (a webhook's
secret) nor any token.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from engine.config import Config

__all__ = ["cleartext_warnings"]


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False  # "" binds every interface
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere


def _cleartext_host(url: str) -> str | None:
    """The host of a non-loopback ``http://`` URL; None for https or loopback."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() != "http" or _is_loopback(parts.hostname):
        return None
    return parts.hostname or "?"


def cleartext_warnings(config: Config) -> list[str]:
    """What the daemon warns about at start (empty when nothing goes out in clear text)."""
    out: list[str] = []
    host = config.api.host
    if not _is_loopback(host):
        out.append(
            f"control API: api.host = {host!r} is not loopback: it serves plain HTTP, so the bearer token and "
            "every order cross the network in clear text (put it behind a TLS proxy, or listen on 127.0.0.1)"
        )
    alerts = config.alerts
    if alerts.webhook_url is not None:
        hook_host = _cleartext_host(alerts.webhook_url)
        if hook_host is not None:
            out.append(
                f"alerts: webhook_url is http:// to {hook_host}: its URL (a secret path) and token go in clear text "
                "(use https://)"
            )
    if alerts.telegram_token is not None and alerts.telegram_chat_id is not None:
        tg_host = _cleartext_host(alerts.telegram_api_url)
        if tg_host is not None:
            out.append(
                f"alerts: telegram_api_url is http:// to {tg_host}: the bot token goes in clear text (use https://)"
            )
    return out
