"""Every validation rule, with the exact error text, the dotted field and its source."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import resolve_config
from tests.config import keys
from tests.config.test_for_trading import NEEDS_KEYS


def _problems(env: dict[str, str], path: Path | None = None) -> list[tuple[str, str, str]]:
    loaded, problems = resolve_config(path, env)
    assert loaded is None
    return [(p.path, p.source, p.message) for p in problems]


RULES = [
    (
        {"FREQTRADE__EXCHANGE__NAME": "binanceus", "FREQTRADE__EXCHANGE__TESTNET": "true"},
        "exchange.testnet",
        "binanceus has no testnet: set testnet = false or use name = 'binance'",
    ),
    (
        {"FREQTRADE__EXCHANGE__NAME": "binance", "FREQTRADE__EXECUTION__DRY_RUN": "false"},
        "exchange.key",
        NEEDS_KEYS,
    ),
    (
        {
            "FREQTRADE__EXCHANGE__NAME": "binance",
            "FREQTRADE__EXECUTION__DRY_RUN": "false",
            "FREQTRADE__EXCHANGE__KEY": keys.API_KEY,
        },
        "exchange.secret",
        NEEDS_KEYS,
    ),
    (
        {"FREQTRADE__EXCHANGE__NAME": "binance", "FREQTRADE__EXCHANGE__REST_URL": "https://api.binance.us"},
        "exchange.name",
        "'binance' but a URL points at binance.us: use name = 'binanceus'",
    ),
    (
        {"FREQTRADE__EXCHANGE__NAME": "binanceus", "FREQTRADE__EXCHANGE__REST_URL": "https://api.binance.com"},
        "exchange.name",
        "'binanceus' but a URL points at binance.com: use name = 'binance'",
    ),
    (
        {"FREQTRADE__EXCHANGE__PAIR_WHITELIST": "btc/usdt,BTCUSDT"},
        "exchange.pair_whitelist",
        "pairs must be in BASE/QUOTE form in upper case, e.g. BTC/USDT; bad: ['btc/usdt', 'BTCUSDT']",
    ),
    ({"FREQTRADE__EXCHANGE__PAIR_WHITELIST": "[]"}, "exchange.pair_whitelist", "at least one pair is needed"),
    (
        {"FREQTRADE__EXCHANGE__PAIR_WHITELIST": "BTC/USDT,BTC/USDT"},
        "exchange.pair_whitelist",
        "pairs are listed more than once",
    ),
    ({"FREQTRADE__EXCHANGE__KEY": "short"}, "exchange.key", "an API key is 64 letters and digits"),
    (
        {"FREQTRADE__EXCHANGE__REST_URL": "api.binance.com"},
        "exchange.rest_url",
        "rest_url must be an absolute URL with scheme http or https and a host",
    ),
    (
        {"FREQTRADE__EXCHANGE__WS_API_URL": "http://127.0.0.1/ws-api/v3"},
        "exchange.ws_api_url",
        "the URL must be an absolute URL with scheme ws or wss and a host",
    ),
    (
        {"FREQTRADE__EXCHANGE__RECV_WINDOW_MS": "60001"},
        "exchange.recv_window_ms",
        "Input should be less than or equal to 60000",
    ),
    (
        # under a minute, the engine's own pacing (a full weight minute) would pass for a long order-limit hold
        {"FREQTRADE__EXCHANGE__MAX_CREATE_HOLD_S": "5"},
        "exchange.max_create_hold_s",
        "Input should be greater than or equal to 60",
    ),
    (
        {"FREQTRADE__EXECUTION__LIMIT_TIMEOUT_S": "-1"},
        "execution.limit_timeout_s",
        "Input should be greater than 0",
    ),
    (
        {"FREQTRADE__EXECUTION__LIMIT_TIMEOUT_S": "NaN"},
        "execution.limit_timeout_s",
        "Input should be a finite number",
    ),
    (
        {"FREQTRADE__EXECUTION__MAX_SLIPPAGE_PCT": "101"},
        "execution.max_slippage_pct",
        "Input should be less than or equal to 100",
    ),
    (
        {"FREQTRADE__EXECUTION__FALLBACK": "limit"},
        "execution.fallback",
        "Input should be 'market', 'ioc_limit' or 'none'",
    ),
    (
        {"FREQTRADE__EXECUTION__ON_SHUTDOWN": "maybe"},
        "execution.on_shutdown",
        "Input should be 'cancel' or 'keep'",
    ),
    (
        {"FREQTRADE__EXECUTION__MIN_WALLET_BTC": "-0.1"},
        "execution.min_wallet_btc",
        "Input should be greater than or equal to 0",
    ),
    (
        {"FREQTRADE__EXECUTION__RESTART_BUDGET": "-1"},
        "execution.restart_budget",
        "Input should be greater than or equal to 0",
    ),
    (
        {"FREQTRADE__EXECUTION__RESTART_WINDOW_S": "0"},
        "execution.restart_window_s",
        "Input should be greater than 0",
    ),
    (
        {"FREQTRADE__EXECUTION__RESTART_WINDOW_S": "86401"},
        "execution.restart_window_s",
        "Input should be less than or equal to 86400",
    ),
    (
        {"FREQTRADE__EXECUTION__DRY_RUN_WALLET": "{}"},
        "execution.dry_run_wallet",
        "an asset → amount mapping needs at least one asset",
    ),
    (
        {"FREQTRADE__DATABASE__URL": "mysql://x/y"},
        "database.url",
        "the URL scheme must be sqlite:/// or postgresql://",
    ),
    (
        {"FREQTRADE__DATABASE__URL": "postgresql://user:pw@host"},
        "database.url",
        "a PostgreSQL URL is postgresql://user[:password]@host[:port]/database",
    ),
    (
        {"FREQTRADE__DATABASE__URL": "sqlite://relative.db"},
        "database.url",
        "a SQLite URL is sqlite:///relative/path or sqlite:////absolute/path",
    ),
    (
        {"FREQTRADE__ALERTS__TELEGRAM_TOKEN": "123:abc"},
        "alerts.telegram_chat_id",
        "telegram needs both telegram_token and telegram_chat_id",
    ),
    (
        {"FREQTRADE__LOGGING__LEVEL": "LOUD"},
        "logging.level",
        "Input should be 'TRACE', 'DEBUG', 'INFO', 'SUCCESS', 'WARNING', 'ERROR' or 'CRITICAL'",
    ),
    ({"FREQTRADE__EXCHANGE__SECRT": "x"}, "exchange.secrt", "Extra inputs are not permitted"),
    (
        {"FREQTRADE__EXCHANGE__NAME": "binance", "FREQTRADE__EXCHANGE__REST_URL": "http://127.0.0.1:9000"},
        "exchange.ws_api_url",
        "rest_url is overridden, so the user data stream needs its URL too (or set stream.user_data = false)",
    ),
    (
        {
            "FREQTRADE__EXCHANGE__NAME": "binance",
            "FREQTRADE__EXCHANGE__REST_URL": "http://127.0.0.1:9000",
            "FREQTRADE__STREAM__USER_DATA": "false",
        },
        "exchange.stream_url",
        "rest_url is overridden, so market streams need their URL too (or set stream.market_data = false)",
    ),
    ({"FREQTRADE__EXCHNGE__KEY": "x"}, "exchnge.key", "not a known configuration key"),
    ({"FREQTRADE__RISK": "x"}, "risk", "not a known configuration key"),
]


@pytest.mark.parametrize(("env", "path", "message"), RULES)
def test_rule_exact_text(env: dict[str, str], path: str, message: str) -> None:
    problems = _problems(env)
    matching = [p for p in problems if p[0] == path]
    assert matching, problems
    assert matching[0][2] == message
    # The source names the variable that carried the value when the field itself came from the environment.
    if f"FREQTRADE__{path.replace('.', '__').upper()}" in {k.upper() for k in env}:
        assert matching[0][1].startswith("env ")


def test_problem_names_file_source_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[exchange]\nname = "kraken"\n[risk]\nmax_open_ordrs = 3\n', encoding="utf-8")
    _, problems = resolve_config(path, {})
    by_path = {p.path: p for p in problems}
    assert by_path["exchange.name"].source == f"file {path}"
    assert by_path["exchange.name"].message == "Input should be 'binance', 'binanceus' or 'sim'"
    assert by_path["exchange.name"].fix == "use one of the allowed values"
    assert by_path["risk.max_open_ordrs"].fix == (
        "remove it or fix the spelling; valid keys here: max_order_notional, max_open_orders_per_pair, kill_switch"
    )


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    assert _problems({}, tmp_path / "nope.toml") == [
        ("(file)", f"file {tmp_path / 'nope.toml'}", "the file does not exist")
    ]
    bad = tmp_path / "bad.toml"
    bad.write_text("[exchange\nname = 1\n", encoding="utf-8")
    [(path, _, message)] = _problems({}, bad)
    assert path == "(file)"
    assert message.startswith("not valid TOML: ")


def test_bad_secret_never_echoed() -> None:
    secret = "SENTINEL-secret-value-1234567890"
    problems = _problems({"FREQTRADE__EXCHANGE__SECRET": secret, "FREQTRADE__EXCHANGE__KEY": secret})
    assert problems
    assert all(secret not in " ".join(p) for p in problems)


def test_direct_model_validation_never_echoes_a_secret() -> None:
    from pydantic import ValidationError

    from engine.config import Config

    secret = "SENTINEL-direct-construction-secret"
    with pytest.raises(ValidationError) as err:
        Config.model_validate({"exchange": {"secret": secret}})
    assert secret not in str(err.value)
    assert secret[:20] not in str(err.value)
