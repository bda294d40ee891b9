"""Logging: loguru configured once, stdlib routed into it, secrets masked in every line."""

from engine.logs._redact import MASK, Redactor
from engine.logs._setup import InterceptHandler, add_secrets, redact, setup_logging

__all__ = ["MASK", "InterceptHandler", "Redactor", "add_secrets", "redact", "setup_logging"]
