"""The ``[api]`` section: where the daemon's control API listens and the bearer token it accepts."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from engine.config._section import Section

__all__ = ["MIN_API_TOKEN_CHARS", "ApiConfig"]

# The shortest control API token the daemon accepts (`engine.service._token` refuses shorter ones at start).
MIN_API_TOKEN_CHARS = 16


class ApiConfig(Section):
    """The daemon's control API."""

    host: str = "127.0.0.1"
    port: int = Field(default=8787, ge=0, le=65535)
    token: SecretStr | None = None
    token_path: Path = Path("data/api-token")

    @field_validator("token", mode="before")
    @classmethod
    def _empty_token(cls, v: object) -> object:
        # An empty value (FREQTRADE__API__TOKEN= in a compose file) means "not set", as the daemon treats it:
        # the token then comes from token_path.
        return None if v == "" else v

    @field_validator("token")
    @classmethod
    def _token_length(cls, v: SecretStr | None) -> SecretStr | None:
        # The daemon refuses a shorter one at start; the message does not say how long it is (it is a secret).
        if v is not None and len(v.get_secret_value()) < MIN_API_TOKEN_CHARS:
            raise ValueError(
                f"the token must be at least {MIN_API_TOKEN_CHARS} characters; generate one with "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return v
