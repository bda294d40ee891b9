"""The base of every configuration section: frozen, strict about unknown keys, never echoing input."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Section", "bool_fields"]


class Section(BaseModel):
    """A configuration section: frozen, ``extra="forbid"`` (a typo is an error), defaults validated too."""

    # hide_input_in_errors: a ValidationError must never echo a value, which may be a secret.
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True, hide_input_in_errors=True)


def bool_fields(root: type[BaseModel]) -> frozenset[tuple[str, str]]:
    """The `(section, key)` of every true/false setting of `root`'s sections. A file states them as TOML booleans:
    pydantic would read `dry_run = "off"`, `"yes"` or `0` as a boolean, and a quoted word is too easy to misread
    for a setting that decides between paper and live trading."""
    out: set[tuple[str, str]] = set()
    for section, field in root.model_fields.items():
        model = field.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            out |= {(section, key) for key, sub in model.model_fields.items() if sub.annotation is bool}
    return frozenset(out)
