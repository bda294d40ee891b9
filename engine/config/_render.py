"""Render a resolved configuration as TOML, with each value's source and secrets redacted."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from engine._db_urls import REDACTED, mask_url_password, mask_webhook_url
from engine.config._loader import LoadedConfig

__all__ = ["REDACTED", "mask_url_password", "render_toml"]

# URLs that may carry a secret, each with its mask: the database password; a webhook's secret path.
_SECRET_BEARING_URLS = {("database", "url"): mask_url_password, ("alerts", "webhook_url"): mask_webhook_url}


def _toml_value(value: Any, show_sensitive: bool) -> str:
    if isinstance(value, SecretStr):
        return json.dumps(value.get_secret_value() if show_sensitive else REDACTED)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        # format "f" never produces exponents such as 1E+1, which TOML does not accept.
        return format(value, "f")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Enum):
        return json.dumps(str(value.value))
    if isinstance(value, Path):
        return json.dumps(str(value))
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        inner = ", ".join(f"{json.dumps(str(k))} = {_toml_value(v, show_sensitive)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v, show_sensitive) for v in value) + "]"
    raise TypeError(f"cannot render {type(value).__name__} as TOML")


def render_toml(loaded: LoadedConfig, *, show_sensitive: bool = False) -> str:
    """Render the configuration as TOML, each value followed by a comment naming its source.

    Secrets (and a password inside the database URL, a webhook URL's path) appear as ``REDACTED`` unless
    `show_sensitive`.
    """
    lines = [
        "# Resolved configuration. After each value: where it came from (default, file, or env variable).",
    ]
    if not show_sensitive:
        lines.append(f"# Secrets are shown as {REDACTED}; use --show-sensitive to reveal them.")
    config = loaded.config
    for section_name in type(config).model_fields:
        section = getattr(config, section_name)
        assert isinstance(section, BaseModel)
        lines.extend(("", f"[{section_name}]"))
        for key in type(section).model_fields:
            value = getattr(section, key)
            source = loaded.source_of((section_name, key))
            if value is None:
                lines.append(f"# {key} is not set  # {source}")
                continue
            if (section_name, key) in _SECRET_BEARING_URLS and not show_sensitive:
                value = _SECRET_BEARING_URLS[(section_name, key)](value)
            lines.append(f"{key} = {_toml_value(value, show_sensitive)}  # {source}")
    return "\n".join(lines) + "\n"
