"""One place that configures loguru: format, level, optional rotating file, stdlib interception, redaction.

Lines are rendered by our own format function so that redaction applies to the finished text, tracebacks
included: loguru's own exception rendering (and ``diagnose``, which prints local variable values) would bypass a
message-level filter.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import re
import sys
import threading
import time
import traceback
from collections.abc import Iterable
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

import orjson
from loguru import logger

from engine.logs._redact import Redactor

if TYPE_CHECKING:
    from loguru import Record

__all__ = ["InterceptHandler", "add_secrets", "redact", "setup_logging"]

redact = Redactor()
_STDLIB_LEVELS = {
    "TRACE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "SUCCESS": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}
_STDLIB_NOISY = {
    "websockets": logging.INFO,
    "asyncio": logging.WARNING,
    "urllib3": logging.WARNING,
    "peewee": logging.INFO,
}
# Libraries whose INFO is internal chatter (UBWA: every payload, subscription, speed record and close, about half
# of a daemon's lines): their INFO and below arrive as DEBUG. The stream actor logs what an operator needs.
_STDLIB_DEMOTED = ("unicorn_binance_websocket_api",)


def add_secrets(secrets: Iterable[str]) -> None:
    """Register secret values that must never appear in any log output."""
    redact.add(secrets)


class InterceptHandler(logging.Handler):
    """Routes stdlib logging (pykka, UBWA, websockets, ccxt, peewee) into loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        chatter = record.levelno <= logging.INFO and record.name.startswith(_STDLIB_DEMOTED)
        # pykka logs each exception an actor hands back to its asker at INFO with its traceback; the asker gets it
        # and logs what it means (a database outage: one WARNING per retried lookup), so the traceback is DEBUG.
        returned = record.name == "pykka" and record.getMessage().startswith("Exception returned from ")
        if (
            chatter
            or returned
            or _is_ubwa_cpu_check(record)
            or (record.name == "asyncio" and _is_ubwa_leftover(record))
        ):
            level = "DEBUG"
        # Find the caller outside the logging module so loguru reports the real origin.
        frame: FrameType | None = inspect.currentframe()
        depth = 0
        while frame is not None and (depth == 0 or frame.f_code.co_filename == logging.__file__):
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).bind(stdlib=record.name).log(level, record.getMessage())


def _is_ubwa_cpu_check(record: logging.LogRecord) -> bool:
    """UBWA's own CPU watch warns "High CPU usage since 5 seconds" whenever the machine is busy (two lines every few
    seconds on a loaded host; 88 of a daemon's 143 lines): nothing about the streams, nothing to act on."""
    return record.name.startswith(_STDLIB_DEMOTED) and "_frequent_checks() - High CPU usage" in record.getMessage()


def _is_ubwa_leftover(record: logging.LogRecord) -> bool:
    """UBWA's listenKey keep-alive task outlives its stream's loop (binance.us): at every stream stop asyncio logs
    "Task was destroyed but it is pending!" at ERROR. A library artefact with nothing lost, not an error of ours."""
    message = record.getMessage()
    return message.startswith("Task was destroyed but it is pending!") and "BinanceWebSocketApiManager" in message


def _exception_text(record: Record) -> str:
    exc = record["exception"]
    if exc is None or exc.type is None:
        return ""
    return "\n" + "".join(traceback.format_exception(exc.type, exc.value, exc.traceback)).rstrip("\n")


def _context(record: Record) -> dict[str, Any]:
    return {k: v for k, v in record["extra"].items() if not k.startswith("_")}


# C0 control characters but tab, DEL, C1 and the Unicode line separators: a newline or carriage return in a
# message or a context value (a request path, an exchange's error text) would otherwise start a forged line, an
# escape sequence rewrite the terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_NAMES = {"\n": "\\n", "\r": "\\r"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _CONTROL_NAMES.get(char) or (f"\\u{code:04x}" if code > 0xFF else f"\\x{code:02x}")


def _escape(text: str) -> str:
    r"""`text` on one line: control characters (tab aside) written as ``\n``, ``\r``, ``\xNN``, ``\uNNNN``."""
    return _CONTROL.sub(_escaped, text)


def _human(record: Record) -> str:
    ctx = _context(record)
    # Masked before escaping (a secret holding a newline is found as written), escaped so each record is one
    # line; the traceback below keeps its lines.
    ctx_text = " ".join(f"{k}={_escape(redact(str(v)))}" for k, v in ctx.items())
    message = _escape(redact(record["message"]))
    line = (
        f"{record['time']:%Y-%m-%d %H:%M:%S.%f}"[:-3]
        + f" | {record['level'].name:<8} | {record['name']}:{record['line']} | {message}"
        + (f" | {ctx_text}" if ctx_text else "")
        + _exception_text(record)
    )
    record["extra"]["_line"] = redact(line)
    return "{extra[_line]}\n"


def _json(record: Record) -> str:
    # Each text is masked before it is JSON-escaped: a secret holding a quote, a backslash or a control
    # character is no longer found in the escaped line.
    payload = {
        "time": record["time"].isoformat(),
        "level": record["level"].name,
        "logger": record["name"],
        "line": record["line"],
        "message": redact(record["message"]),
        "context": {k: redact(str(v)) for k, v in _context(record).items()},
    }
    exc_text = _exception_text(record)
    if exc_text:
        payload["exception"] = redact(exc_text.lstrip("\n"))
    record["extra"]["_line"] = orjson.dumps(payload).decode()
    return "{extra[_line]}\n"


def _stderr(message: str) -> None:
    """The stderr of the moment, not the one at set-up: a replaced stream (a test's capture, a redirect) works."""
    stream = sys.stderr
    stream.write(message)
    stream.flush()


def _log_uncaught(
    exc_type: type[BaseException], exc: BaseException | None, tb: TracebackType | None, where: str
) -> bool:
    """Log an uncaught exception through loguru (so masked, like any line); False when that failed."""
    try:
        logger.opt(exception=(exc_type, exc, tb)).critical("uncaught {} in {}", exc_type.__name__, where)
    except Exception:  # noqa: BLE001 - the previous hook prints it then
        return False
    return True


def _sys_excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    # Ctrl-C at the top level stays the interpreter's own short report.
    if issubclass(exc_type, KeyboardInterrupt) or not _log_uncaught(exc_type, exc, tb, "the main thread"):
        _previous_hooks[0](exc_type, exc, tb)


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    # SystemExit ends a thread quietly, as the default hook does.
    where = f"thread {args.thread.name if args.thread is not None else '?'}"
    if issubclass(args.exc_type, SystemExit) or not _log_uncaught(
        args.exc_type, args.exc_value, args.exc_traceback, where
    ):
        _previous_hooks[1](args)


# The hooks that were there before ours (the interpreter's unless someone installed their own): they still handle
# what ours leave to them.
_previous_hooks: tuple[Any, Any] = (sys.excepthook, threading.excepthook)


def _install_excepthooks() -> None:
    """Uncaught exceptions (main thread, other threads) go through loguru, masked, instead of raw to stderr."""
    global _previous_hooks  # once per process; set-up may run again
    if sys.excepthook is not _sys_excepthook or threading.excepthook is not _thread_excepthook:
        _previous_hooks = (
            _previous_hooks[0] if sys.excepthook is _sys_excepthook else sys.excepthook,
            _previous_hooks[1] if threading.excepthook is _thread_excepthook else threading.excepthook,
        )
    sys.excepthook = _sys_excepthook
    threading.excepthook = _thread_excepthook


_SINK_ERROR_EVERY_S = 60.0  # float-ok: seconds between two reports of a failing log sink


class _SinkErrors:
    """Loguru's report of a sink that failed to write, made short, masked and rare.

    Loguru prints about 25 lines to stderr for every line a sink fails to write, with the raw record — message and
    exception unmasked, so a secret the formatter would have masked reached stderr — and a traceback. With the log
    file on a full disk that is every line. This reports the failure once a minute, in one masked line.
    """

    def __init__(self) -> None:
        self._last: dict[int, float] = {}  # float-ok: monotonic seconds
        self._lock = threading.Lock()

    def __call__(self, interceptor: Any, record: Any = None, *, exception: BaseException | None = None) -> None:
        if not sys.stderr:
            return
        error = exception if exception is not None else sys.exc_info()[1]
        handler = getattr(interceptor, "_handler_id", -1)
        now = time.monotonic()
        with self._lock:
            first = handler not in self._last
            if now - self._last.get(handler, -_SINK_ERROR_EVERY_S) < _SINK_ERROR_EVERY_S:
                return
            self._last[handler] = now
        with contextlib.suppress(OSError, ValueError):
            text = redact(f"{type(error).__name__}: {error}") if error is not None else "unknown error"
            sys.stderr.write(f"log sink #{handler} failed to write a line ({text}); reported once a minute\n")
            if first and error is not None:  # where it failed, once (a formatter's bug shows here), masked
                sys.stderr.write(redact("".join(traceback.format_exception(error))))
            sys.stderr.flush()


def _quiet_sink_errors() -> None:
    # Loguru has no setting for this report: its interceptor's method is replaced (loguru is pinned in pyproject).
    from loguru import _error_interceptor

    report = _SinkErrors()

    def _print(self: Any, record: Any = None, *, exception: BaseException | None = None) -> None:
        report(self, record, exception=exception)

    _error_interceptor.ErrorInterceptor.print = _print  # type: ignore[method-assign]


def setup_logging(
    *,
    level: str = "INFO",
    json_lines: bool = False,
    file: Path | None = None,
    rotation: str = "50 MB",
    retention: str = "14 days",
    secrets: Iterable[str] = (),
    sink: Any = None,
) -> None:
    """Configure loguru for the whole process (idempotent: replaces earlier handlers).

    Args:
        level: minimum level.
        json_lines: one JSON object per line instead of the human format.
        file: optional log file, rotated by `rotation` and kept for `retention`.
        secrets: values to mask everywhere.
        sink: where lines go instead of stderr (tests pass a list's append or a StringIO).
    """
    add_secrets(secrets)
    _quiet_sink_errors()
    fmt = _json if json_lines else _human
    logger.remove()
    logger.add(
        sink if sink is not None else _stderr,
        level=level,
        format=fmt,
        backtrace=False,
        diagnose=False,
        colorize=False,
    )
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        logger.add(
            str(file),
            level=level,
            format=fmt,
            rotation=rotation,
            retention=retention,
            backtrace=False,
            diagnose=False,
            colorize=False,
            enqueue=False,
            encoding="utf-8",
        )
    # Stdlib records below the configured level are never even created (ccxt logs every request at DEBUG).
    logging.basicConfig(
        handlers=[InterceptHandler()], level=_STDLIB_LEVELS.get(level.upper(), logging.DEBUG), force=True
    )
    for name, lvl in _STDLIB_NOISY.items():
        logging.getLogger(name).setLevel(lvl)
    _install_excepthooks()
    for name in _STDLIB_DEMOTED:  # demoted to DEBUG: not even created unless DEBUG is wanted
        logging.getLogger(name).setLevel(logging.DEBUG if level.upper() in ("TRACE", "DEBUG") else logging.WARNING)
