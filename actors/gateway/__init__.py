"""The exchange gateway: priority queue, rate budget and retries around one ccxt async client."""

from actors.gateway._actor import GatewayActor, GatewayHandle, GatewaySettings
from actors.gateway._core import GatewayCore, GatewayStats

__all__ = ["GatewayActor", "GatewayCore", "GatewayHandle", "GatewaySettings", "GatewayStats"]
