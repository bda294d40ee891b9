"""``check-config`` and ``show-config``, and the config plumbing shared by commands that need the database."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from engine.config import ConfigProblem, LoadedConfig, render_toml, resolve_config

__all__ = ["check_config", "load_for_command", "show_config", "with_database"]


def _path(args: argparse.Namespace) -> str | None:
    path: str | None = getattr(args, "path", None) or getattr(args, "config_opt", None)
    return path


def _print_problems(problems: list[ConfigProblem]) -> None:
    print(f"configuration invalid: {len(problems)} problem(s)", file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)


def load_for_command(args: argparse.Namespace, *, for_trading: bool = True) -> LoadedConfig | None:
    """Resolve the configuration for a command, set up logging from it, and log detected overrides.

    Returns None (after printing every problem) when the configuration is invalid. `for_trading` False: a command
    that only reads the database needs no exchange key or secret (`resolve_config`).
    """
    from loguru import logger

    from engine.logs import setup_logging

    loaded, problems = resolve_config(_path(args), for_trading=for_trading)
    if loaded is None:
        setup_logging(level="INFO", json_lines=bool(getattr(args, "log_json", False)))
        _print_problems(problems)
        return None
    log_cfg = loaded.config.logging
    level = getattr(args, "log_level", None) or log_cfg.level
    json_lines = bool(getattr(args, "log_json", False)) or log_cfg.json_lines
    try:
        setup_logging(
            level=level,
            json_lines=json_lines,
            file=log_cfg.file,
            rotation=log_cfg.rotation,
            retention=log_cfg.retention,
            secrets=loaded.secret_values,
        )
    except OSError as exc:
        # A log file that cannot be opened (its directory cannot be created, no permission) is a configuration
        # problem like any other, not a traceback; the validator only catches what it can see without writing.
        setup_logging(level=level, json_lines=json_lines, secrets=loaded.secret_values)
        source = str(loaded.source_of(("logging", "file")))
        reason = f"cannot open the log file {log_cfg.file}: {exc.strerror or exc}"
        fix = "point it at a file in a directory this user can create and write to"
        _print_problems([ConfigProblem("logging.file", source, reason, fix)])
        return None
    if loaded.env_names:
        # Names only: the values may be secrets.
        logger.info("environment overrides detected: {}", ", ".join(loaded.env_names))
    return loaded


def check_config(args: argparse.Namespace) -> int:
    """Validate the configuration offline; print every problem. Exit 0 when valid, 1 when not."""
    loaded = load_for_command(args)
    if loaded is None:
        return 1
    cfg = loaded.config
    if getattr(args, "online", False):
        return _check_online(loaded)
    mode = "dry run" if cfg.execution.dry_run else "LIVE"
    key_type = cfg.exchange.key_type
    print(
        f"configuration valid: exchange={cfg.exchange.name.value} mode={mode} "
        f"pairs={','.join(cfg.exchange.pair_whitelist)} key_type={key_type.value if key_type else 'none'} "
        f"database={cfg.database.url.split('://', 1)[0]}"
    )
    return 0


def _check_online(loaded: LoadedConfig) -> int:
    from engine.api._wiring import embedded_sim, endpoint_for
    from engine.cli._online import run_online_checks
    from engine.config import ExchangeName
    from engine.startup import CheckStatus, format_checks

    config = loaded.config
    if config.exchange.name is ExchangeName.SIM:
        with embedded_sim(config) as sim:
            results = run_online_checks(config, endpoint_for(config, sim))
    else:
        results = run_online_checks(config, endpoint_for(config))
    print(format_checks(results))
    failed = [r for r in results if r.status is CheckStatus.FAIL]
    print(f"online checks: {len(results) - len(failed)} passed or skipped, {len(failed)} failed")
    return 1 if failed else 0


def show_config(args: argparse.Namespace) -> int:
    """Print the resolved configuration as TOML with each value's source; secrets redacted by default."""
    loaded = load_for_command(args)
    if loaded is None:
        return 1
    sys.stdout.write(render_toml(loaded, show_sensitive=bool(args.show_sensitive)))
    return 0


def with_database(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Wrap a command so that it receives ``args.database_url`` resolved from ``--db-url`` or the config.

    ``--db-url`` is used as it is (the configuration is not loaded); the configured URL gets ``database.password``
    merged in.
    """

    def wrapped(args: argparse.Namespace) -> int:
        if getattr(args, "db_url", None):
            from engine.logs import setup_logging

            setup_logging(level=getattr(args, "log_level", None) or "WARNING")
            args.database_url = args.db_url
            return run(args)
        loaded = load_for_command(args, for_trading=False)
        if loaded is None:
            return 1
        args.database_url = loaded.config.database.connection_url()
        return run(args)

    return wrapped
