"""A minimal request router on aiohttp's low-level server (no Application/middleware overhead per request)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

__all__ = ["Dispatcher", "Handler"]

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


class Dispatcher:
    """Routes by exact ``(method, path)`` first, then by path prefix, in registration order."""

    def __init__(self) -> None:
        self._exact: dict[tuple[str, str], Handler] = {}
        self._paths: set[str] = set()
        self._prefixes: list[tuple[str, str, Handler]] = []
        # Called with every request before it is routed (the request log of ``SimConfig.record_requests``).
        self.on_request: Callable[[web.BaseRequest], Awaitable[None]] | None = None

    def add(self, method: str, path: str, handler: Handler) -> None:
        """Route ``method`` (or ``*``) on exactly ``path``."""
        self._exact[(method, path)] = handler
        self._paths.add(path)

    def add_prefix(self, method: str, prefix: str, handler: Handler) -> None:
        """Route ``method`` (or ``*``) on every path starting with ``prefix``."""
        self._prefixes.append((method, prefix, handler))

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        method = request.method
        if self.on_request is not None:
            await self.on_request(request)
        handler = self._exact.get((method, path)) or self._exact.get(("*", path))
        if handler is None:
            for m, prefix, h in self._prefixes:
                if (m in ("*", method)) and path.startswith(prefix):
                    handler = h
                    break
        if handler is None:
            status = 405 if path in self._paths else 404
            body = orjson.dumps({"code": -1000, "msg": f"{method} {path} is not served by the simulator"})
            return web.Response(status=status, body=body, headers={"Content-Type": "application/json"})
        return await handler(request)
