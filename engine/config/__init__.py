"""Configuration: frozen pydantic models resolved from defaults < TOML file < ``FREQTRADE__*`` environment."""

from engine.config._keys import KeyMaterialError, KeyType, detect_key_type, normalise_secret
from engine.config._loader import (
    ENV_PREFIX,
    SECRET_FIELDS,
    ConfigError,
    ConfigProblem,
    LoadedConfig,
    Source,
    load_config,
    resolve_config,
)
from engine.config._models import (
    AlertsConfig,
    ApiConfig,
    Config,
    DatabaseConfig,
    ExchangeConfig,
    ExchangeName,
    ExecutionConfig,
    LoggingConfig,
    RiskConfig,
    SimSection,
    StreamConfig,
)
from engine.config._render import render_toml

__all__ = [
    "ENV_PREFIX",
    "SECRET_FIELDS",
    "AlertsConfig",
    "ApiConfig",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "DatabaseConfig",
    "ExchangeConfig",
    "ExchangeName",
    "ExecutionConfig",
    "KeyMaterialError",
    "KeyType",
    "LoadedConfig",
    "LoggingConfig",
    "RiskConfig",
    "SimSection",
    "Source",
    "StreamConfig",
    "detect_key_type",
    "load_config",
    "normalise_secret",
    "render_toml",
    "resolve_config",
]
