"""Key type detection: HMAC, RSA and Ed25519 detected offline; malformed keys rejected without echoing them."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from engine.config import KeyMaterialError, KeyType, detect_key_type, normalise_secret
from tests.config import keys


def test_hmac_secret_detected() -> None:
    assert detect_key_type(keys.HMAC_SECRET) is KeyType.HMAC
    assert detect_key_type("0" * 64) is KeyType.HMAC  # all digits is still an HMAC secret


def test_rsa_2048_and_ed25519_detected() -> None:
    assert detect_key_type(keys.rsa_pem(2048)) is KeyType.RSA
    assert detect_key_type(keys.ed25519_pem()) is KeyType.ED25519


@pytest.mark.slow
def test_rsa_4096_detected() -> None:
    assert detect_key_type(keys.rsa_pem(4096)) is KeyType.RSA


def test_rsa_of_unsupported_size_rejected() -> None:
    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=1024)
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    with pytest.raises(KeyMaterialError, match="got an RSA key of 1024 bits"):
        detect_key_type(pem)


def test_pem_with_escaped_newlines_is_normalised() -> None:
    pem = keys.ed25519_pem()
    one_line = pem.replace("\n", "\\n")
    assert normalise_secret(one_line) == pem.rstrip("\n")
    assert detect_key_type(one_line) is KeyType.ED25519


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        ("", "got an empty value"),
        ("abc", "got a 3-character value (an HMAC secret has exactly 64)"),
        ("a" * 63 + "!", "got a 64-character value with characters other than letters and digits"),
        ("a" * 32 + " " + "a" * 31, "got a 64-character value containing whitespace"),
        ("a" * 65, "got a 65-character value (an HMAC secret has exactly 64)"),
    ],
)
def test_malformed_hmac_rejected_with_exact_text(secret: str, expected: str) -> None:
    with pytest.raises(KeyMaterialError) as err:
        detect_key_type(secret)
    assert str(err.value).startswith("expected an HMAC secret (64 letters and digits), an RSA PKCS#8 PEM")
    assert str(err.value).endswith(expected)


def _truncated() -> str:
    lines = keys.rsa_pem().splitlines()
    return "\n".join([*lines[:5], lines[-1]])


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (_truncated, "got a PKCS#8 PEM that does not parse"),
        (keys.rsa_pkcs1_pem, "got a PKCS#1 'RSA PRIVATE KEY' PEM (convert it with: openssl pkcs8 -topk8"),
        (keys.encrypted_pem, "got an encrypted PEM (remove the passphrase)"),
        (keys.public_pem, "got a public key (the secret is the private key)"),
        (lambda: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----", "not a PKCS#8 private key"),
    ],
)
def test_malformed_pem_rejected_and_never_echoed(make: object, expected: str) -> None:
    assert callable(make)
    pem: str = make()
    with pytest.raises(KeyMaterialError) as err:
        detect_key_type(pem)
    message = str(err.value)
    assert expected in message
    body_lines = [ln for ln in pem.splitlines() if ln and not ln.startswith("-----")]
    assert not any(ln in message for ln in body_lines if len(ln) >= 8)
