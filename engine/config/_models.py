"""Configuration models: frozen, strict about unknown keys, with exact decimals.

Every section is a frozen pydantic model with ``extra="forbid"`` so that a typo is an error rather than a
silent default. Defaults describe the zero-configuration setup: the embedded simulator, dry run, SQLite.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from engine._db_urls import mask_webhook_url
from engine.config._api import MIN_API_TOKEN_CHARS, ApiConfig
from engine.config._database import DatabaseConfig
from engine.config._keys import KeyMaterialError, KeyType, detect_key_type, normalise_secret
from engine.config._section import Section

__all__ = [
    "MIN_API_TOKEN_CHARS",
    "AlertsConfig",
    "ApiConfig",
    "Config",
    "DatabaseConfig",
    "ExchangeConfig",
    "ExchangeName",
    "ExecutionConfig",
    "LoggingConfig",
    "RiskConfig",
    "SimSection",
    "StreamConfig",
]

_PAIR_RE = re.compile(r"^[A-Z0-9]{2,20}/[A-Z0-9]{2,20}$")
_API_KEY_RE = re.compile(r"^[A-Za-z0-9]{64}$")

PositiveDecimal = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
Percent = Annotated[Decimal, Field(gt=0, le=100, allow_inf_nan=False)]


class ExchangeName(StrEnum):
    """Which exchange the engine talks to."""

    BINANCE = "binance"
    BINANCEUS = "binanceus"
    SIM = "sim"


def _check_url(value: str | None, schemes: tuple[str, ...], what: str) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"{what} must be an absolute URL with scheme {' or '.join(schemes)} and a host")
    return value.rstrip("/")


class ExchangeConfig(Section):
    """Exchange selection, credentials and endpoints."""

    name: ExchangeName = ExchangeName.SIM
    testnet: bool = False
    key: SecretStr | None = None
    secret: SecretStr | None = None
    rest_url: str | None = None
    ws_api_url: str | None = None
    stream_url: str | None = None
    pair_whitelist: tuple[str, ...] = ("BTC/USDT", "ETH/USDT")
    recv_window_ms: int = Field(default=5000, ge=1, le=60000)
    request_timeout_s: Decimal = Field(default=Decimal(10), gt=0, le=120)
    max_create_hold_s: int = Field(default=300, ge=60, le=86400)
    """A new order the exchange's order limits would hold longer than this (the daily order count reached, an IP
    ban) is not sent: refused at once, new orders halted until the hold ends (not traded hours later). At least 60:
    the engine's own pacing (a full weight minute, an order window) must never pass for such a hold."""
    allow_withdrawal_enabled_key: bool = False

    @field_validator("rest_url")
    @classmethod
    def _rest_url(cls, v: str | None) -> str | None:
        return _check_url(v, ("http", "https"), "rest_url")

    @field_validator("ws_api_url", "stream_url")
    @classmethod
    def _ws_url(cls, v: str | None) -> str | None:
        return _check_url(v, ("ws", "wss"), "the URL")

    @field_validator("pair_whitelist", mode="before")
    @classmethod
    def _pair_text(cls, v: object) -> object:
        # One string (`pair_whitelist = "BTC/USDT,ETH/USDT"` in the file) is a comma list, as in the environment.
        return [p.strip() for p in v.split(",") if p.strip()] if isinstance(v, str) else v

    @field_validator("pair_whitelist")
    @classmethod
    def _pairs(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("at least one pair is needed")
        bad = [p for p in v if not _PAIR_RE.match(p)]
        if bad:
            raise ValueError(f"pairs must be in BASE/QUOTE form in upper case, e.g. BTC/USDT; bad: {bad}")
        if len(set(v)) != len(v):
            raise ValueError("pairs are listed more than once")
        return v

    @field_validator("key")
    @classmethod
    def _key(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not _API_KEY_RE.match(v.get_secret_value()):
            raise ValueError("an API key is 64 letters and digits")
        return v

    @field_validator("secret")
    @classmethod
    def _secret(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return None
        try:
            detect_key_type(v.get_secret_value())
        except KeyMaterialError as exc:
            raise ValueError(str(exc)) from None
        return SecretStr(normalise_secret(v.get_secret_value()))

    @property
    def key_type(self) -> KeyType | None:
        """The signing scheme implied by the secret, or None without one."""
        return None if self.secret is None else detect_key_type(self.secret.get_secret_value())

    @model_validator(mode="after")
    def _cross(self) -> ExchangeConfig:
        if self.name is ExchangeName.BINANCEUS and self.testnet:
            raise ValueError("exchange.testnet: binanceus has no testnet: set testnet = false or use name = 'binance'")
        us_host = any(u and "binance.us" in u for u in (self.rest_url, self.ws_api_url, self.stream_url))
        com_host = any(
            u and ("binance.com" in u or "binance.vision" in u)
            for u in (self.rest_url, self.ws_api_url, self.stream_url)
        )
        if self.name is ExchangeName.BINANCE and us_host:
            raise ValueError("exchange.name: 'binance' but a URL points at binance.us: use name = 'binanceus'")
        if self.name is ExchangeName.BINANCEUS and com_host:
            raise ValueError("exchange.name: 'binanceus' but a URL points at binance.com: use name = 'binance'")
        return self


class ExecutionConfig(Section):
    """How requests are executed: dry run, limit timeout, fallback and guards."""

    dry_run: bool = True
    dry_run_wallet: PositiveDecimal | dict[str, Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=lambda: {"BTC": Decimal(1), "ETH": Decimal(10), "USDT": Decimal(50_000)}
    )
    min_wallet_btc: Decimal = Field(default=Decimal("0.0001"), ge=0, allow_inf_nan=False)
    limit_timeout_s: Decimal = Field(default=Decimal(30), gt=0, le=86400, allow_inf_nan=False)
    fallback: Literal["market", "ioc_limit", "none"] = "market"
    limit_price_side: Literal["maker", "taker"] = "maker"
    max_slippage_pct: Percent = Decimal("0.5")
    slippage_action: Literal["refuse", "cap"] = "cap"
    volatility_trigger_pct: Percent = Decimal(2)
    volatility_window_s: Decimal = Field(default=Decimal(60), gt=0, le=3600, allow_inf_nan=False)
    on_shutdown: Literal["cancel", "keep"] = "cancel"
    conflict_policy: Literal["refuse", "queue", "parallel"] = Field(
        default="refuse",
        description="a new request while another of its pair executes: refused (`conflict`), queued behind it, or "
        "(parallel) run at once beside those of its side, each with its own limit, timeout and fallback, while one of "
        "the other side is refused (`conflict`: the engine never trades against its own orders)",
    )
    fallback_after_external_cancel: bool = Field(
        default=False,
        description="a limit canceled outside the engine (or expired by self-trade prevention) still gets its "
        "fallback for the remainder; by default its request ends `canceled_externally` and nothing more is sent",
    )
    # "Not found" after a create with an unknown outcome proves nothing for this long: Binance's REST lags its
    # matching engine by 10-20 s, more under load, and a re-send of an order that did execute is a second order.
    unknown_outcome_grace_s: Decimal = Field(default=Decimal(60), gt=0, le=300, allow_inf_nan=False)
    restart_budget: int = Field(default=3, ge=0, le=1000)  # pair-actor restarts allowed within the window
    restart_window_s: Decimal = Field(default=Decimal(60), gt=0, le=86400, allow_inf_nan=False)

    @field_validator("dry_run_wallet", mode="before")
    @classmethod
    def _wallet_case(cls, v: object) -> object:
        # Environment names are case-insensitive, so FREQTRADE__EXECUTION__DRY_RUN_WALLET__BTC arrives as "btc".
        return {str(k).upper(): a for k, a in v.items()} if isinstance(v, dict) else v

    @field_validator("dry_run_wallet")
    @classmethod
    def _wallet(cls, v: Decimal | dict[str, Decimal]) -> Decimal | dict[str, Decimal]:
        if isinstance(v, dict):
            if not v:
                raise ValueError("an asset → amount mapping needs at least one asset")
            bad = [a for a in v if not re.fullmatch(r"[A-Z0-9]{2,20}", a)]
            if bad:
                raise ValueError(f"asset names are upper-case letters and digits; bad: {bad}")
        return v


class RiskConfig(Section):
    """Pre-trade risk limits of the default risk manager."""

    max_order_notional: PositiveDecimal = Decimal(10000)
    max_open_orders_per_pair: int = Field(default=4, ge=1, le=200)
    kill_switch: bool = False


class StreamConfig(Section):
    """User-data and market stream health and reconciliation cadence."""

    ping_interval_s: Decimal = Field(default=Decimal(5), gt=0, le=60, allow_inf_nan=False)
    ping_timeout_s: Decimal = Field(default=Decimal(10), gt=0, le=120, allow_inf_nan=False)
    watchdog_silence_s: Decimal = Field(default=Decimal(30), gt=0, le=3600, allow_inf_nan=False)
    reconcile_interval_s: Decimal = Field(default=Decimal(60), gt=0, le=3600, allow_inf_nan=False)
    reconcile_interval_unhealthy_s: Decimal = Field(default=Decimal(5), gt=0, le=3600, allow_inf_nan=False)
    max_reconnect_backoff_s: Decimal = Field(default=Decimal(30), gt=0, le=600, allow_inf_nan=False)
    report_handoff_pause_us: int = Field(
        default=20,
        ge=0,
        le=1000,
        description="after handing an execution report to its pair actor, the stream's thread pauses this long "
        "so the pair actor takes the interpreter first (lower fill latency; 0 turns it off)",
    )
    user_data: bool = True
    market_data: bool = True


class LoggingConfig(Section):
    """Log level, format and optional file."""

    level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    json_lines: bool = False
    file: Path | None = None
    rotation: str = "50 MB"
    retention: str = "14 days"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.upper() if isinstance(v, str) else v

    @field_validator("file")
    @classmethod
    def _file(cls, v: Path | None) -> Path | None:
        # What can be told without creating anything; setup_logging's own failures (a directory it cannot create,
        # no permission) are reported as a problem of this field by the CLI too.
        if v is None:
            return None
        try:
            # stat() raises on a parent it may not search (EACCES), unlike the missing-path errors it swallows.
            is_dir = v.is_dir()
            ancestor = next((p for p in v.parents if p.exists()), None)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ValueError(
                f"cannot check {v}: {reason}; make its directory accessible or choose another file"
            ) from None
        if is_dir:
            raise ValueError(f"{v} is a directory; name a file in it, such as {v / 'engine.log'}")
        if ancestor is not None and not ancestor.is_dir():
            raise ValueError(f"{ancestor} is not a directory, so {v} cannot be created")
        return v

    @field_validator("rotation")
    @classmethod
    def _rotation(cls, v: str) -> str:
        _loguru_parse("_make_rotation_function", v, "a size ('50 MB'), an interval ('1 week') or a time ('00:00')")
        return v

    @field_validator("retention")
    @classmethod
    def _retention(cls, v: str) -> str:
        _loguru_parse("_make_retention_function", v, "a duration such as '14 days' or '1 week'")
        return v


def _loguru_parse(maker: str, value: str, expected: str) -> None:
    # What `logger.add(file, rotation=…, retention=…)` does with the string in `engine.logs.setup_logging`, but
    # without adding a sink: a value loguru refuses is then a configuration problem, not a crash at start.
    from loguru._file_sink import FileSink

    parse = getattr(FileSink, maker, None)
    if parse is None:  # a loguru without it: leave the check to setup_logging
        return
    try:
        parse(value)
    except (ValueError, TypeError):
        raise ValueError(f"not a value loguru understands; expected {expected}") from None


class AlertsConfig(Section):
    """Where critical events are sent besides the log."""

    webhook_url: str | None = Field(default=None, repr=False)  # Discord and Slack put a secret in the path
    webhook_token: SecretStr | None = None
    telegram_token: SecretStr | None = None
    telegram_chat_id: str | None = None
    telegram_api_url: str = "https://api.telegram.org"
    min_interval_s: Decimal = Field(default=Decimal(60), ge=0, le=86400, allow_inf_nan=False)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield "webhook_url", None if self.webhook_url is None else mask_webhook_url(self.webhook_url)
        yield from super().__repr_args__()

    @field_validator("webhook_url", "telegram_api_url")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        return _check_url(v, ("http", "https"), "the URL")

    @model_validator(mode="after")
    def _telegram(self) -> AlertsConfig:
        if (self.telegram_token is None) != (self.telegram_chat_id is None):
            raise ValueError("alerts.telegram_chat_id: telegram needs both telegram_token and telegram_chat_id")
        return self


class SimSection(Section):
    """The embedded simulator used when ``exchange.name = "sim"``."""

    seed: int = Field(default=42, ge=0)
    market_tick_interval_s: Decimal = Field(default=Decimal("0.5"), ge=0, le=60, allow_inf_nan=False)
    volatility_pct: Decimal = Field(default=Decimal("0.05"), ge=0, le=50, allow_inf_nan=False)


class Config(Section):
    """The whole resolved configuration."""

    exchange: ExchangeConfig = ExchangeConfig()
    execution: ExecutionConfig = ExecutionConfig()
    risk: RiskConfig = RiskConfig()
    database: DatabaseConfig = DatabaseConfig()
    stream: StreamConfig = StreamConfig()
    logging: LoggingConfig = LoggingConfig()
    alerts: AlertsConfig = AlertsConfig()
    api: ApiConfig = ApiConfig()
    sim: SimSection = SimSection()

    @model_validator(mode="after")
    def _streams_follow_rest(self) -> Config:
        ex, st = self.exchange, self.stream
        if ex.rest_url is not None and ex.name is not ExchangeName.SIM:
            # Otherwise REST would go to the override while the streams went to the production venue.
            if st.user_data and ex.name is ExchangeName.BINANCE and ex.ws_api_url is None:
                raise ValueError(
                    "exchange.ws_api_url: rest_url is overridden, so the user data stream needs its URL too "
                    "(or set stream.user_data = false)"
                )
            if st.market_data and ex.stream_url is None:
                raise ValueError(
                    "exchange.stream_url: rest_url is overridden, so market streams need their URL too "
                    "(or set stream.market_data = false)"
                )
        return self

    @model_validator(mode="after")
    def _live_needs_keys(self, info: ValidationInfo) -> Config:
        # Only what trades needs them: commands that read the database or ask the daemon validate with
        # context {"for_trading": False} (`resolve_config(for_trading=False)`). Without a context, always.
        if isinstance(info.context, dict) and info.context.get("for_trading") is False:
            return self
        ex = self.exchange
        if not self.execution.dry_run and ex.name is not ExchangeName.SIM and (ex.key is None or ex.secret is None):
            missing = "exchange.key" if ex.key is None else "exchange.secret"
            raise ValueError(
                f"{missing}: live mode (execution.dry_run = false) on a real exchange needs exchange.key and "
                "exchange.secret: set them in the file (key, secret_file = a path) or with FREQTRADE__EXCHANGE__KEY "
                "and FREQTRADE__EXCHANGE__SECRET_FILE (or FREQTRADE__EXCHANGE__SECRET); or keep dry_run = true"
            )
        return self

    def secret_values(self) -> list[str]:
        """Every secret value in this configuration, for the log redaction filter."""
        values = [
            s.get_secret_value()
            for s in (
                self.exchange.key,
                self.exchange.secret,
                self.database.password,
                self.alerts.webhook_token,
                self.alerts.telegram_token,
                self.api.token,
            )
            if s is not None
        ]
        values += self.database.url_secrets()
        values += _webhook_url_secrets(self.alerts.webhook_url)
        return [v for v in values if v]


def _webhook_url_secrets(url: str | None) -> list[str]:
    """What show-config hides of a webhook URL (`mask_webhook_url`): all of it, its path with query and fragment
    (Discord and Slack put the secret there) and a user-part; nothing for a bare ``scheme://host``."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    tail = url[len(f"{parts.scheme}://{parts.netloc}") :] if url.lower().startswith(f"{parts.scheme}://") else ""
    if not (parts.path.strip("/") or parts.query or parts.fragment):
        return [parts.netloc.rpartition("@")[0]]
    return [url, tail if tail.strip("/") else "", parts.netloc.rpartition("@")[0]]
