"""The ``FREQTRADE__SECTION__KEY`` environment exploded into nested sections by pydantic-settings (not validated)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from engine.config._api import ApiConfig
from engine.config._models import (
    AlertsConfig,
    DatabaseConfig,
    ExchangeConfig,
    ExecutionConfig,
    LoggingConfig,
    RiskConfig,
    SimSection,
    StreamConfig,
)

__all__ = ["ENV_PREFIX", "MappingEnvSource"]

ENV_PREFIX = "FREQTRADE__"


class _EnvShape(BaseSettings):
    """The shape pydantic-settings explodes ``FREQTRADE__A__B`` variables into (validation happens later)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", case_sensitive=False, extra="ignore"
    )
    exchange: ExchangeConfig | None = None
    execution: ExecutionConfig | None = None
    risk: RiskConfig | None = None
    database: DatabaseConfig | None = None
    stream: StreamConfig | None = None
    logging: LoggingConfig | None = None
    alerts: AlertsConfig | None = None
    api: ApiConfig | None = None
    sim: SimSection | None = None


class MappingEnvSource(EnvSettingsSource):
    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(_EnvShape)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k.lower(): v for k, v in self._environ.items()}

    def decode_complex_value(self, field_name: str, field: Any, value: Any) -> Any:
        # JSON numbers become Decimals, never binary floats: a wallet of 0.12345678901234567891 BTC stays exact.
        return json.loads(value, parse_float=Decimal) if isinstance(value, str | bytes) else value
