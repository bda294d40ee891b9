"""Reading a secret from the file its `_FILE` setting names (`FREQTRADE__EXCHANGE__SECRET_FILE`, `secret_file`)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["SecretFileError", "read_secret_file"]


class SecretFileError(ValueError):
    """The secret file cannot be used; the message says why (never what the file holds)."""


def read_secret_file(path_text: str) -> str:
    """The secret in the file at `path_text`, trailing line breaks dropped.

    An empty file, or one of whitespace only (a truncated write, a ``touch``), is refused for every secret alike:
    taken as a value, it unset an ``api.token`` set in the TOML (the daemon then made up a token of its own) and
    passed for a Telegram token that could deliver nothing.

    Raises:
        SecretFileError: the file cannot be read, is not UTF-8 text, or holds no secret.
    """
    try:
        text = Path(path_text).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise SecretFileError(f"cannot read the secret file: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise SecretFileError("cannot read the secret file: it is not UTF-8 text") from None
    if not text.strip():
        raise SecretFileError("the secret file is empty (or only whitespace): got an empty value")
    return text.rstrip("\r\n")
