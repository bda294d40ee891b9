"""Start-up checks (also `python run.py check-config --online`)."""

from engine.startup._checks import CheckResult, CheckStatus, ExchangeFacts, evaluate_checks, format_checks

__all__ = ["CheckResult", "CheckStatus", "ExchangeFacts", "evaluate_checks", "format_checks"]
