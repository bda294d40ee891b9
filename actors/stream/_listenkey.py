"""Binance.US listenKey REST calls (``/api/v3/userDataStream``): create, keep alive, close.

UBWA's REST client cannot be pointed anywhere but Binance (it ignores `restful_base_uri`), so the actor calls
these itself and hands the key to UBWA. Blocking stdlib HTTP with a timeout; called from the actor's thread.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

import orjson

from actors.stream._rejections import (
    THROTTLE_MIN_DELAY_MS,
    Rejection,
    RejectionKind,
    classify_rejection,
    retry_after_in,
)

__all__ = ["ListenKeyClient", "ListenKeyError", "keepalive_retry_ms", "listen_key_refusal"]


class ListenKeyError(RuntimeError):
    """A listenKey call failed: the HTTP `status`, Binance's error `code` and the ``Retry-After`` header
    (seconds; sent with 429 and 418) when the exchange answered with them."""

    def __init__(
        self, message: str, status: int | None = None, code: int | None = None, retry_after_s: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after_s = retry_after_s


class ListenKeyClient:
    """POST/PUT ``/api/v3/userDataStream`` with the API key header (the secret is never sent)."""

    def __init__(self, rest_url: str, api_key: str, timeout_s: float = 10.0) -> None:  # float-ok: seconds
        self._url = rest_url.rstrip("/") + "/api/v3/userDataStream"
        self._api_key = api_key
        self._timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"ListenKeyClient({self._url!r})"

    def _call(self, method: str, listen_key: str | None = None) -> dict[str, object]:
        url = self._url
        if listen_key is not None:
            url += "?" + urllib.parse.urlencode({"listenKey": listen_key})
        request = urllib.request.Request(url, method=method, headers={"X-MBX-APIKEY": self._api_key})
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            try:
                err = orjson.loads(payload)
            except orjson.JSONDecodeError:
                err = {}
            code = err.get("code") if isinstance(err, dict) else None
            msg = err.get("msg") if isinstance(err, dict) else None
            retry_after = (exc.headers.get("Retry-After") or "").strip() if exc.headers else ""
            raise ListenKeyError(
                f"{method} userDataStream: HTTP {exc.code} {msg or ''}".strip(),
                exc.code,
                code if isinstance(code, int) else None,
                int(retry_after) if retry_after.isdigit() else None,
            ) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise ListenKeyError(f"{method} userDataStream: {exc}") from None
        try:
            data = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            raise ListenKeyError(f"{method} userDataStream: response is not JSON") from None
        return data if isinstance(data, dict) else {}

    def create(self) -> str:
        """A listenKey (Binance returns the active one if there is one)."""
        key = self._call("POST").get("listenKey")
        if not isinstance(key, str) or not key:
            raise ListenKeyError("POST userDataStream: no listenKey in the response")
        return key

    def keepalive(self, listen_key: str) -> None:
        """Extend the key's life by 60 minutes."""
        self._call("PUT", listen_key)


def listen_key_refusal(exc: ListenKeyError, now_ms: int) -> Rejection | None:
    """A failed listenKey call as the exchange's refusal, classified; None if it never answered (network, timeout)."""
    if exc.status is None:
        return None
    # The Retry-After header first; a 418 without one still names the ban's end in its message.
    retry_after_ms = retry_after_in(str(exc), now_ms) if exc.retry_after_s is None else exc.retry_after_s * 1000
    return classify_rejection(exc.code, exc.status, retry_after_ms)


def keepalive_retry_ms(exc: ListenKeyError, now_ms: int) -> int | None:
    """When to try a failed keepalive again, or None if the key is gone (the stream must be recreated).

    A keepalive that went unanswered, or was refused for a rate limit, a ban or the exchange's own trouble, says
    nothing against the key, which lives 60 minutes past the last keepalive (sent every 5): the stream stays and
    the keepalive is tried again once the exchange's wait is over (at least `THROTTLE_MIN_DELAY_MS`). Recreating
    it instead opened a gap and asked for a new key from the same refusing exchange.
    """
    refusal = listen_key_refusal(exc, now_ms)
    if refusal is None:
        return THROTTLE_MIN_DELAY_MS
    if refusal.kind is RejectionKind.THROTTLED:
        return max(THROTTLE_MIN_DELAY_MS, refusal.retry_after_ms or 0)
    return None
