"""Offline detection and validation of Binance API key material.

Binance accepts three kinds of API keys (binance-spot.md §2.1): an HMAC secret (64 letters and digits), an RSA
private key (PKCS#8 PEM, 2048 or 4096 bits) and an Ed25519 private key (PKCS#8 PEM). The kind decides how
requests are signed, so it is detected once here, offline, and a malformed key is a configuration error that
says which kind was expected and what was wrong — never echoing the secret itself.
"""

from __future__ import annotations

import re
from enum import StrEnum

__all__ = ["KeyMaterialError", "KeyType", "detect_key_type", "normalise_secret"]

_HMAC_RE = re.compile(r"^[A-Za-z0-9]{64}$")
_PEM_BEGIN = "-----BEGIN"
_EXPECTED = (
    "expected an HMAC secret (64 letters and digits), an RSA PKCS#8 PEM private key (2048 or 4096 bits) "
    "or an Ed25519 PKCS#8 PEM private key"
)


class KeyType(StrEnum):
    """The signing scheme a secret implies."""

    HMAC = "hmac"
    RSA = "rsa"
    ED25519 = "ed25519"


class KeyMaterialError(ValueError):
    """A secret that is not valid key material. The message never contains the secret."""


def normalise_secret(secret: str) -> str:
    """Return the secret with transport artefacts removed.

    A PEM pasted into a one-line `.env` file often arrives with literal ``\\n`` sequences instead of line breaks;
    trailing newlines come from ``echo`` into a secrets file. Neither is part of the key.
    """
    value = secret.strip("\r\n")
    if _PEM_BEGIN in value and "\\n" in value and "\n" not in value:
        value = value.replace("\\n", "\n").strip("\r\n")
    return value


def detect_key_type(secret: str) -> KeyType:
    """Detect and validate the kind of key `secret` is.

    Raises:
        KeyMaterialError: the secret is neither a well-formed HMAC secret nor a parseable PKCS#8 PEM of a
            supported kind; the message names what was expected and what was wrong.
    """
    value = normalise_secret(secret)
    if _PEM_BEGIN not in value:
        if _HMAC_RE.match(value):
            return KeyType.HMAC
        problem = _describe_hmac_problem(value)
        raise KeyMaterialError(f"{_EXPECTED}; got {problem}")
    return _detect_pem(value)


def _describe_hmac_problem(value: str) -> str:
    if not value:
        msg = "an empty value"
    elif any(ch.isspace() for ch in value):
        msg = f"a {len(value)}-character value containing whitespace"
    elif not value.isascii() or not value.isalnum():
        msg = f"a {len(value)}-character value with characters other than letters and digits"
    else:
        msg = f"a {len(value)}-character value (an HMAC secret has exactly 64)"
    return msg


def _detect_pem(value: str) -> KeyType:
    # Imported lazily: cryptography costs ~50 ms and only PEM keys need it.
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    if "-----BEGIN PRIVATE KEY-----" not in value:
        if "ENCRYPTED PRIVATE KEY" in value:
            raise KeyMaterialError(f"{_EXPECTED}; got an encrypted PEM (remove the passphrase)")
        if "RSA PRIVATE KEY" in value:
            raise KeyMaterialError(
                f"{_EXPECTED}; got a PKCS#1 'RSA PRIVATE KEY' PEM "
                "(convert it with: openssl pkcs8 -topk8 -nocrypt -in key.pem)"
            )
        if "PUBLIC KEY" in value:
            raise KeyMaterialError(f"{_EXPECTED}; got a public key (the secret is the private key)")
        raise KeyMaterialError(f"{_EXPECTED}; got a PEM block that is not a PKCS#8 private key")
    try:
        key = load_pem_private_key(value.encode(), password=None)
    except (ValueError, TypeError) as exc:
        # The library's message describes the structure, never the key bytes.
        reason = str(exc).split("\n", 1)[0][:120]
        raise KeyMaterialError(f"{_EXPECTED}; got a PKCS#8 PEM that does not parse ({reason})") from None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return KeyType.ED25519
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size not in (2048, 4096):
            raise KeyMaterialError(f"{_EXPECTED}; got an RSA key of {key.key_size} bits")
        return KeyType.RSA
    raise KeyMaterialError(f"{_EXPECTED}; got a {type(key).__name__.removeprefix('_')} key")
