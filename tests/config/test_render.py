"""show-config rendering: valid TOML, sources per key, secrets redacted, exact round trip."""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path

from hypothesis import assume, given
from hypothesis import strategies as st

from engine.config import load_config, render_toml
from tests.config import keys


def test_render_is_toml_that_loads_back_to_the_same_config(tmp_path: Path) -> None:
    env = {
        "FREQTRADE__EXECUTION__DRY_RUN_WALLET": '{"BTC": "0.00012345", "USDT": "10.5"}',
        "FREQTRADE__EXECUTION__MAX_SLIPPAGE_PCT": "0.125",
        "FREQTRADE__EXCHANGE__SECRET": keys.rsa_pem(),
        "FREQTRADE__EXCHANGE__KEY": keys.API_KEY,
        "FREQTRADE__LOGGING__FILE": "logs/engine.log",
    }
    loaded = load_config(None, env)
    text = render_toml(loaded, show_sensitive=True)
    path = tmp_path / "round.toml"
    path.write_text(text, encoding="utf-8")
    assert load_config(path, {}).config == loaded.config


def test_render_redacts_secrets_and_url_passwords() -> None:
    env = {
        "FREQTRADE__EXCHANGE__SECRET": keys.HMAC_SECRET,
        "FREQTRADE__EXCHANGE__KEY": keys.API_KEY,
        "FREQTRADE__DATABASE__URL": "postgresql://trader:pa55word@db.local:5432/engine",
    }
    text = render_toml(load_config(None, env))
    data = tomllib.loads(text)
    assert data["exchange"]["secret"] == "REDACTED"
    assert data["exchange"]["key"] == "REDACTED"
    assert data["database"]["url"] == "postgresql://trader:REDACTED@db.local:5432/engine"
    assert keys.HMAC_SECRET not in text and keys.API_KEY not in text and "pa55word" not in text
    assert 'secret = "REDACTED"  # env FREQTRADE__EXCHANGE__SECRET' in text


def test_render_names_each_source(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[risk]\nkill_switch = true\n", encoding="utf-8")
    text = render_toml(load_config(path, {"FREQTRADE__API__PORT": "9999"}))
    assert f"kill_switch = true  # file {path}" in text
    assert "port = 9999  # env FREQTRADE__API__PORT" in text
    assert 'name = "sim"  # default' in text


def test_decimals_render_without_exponent() -> None:
    loaded = load_config(None, {"FREQTRADE__EXECUTION__DRY_RUN_WALLET": '{"BTC": "1E+1"}'})
    assert 'dry_run_wallet = { "BTC" = 10 }' in render_toml(loaded)
    assert loaded.config.execution.dry_run_wallet == {"BTC": Decimal(10)}


@given(
    secret=st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00"), min_size=16, max_size=60
    )
)
def test_arbitrary_secret_never_in_show_config_output(secret: str) -> None:
    loaded = load_config(None, {"FREQTRADE__API__TOKEN": secret, "FREQTRADE__ALERTS__WEBHOOK_TOKEN": secret})
    text = render_toml(loaded)
    # A "secret" that is part of the output's own words (e.g. "webhook_toke") proves nothing either way.
    assume(secret not in render_toml(load_config(None, {"FREQTRADE__API__TOKEN": "x" * 16})).replace("x" * 16, ""))
    assert secret not in text
