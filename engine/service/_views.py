"""How the CLI client shows the daemon's answers: the health table's rows and one line per order event."""

from __future__ import annotations

from typing import Any

__all__ = ["event_line", "health_rows"]


def _details(data: dict[str, Any], skip: tuple[str, ...] = ()) -> str:
    return " ".join(f"{k}={v}" for k, v in data.items() if k not in skip and not isinstance(v, dict | list)) or "-"


def health_rows(health: dict[str, Any]) -> list[list[object]]:
    """One row per part of the engine: database, gateway (queue, rate budget), each stream, each pair actor."""
    rows: list[list[object]] = []
    database = health.get("database")
    if isinstance(database, dict):
        rows.append(["database", database.get("health", "?"), _details(database, ("health",))])
    gateway = health.get("gateway")
    if isinstance(gateway, dict):
        state = "error" if "error" in gateway else "orders halted" if gateway.get("orders_halted") else "ok"
        rows.append(["gateway", state, _details(gateway, ("orders_halted",))])
        for key, value in gateway.items():
            if isinstance(value, dict):  # rate budget (or any other nested figures), one row per entry
                for label, entry in value.items():
                    detail = _details(entry) if isinstance(entry, dict) else str(entry)
                    rows.append([f"{key}:{label}", "", detail])
    streams = health.get("streams")
    if isinstance(streams, dict):
        for role, stream in streams.items():
            if isinstance(stream, dict):
                rows.append([f"stream:{role}", stream.get("state", "?"), _details(stream, ("state",))])
    elif "streams" in health:
        rows.append(["streams", "off", "REST polling"])
    pairs = health.get("pairs")
    if isinstance(pairs, dict):
        for pair, alive in pairs.items():
            rows.append([f"pair:{pair}", "alive" if alive else "dead", "-"])
    for key, value in health.items():
        if key not in _SHOWN and isinstance(value, dict):  # a part added later (e.g. start-up recovery)
            rows.append([key, "", _details(value)])
    return rows


_SHOWN = frozenset({"database", "gateway", "streams", "pairs"})


def event_line(event: dict[str, Any]) -> str:
    """One order event on one line: time, kind, pair, request, the order's state, the fill, the message."""
    order = event.get("order") or {}
    fill = event.get("fill") or {}
    parts = [event["time"], event["kind"], event["pair"], f"request={event.get('request_id') or '-'}"]
    if order:
        parts.append(f"order={order.get('client_order_id')} status={order.get('status')} filled={order.get('filled')}")
    if fill:
        parts.append(f"fill={fill.get('quantity')}@{fill.get('price')}")
    trade = event.get("trade") or {}
    if trade:  # a done event: what the request came to, the fees and what a buy left to sell
        fees = " ".join(f"{v} {k}" for k, v in sorted((trade.get("fees") or {}).items())) or "0"
        parts.append(f"trade={trade.get('status')} filled={trade.get('filled')} of {trade.get('requested')} "
                     f"avg={trade.get('average_price')} fees={fees} received={trade.get('received')}")  # fmt: skip
    if event.get("message"):
        parts.append(event["message"])
    return "  ".join(str(p) for p in parts)
