"""The simulator's HMAC secrets have Binance's length, so the keys `run.py sim` prints configure the engine.

Before, the default secret was 65 characters: the engine's check-config (like Binance) wants exactly 64, so the
documented workflow (run the simulator standalone, point the engine at it with the printed keys) dead-ended.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from engine.config import KeyType, detect_key_type, resolve_config
from sim import AccountSpec, SimConfig
from tests.config.keys import ed25519_pem, rsa_pem


def test_the_default_keys_pass_the_engines_configuration() -> None:
    account = AccountSpec()
    assert len(account.secret) == 64 and detect_key_type(account.secret) is KeyType.HMAC
    environ = {
        "FREQTRADE__EXCHANGE__NAME": "binance",
        "FREQTRADE__EXCHANGE__REST_URL": "http://127.0.0.1:9000",
        "FREQTRADE__EXCHANGE__WS_API_URL": "ws://127.0.0.1:9000/ws-api/v3",
        "FREQTRADE__EXCHANGE__STREAM_URL": "ws://127.0.0.1:9000",
        "FREQTRADE__EXCHANGE__KEY": account.api_key,
        "FREQTRADE__EXCHANGE__SECRET": account.secret,
    }
    loaded, problems = resolve_config(None, environ)
    assert problems == [] and loaded is not None


@pytest.mark.parametrize("length", [12, 63, 65])
def test_an_hmac_secret_of_another_length_is_refused(length: int) -> None:
    secret = ("Zq7" * 30)[:length]
    with pytest.raises(ValidationError, match=f"an HMAC secret has exactly 64 characters, not {length}") as exc:
        SimConfig(accounts=[AccountSpec(secret=secret)])
    assert secret not in str(exc.value)


@pytest.mark.parametrize("pem", [rsa_pem, ed25519_pem])
def test_pem_secrets_are_not_held_to_the_hmac_length(pem: object) -> None:
    secret = pem()  # type: ignore[operator]
    assert len(secret) != 64
    assert AccountSpec(secret=secret).secret == secret
