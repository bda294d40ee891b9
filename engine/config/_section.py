"""The base of every configuration section: frozen, strict about unknown keys, never echoing input."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Section"]


class Section(BaseModel):
    """A configuration section: frozen, ``extra="forbid"`` (a typo is an error), defaults validated too."""

    # hide_input_in_errors: a ValidationError must never echo a value, which may be a secret.
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True, hide_input_in_errors=True)
