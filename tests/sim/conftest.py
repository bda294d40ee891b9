"""Fixtures for the simulator tests: generated RSA and Ed25519 PKCS#8 PEM keys."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa


def _pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="session")
def rsa_pem() -> str:
    """A 2048-bit RSA private key (PKCS#8 PEM)."""
    return _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="session")
def ed25519_pem() -> str:
    """An Ed25519 private key (PKCS#8 PEM, 119 characters)."""
    return _pem(ed25519.Ed25519PrivateKey.generate())
