"""Command-line interface: ``python run.py <command>``.

Light commands (``--help``, ``check-config``, ``show-config``) must stay fast, so nothing heavy is imported at
module level: each command imports what it needs when it runs, and commands that live in other packages
(``sim``, ``orders``, ``trades``) are only imported when they are the command being run.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["add_log_arguments", "build_parser", "main"]


@dataclass(frozen=True)
class _Lazy:
    module: str
    add_arguments: str
    run: str
    help: str
    needs_database: bool = False


_LAZY: dict[str, _Lazy] = {
    "sim": _Lazy("sim.cli", "add_arguments", "run", "run the Binance Spot simulator standalone on loopback"),
    "orders": _Lazy("db.cli", "add_orders_arguments", "run_orders", "list stored orders", needs_database=True),
    "trades": _Lazy("db.cli", "add_trades_arguments", "run_trades", "list stored trades", needs_database=True),
    "daemon": _Lazy("engine.service._daemon", "add_arguments", "run", "run the engine with its control API"),
    "order": _Lazy("engine.service._commands", "add_order_arguments", "run_order", "send an order to the daemon"),
    "cancel": _Lazy("engine.service._commands", "add_cancel_arguments", "run_cancel", "cancel a request's orders"),
    "status": _Lazy("engine.service._commands", "add_status_arguments", "run_status", "daemon health, open orders"),
    "watch": _Lazy("engine.service._commands", "add_watch_arguments", "run_watch", "print order events live"),
    "balances": _Lazy(
        "engine.service._commands", "add_balances_arguments", "run_balances", "account balances from the daemon"
    ),
}


def add_log_arguments(parser: argparse.ArgumentParser) -> None:
    """``--log-json`` and ``--log-level``, shared by every command that sets up logging from the configuration.

    The level is upper-cased and checked here, so ``debug`` works and a bad value is a usage error (exit 2)
    rather than loguru's ValueError once the command runs.
    """
    parser.add_argument("--log-json", action="store_true", help="log JSON lines instead of the human format")
    parser.add_argument(
        "--log-level",
        default=None,
        type=str.upper,
        choices=["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"],
        help="override logging.level",
    )


def _add_config_path(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", default=None, help="TOML configuration file (optional)")
    parser.add_argument("--config", dest="config_opt", metavar="PATH", default=None, help="same as PATH")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Build the argument parser; only the selected lazily-loaded command's module is imported."""
    parser = argparse.ArgumentParser(
        prog="run.py",
        description="Binance spot execution engine. Environment overrides: FREQTRADE__SECTION__KEY.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    check = sub.add_parser("check-config", help="validate the configuration offline; exit 0 valid, 1 invalid")
    _add_config_path(check)
    check.add_argument("--online", action="store_true", help="also connect and run the start-up checks")
    add_log_arguments(check)
    check.set_defaults(func=_deferred("check_config"))

    show = sub.add_parser("show-config", help="print the resolved configuration as TOML with value sources")
    _add_config_path(show)
    show.add_argument("--show-sensitive", action="store_true", help="print secrets instead of REDACTED")
    add_log_arguments(show)
    show.set_defaults(func=_deferred("show_config"))

    for name, lazy in _LAZY.items():
        cmd = sub.add_parser(name, help=lazy.help)
        if name == command:
            module = importlib.import_module(lazy.module)
            getattr(module, lazy.add_arguments)(cmd)
            run: Callable[[argparse.Namespace], int] = getattr(module, lazy.run)
            if lazy.needs_database:
                _add_config_path_opt(cmd)
                cmd.set_defaults(func=_deferred("with_database", run))
            else:
                cmd.set_defaults(func=run)
    return parser


def _deferred(name: str, *wrap_args: object) -> Callable[[argparse.Namespace], int]:
    """A command function resolved from ``_config_cmds`` only when called (pydantic costs ~0.3 s to import)."""

    def call(args: argparse.Namespace) -> int:
        from engine.cli import _config_cmds

        target = getattr(_config_cmds, name)
        func: Callable[[argparse.Namespace], int] = target(*wrap_args) if wrap_args else target
        return func(args)

    return call


def _add_config_path_opt(parser: argparse.ArgumentParser) -> None:
    known = {a.dest for a in parser._actions}
    if "config_opt" not in known:
        parser.add_argument("--config", dest="config_opt", metavar="PATH", default=None, help="TOML configuration")
    if "db_url" not in known:
        parser.add_argument("--db-url", dest="db_url", default=None, help="database URL (overrides the config)")


def _command_of(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


_LIST_OPTIONS: dict[str, frozenset[str]] = {"orders": frozenset({"--status"}), "trades": frozenset({"--status"})}
"""Repeatable options that also take a comma list, as the control API's query strings do (``?status=a,b``)."""


def _split_lists(command: str | None, argv: list[str]) -> list[str]:
    """``--status a,b`` (or ``--status=a,b``) as ``--status a --status b``: each value is still checked."""
    options = _LIST_OPTIONS.get(command or "", frozenset())
    out: list[str] = []
    rest = iter(argv)
    for arg in rest:
        if arg == "--":  # what follows is positional, as given
            out.extend([arg, *rest])
            break
        name, eq, value = arg.partition("=")
        if name not in options:
            out.append(arg)
            continue
        if not eq:
            following = next(rest, None)
            if following is None:
                out.append(arg)  # argparse says the value is missing
                continue
            value = following
        parts = [v.strip() for v in value.split(",") if v.strip()]
        out.extend(item for v in parts or [value] for item in (name, v))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return the process exit code (2 on usage errors)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    args_list = _split_lists(_command_of(args_list), args_list)
    parser = build_parser(_command_of(args_list))
    args = parser.parse_args(args_list)
    func: Callable[[argparse.Namespace], int] = args.func
    return int(func(args))
