"""Sources and precedence: defaults < TOML file < FREQTRADE__* environment, with provenance."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.config import ConfigError, KeyType, load_config, resolve_config
from tests.config import keys

# One representative key per section: (section, key, file value as TOML text, env value, expected file, expected env)
PER_SECTION = [
    ("exchange", "recv_window_ms", "7000", "9000", 7000, 9000),
    ("execution", "limit_timeout_s", "12.5", "0.1", Decimal("12.5"), Decimal("0.1")),
    ("risk", "max_open_orders_per_pair", "7", "9", 7, 9),
    ("database", "batch_size", "100", "200", 100, 200),
    ("stream", "watchdog_silence_s", "20", "40", Decimal(20), Decimal(40)),
    ("logging", "level", '"DEBUG"', "warning", "DEBUG", "WARNING"),
    ("alerts", "min_interval_s", "5", "0", Decimal(5), Decimal(0)),
    ("api", "port", "9001", "9002", 9001, 9002),
    ("sim", "seed", "7", "8", 7, 8),
]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("section", "key", "file_text", "env_text", "file_value", "env_value"), PER_SECTION)
def test_precedence_default_file_env(
    tmp_path: Path, section: str, key: str, file_text: str, env_text: str, file_value: object, env_value: object
) -> None:
    default = getattr(getattr(load_config(None, {}).config, section), key)
    assert default != file_value
    path = _write(tmp_path, f"[{section}]\n{key} = {file_text}\n")

    from_file = load_config(path, {})
    assert getattr(getattr(from_file.config, section), key) == file_value
    assert str(from_file.source_of((section, key))) == f"file {path}"

    env_name = f"FREQTRADE__{section.upper()}__{key.upper()}"
    from_env = load_config(path, {env_name: env_text})
    assert getattr(getattr(from_env.config, section), key) == env_value
    assert str(from_env.source_of((section, key))) == f"env {env_name}"
    assert from_env.env_names == (env_name,)


def test_defaults_need_no_file() -> None:
    loaded = load_config(None, {})
    cfg = loaded.config
    assert cfg.exchange.name.value == "sim"
    assert cfg.execution.dry_run is True
    assert cfg.execution.min_wallet_btc == Decimal("0.0001")
    assert cfg.database.url.startswith("sqlite:///")
    assert str(loaded.source_of(("exchange", "name"))) == "default"


def test_toml_floats_stay_exact(tmp_path: Path) -> None:
    path = _write(tmp_path, "[execution]\nmin_wallet_btc = 0.0001\nmax_slippage_pct = 0.1\n")
    cfg = load_config(path, {}).config
    assert cfg.execution.min_wallet_btc == Decimal("0.0001")
    assert str(cfg.execution.max_slippage_pct) == "0.1"


def test_env_names_are_case_insensitive() -> None:
    for name in ("FREQTRADE__RISK__KILL_SWITCH", "freqtrade__risk__kill_switch", "Freqtrade__Risk__Kill_Switch"):
        assert load_config(None, {name: "true"}).config.risk.kill_switch is True


def test_env_nested_mapping_and_lists() -> None:
    env = {
        "FREQTRADE__EXECUTION__DRY_RUN_WALLET__btc": "0.5",
        "FREQTRADE__EXECUTION__DRY_RUN_WALLET__USDT": "1000.10",
        "FREQTRADE__EXCHANGE__PAIR_WHITELIST": "BTC/USDT, ETH/BTC",
    }
    loaded = load_config(None, env)
    assert loaded.config.execution.dry_run_wallet == {"BTC": Decimal("0.5"), "USDT": Decimal("1000.10")}
    assert loaded.config.exchange.pair_whitelist == ("BTC/USDT", "ETH/BTC")
    assert "FREQTRADE__EXECUTION__DRY_RUN_WALLET__btc" in str(loaded.source_of(("execution", "dry_run_wallet")))
    as_json = load_config(None, {"FREQTRADE__EXCHANGE__PAIR_WHITELIST": '["SOL/USDT"]'})
    assert as_json.config.exchange.pair_whitelist == ("SOL/USDT",)
    whole = load_config(None, {"FREQTRADE__EXECUTION__DRY_RUN_WALLET": '{"eth": "2"}'})
    assert whole.config.execution.dry_run_wallet == {"ETH": Decimal(2)}


def test_env_overrides_one_key_of_a_file_mapping(tmp_path: Path) -> None:
    path = _write(tmp_path, "[execution]\ndry_run_wallet = { BTC = 0.1, USDT = 50 }\n")
    cfg = load_config(path, {"FREQTRADE__EXECUTION__DRY_RUN_WALLET__USDT": "75"}).config
    assert cfg.execution.dry_run_wallet == {"BTC": Decimal("0.1"), "USDT": Decimal(75)}


def test_all_digit_secrets_stay_strings() -> None:
    env = {
        "FREQTRADE__API__TOKEN": "0001234567890123",  # 16 digits: the shortest token the daemon accepts
        "FREQTRADE__EXCHANGE__KEY": "1" * 64,
        "FREQTRADE__EXCHANGE__SECRET": "0" * 64,
    }
    cfg = load_config(None, env).config
    assert cfg.api.token is not None and cfg.api.token.get_secret_value() == "0001234567890123"
    assert cfg.exchange.key is not None and cfg.exchange.key.get_secret_value() == "1" * 64
    assert cfg.exchange.key_type is KeyType.HMAC


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_multiline_pem_through_env(kind: str) -> None:
    pem = keys.rsa_pem() if kind == "rsa" else keys.ed25519_pem()
    cfg = load_config(None, {"FREQTRADE__EXCHANGE__SECRET": pem}).config
    assert cfg.exchange.secret is not None
    assert cfg.exchange.secret.get_secret_value() == pem.rstrip("\n")
    assert cfg.exchange.key_type is KeyType(kind)


def test_secret_file_variants(tmp_path: Path) -> None:
    pem_path = tmp_path / "key.pem"
    pem_path.write_text(keys.ed25519_pem(), encoding="utf-8")
    loaded = load_config(None, {"FREQTRADE__EXCHANGE__SECRET_FILE": str(pem_path)})
    assert loaded.config.exchange.key_type is KeyType.ED25519
    assert "FREQTRADE__EXCHANGE__SECRET_FILE" in str(loaded.source_of(("exchange", "secret")))

    token_path = tmp_path / "token"
    token_path.write_text("0042004200420042\n", encoding="utf-8")
    cfg_path = _write(tmp_path, f'[api]\ntoken_file = "{token_path}"\n')
    cfg = load_config(cfg_path, {}).config
    assert cfg.api.token is not None and cfg.api.token.get_secret_value() == "0042004200420042"


def test_secret_file_errors(tmp_path: Path) -> None:
    _, problems = resolve_config(None, {"FREQTRADE__EXCHANGE__SECRET_FILE": str(tmp_path / "missing.pem")})
    assert [(p.path, p.message) for p in problems] == [
        ("exchange.secret_file", "cannot read the secret file: No such file or directory")
    ]
    _, problems = resolve_config(
        None, {"FREQTRADE__API__TOKEN": "a" * 16, "FREQTRADE__API__TOKEN_FILE": str(tmp_path / "t")}
    )
    assert [p.message for p in problems] == ["both FREQTRADE__API__TOKEN and FREQTRADE__API__TOKEN_FILE are set"]


@given(
    secret=st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00"), min_size=16, max_size=80
    )
)
def test_arbitrary_secrets_round_trip_through_env(secret: str) -> None:
    cfg = load_config(None, {"FREQTRADE__API__TOKEN": secret, "FREQTRADE__ALERTS__WEBHOOK_TOKEN": secret}).config
    assert cfg.api.token is not None and cfg.api.token.get_secret_value() == secret
    assert cfg.alerts.webhook_token is not None and cfg.alerts.webhook_token.get_secret_value() == secret


def test_config_error_lists_every_problem() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, {"FREQTRADE__RISK__MAX_OPEN_ORDERS_PER_PAIR": "0", "FREQTRADE__API__PORT": "70000"})
    assert {p.path for p in err.value.problems} == {"risk.max_open_orders_per_pair", "api.port"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12345678901234567.5", Decimal("12345678901234567.5")),
        ('{"USDT": "1"}', {"USDT": Decimal("1")}),
        ('{"BTC": 0.12345678901234567891}', {"BTC": Decimal("0.12345678901234567891")}),
    ],
)
def test_an_env_override_of_a_mapping_or_decimal_never_goes_through_a_float(value: str, expected: object) -> None:
    loaded, problems = resolve_config(None, {"FREQTRADE__EXECUTION__DRY_RUN_WALLET": value})
    assert not problems
    assert loaded.config.execution.dry_run_wallet == expected


@pytest.mark.parametrize("plain", ["FREQTRADE__API__TOKEN", "freqtrade__api__token"])
def test_an_empty_secret_beside_its_file_form_is_not_a_conflict(plain: str, tmp_path: Path) -> None:
    # Before: "both FREQTRADE__API__TOKEN and FREQTRADE__API__TOKEN_FILE are set", though the model takes an empty
    # token for unset (compose files set every variable, empty). The lower-case spelling sorts after the _FILE
    # one: it must not blank the file's token either.
    token_path = tmp_path / "token"
    token_path.write_text("0042004200420042\n", encoding="utf-8")
    loaded, problems = resolve_config(None, {plain: "", "FREQTRADE__API__TOKEN_FILE": str(token_path)})
    assert problems == [] and loaded is not None
    token = loaded.config.api.token
    assert token is not None and token.get_secret_value() == "0042004200420042"
    assert "FREQTRADE__API__TOKEN_FILE" in str(loaded.source_of(("api", "token")))


def test_an_empty_exchange_secret_gives_way_to_its_file(tmp_path: Path) -> None:
    pem_path = tmp_path / "key.pem"
    pem_path.write_text(keys.ed25519_pem(), encoding="utf-8")
    env = {"FREQTRADE__EXCHANGE__SECRET": "", "FREQTRADE__EXCHANGE__SECRET_FILE": str(pem_path)}
    assert load_config(None, env).config.exchange.key_type is KeyType.ED25519


@pytest.mark.parametrize("file_name", ["FREQTRADE__EXCHANGE__SECRET_FILE", "freqtrade__exchange__secret_file"])
def test_an_empty_file_form_beside_its_secret_is_not_a_conflict(file_name: str) -> None:
    # Before: "both FREQTRADE__EXCHANGE__SECRET and FREQTRADE__EXCHANGE__SECRET_FILE are set" for an empty _FILE
    # variable, though an empty variable means unset (as an empty secret beside a _FILE does, above).
    pem = keys.ed25519_pem()
    loaded, problems = resolve_config(None, {"FREQTRADE__EXCHANGE__SECRET": pem, file_name: ""})
    assert problems == [] and loaded is not None
    assert loaded.config.exchange.key_type is KeyType.ED25519
    assert str(loaded.source_of(("exchange", "secret"))) == "env FREQTRADE__EXCHANGE__SECRET"


def test_an_empty_file_form_alone_is_unset() -> None:
    # Before: the empty path was read as "." and reported "cannot read the secret file: Is a directory".
    loaded, problems = resolve_config(None, {"FREQTRADE__API__TOKEN_FILE": ""})
    assert problems == [] and loaded is not None
    assert loaded.config.api.token is None
    # Both empty: neither is set.
    loaded, problems = resolve_config(None, {"FREQTRADE__API__TOKEN": "", "FREQTRADE__API__TOKEN_FILE": ""})
    assert problems == [] and loaded is not None
    assert loaded.config.api.token is None


@pytest.mark.parametrize("text", ['"off"', '"yes"', "0", '"false"'])
def test_a_true_false_setting_in_the_file_must_be_a_toml_boolean(tmp_path: Path, text: str) -> None:
    # `dry_run = "off"` was read as false (live trading) and `dry_run = 0` too: a quoted word or a number for a
    # setting that picks paper or live is refused, with the fix, whatever pydantic would make of it.
    path = _write(tmp_path, f"[execution]\ndry_run = {text}\n[stream]\nuser_data = true\n")
    loaded, problems = resolve_config(path, {})
    assert loaded is None
    [problem] = problems
    assert problem.path == "execution.dry_run" and "true or false" in problem.message
    assert "without quotes" in problem.fix
    ok, none = resolve_config(_write(tmp_path, "[execution]\ndry_run = false\n"), {})
    assert none == [] and ok is not None and ok.config.execution.dry_run is False
    from_env, none = resolve_config(None, {"FREQTRADE__EXECUTION__DRY_RUN": "false"})  # the environment is text
    assert none == [] and from_env is not None and from_env.config.execution.dry_run is False


def test_a_pair_whitelist_written_as_one_string_in_the_file_is_a_comma_list(tmp_path: Path) -> None:
    # It was refused with pydantic's "Input should be a valid tuple".
    loaded, problems = resolve_config(_write(tmp_path, '[exchange]\npair_whitelist = "BTC/USDT, ETH/USDT"\n'), {})
    assert problems == [] and loaded is not None
    assert loaded.config.exchange.pair_whitelist == ("BTC/USDT", "ETH/USDT")
