"""API keys and signature verification for REST and the WS API (pure)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from urllib.parse import unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from sim._errors import SimError, bad_param

__all__ = ["KeyVerifier", "check_timestamp", "split_signature"]

_KEY_RE = re.compile(r"^[A-Za-z0-9]{1,128}$")
_MIN_TS = 1483228800000  # 2017-01-01: earlier timestamps are rejected since 2024-12


class KeyVerifier:
    """Verifies signatures made with one account's secret (HMAC, RSA or Ed25519)."""

    def __init__(self, secret: str) -> None:
        self.kind: str
        self._hmac_key = b""
        self._rsa: rsa.RSAPublicKey | None = None
        self._ed: ed25519.Ed25519PublicKey | None = None
        if "PRIVATE KEY" in secret:
            private = serialization.load_pem_private_key(secret.encode(), password=None)
            if isinstance(private, rsa.RSAPrivateKey):
                self.kind = "RSA"
                self._rsa = private.public_key()
            elif isinstance(private, ed25519.Ed25519PrivateKey):
                self.kind = "ED25519"
                self._ed = private.public_key()
            else:
                raise ValueError("only RSA and Ed25519 private keys are supported")
        else:
            self.kind = "HMAC"
            self._hmac_key = secret.encode()

    def verify(self, payload: bytes, signature: str, *, url_encoded: bool) -> bool:
        """True if ``signature`` signs ``payload``.

        Args:
            payload: The exact signed bytes.
            signature: Hex (HMAC) or base64 (RSA/Ed25519), percent-encoded when ``url_encoded``.
            url_encoded: REST signatures arrive percent-encoded; WS API ones do not.
        """
        if self.kind == "HMAC":
            expected = hmac.new(self._hmac_key, payload, hashlib.sha256).hexdigest()
            return hmac.compare_digest(expected, signature.lower())
        raw = unquote(signature) if url_encoded else signature
        try:
            sig = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return False
        try:
            if self._rsa is not None:
                self._rsa.verify(sig, payload, padding.PKCS1v15(), hashes.SHA256())
            elif self._ed is not None:
                self._ed.verify(sig, payload)
        except InvalidSignature:
            return False
        return True


def valid_key_format(api_key: str | None) -> bool:
    """Binance API keys are alphanumeric; anything else is -2014."""
    return bool(api_key) and _KEY_RE.match(api_key or "") is not None


def split_signature(raw: str) -> tuple[str, str] | None:
    """Split ``query+body`` into (signed payload, signature); None if no signature is present."""
    idx = raw.rfind("&signature=")
    if idx >= 0:
        payload, rest = raw[:idx], raw[idx + 11 :]
    elif raw.startswith("signature="):
        payload, rest = "", raw[10:]
    else:
        return None
    amp = rest.find("&")
    if amp >= 0:
        # Parameters after the signature are not covered by it; Binance rejects such requests.
        return payload + rest[amp:], rest[:amp]
    return payload, rest


def check_timestamp(timestamp: str | None, recv_window: str | None, server_ms: int) -> None:
    """Binance's timing rule (binance-spot.md §2.2); raises -1102 / -1021.

    ``timestamp`` may be in ms or µs; ``recvWindow`` in ms with up to 3 decimals, default 5000, max 60000.
    """
    if not timestamp:
        raise bad_param("timestamp")
    try:
        ts = int(timestamp)
    except ValueError as exc:
        raise bad_param("timestamp") from exc
    if ts > 10**14:  # microseconds
        ts //= 1000
    window = 5000.0  # float-ok: recvWindow is a duration with µs precision
    if recv_window:
        try:
            window = float(recv_window)  # float-ok
        except ValueError as exc:
            raise bad_param("recvWindow") from exc
        if window > 60000:
            raise SimError(
                400,
                -1102,
                "Mandatory parameter 'recvWindow' was not sent, was empty/null, or malformed. "
                "Cannot be greater than 60000",
            )
    if ts < _MIN_TS or ts >= server_ms + 1000:
        raise SimError(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    if server_ms - ts > window:
        raise SimError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
