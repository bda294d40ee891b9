"""Standalone simulator: ``python run.py sim [--port P] [--seed S] [--symbols …]`` (no ccxt import)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from sim._config import RateLimitConfig, SimConfig
from sim._server import Simulator

__all__ = ["add_arguments", "main", "run"]


def _symbols(value: str) -> list[str]:
    out = [s.strip().upper() for s in value.replace(",", " ").split() if s.strip()]
    if not out:
        raise argparse.ArgumentTypeError("at least one symbol is required")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options to ``parser``."""
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default: an ephemeral port)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the price process and faults")
    parser.add_argument(
        "--symbols",
        type=_symbols,
        default=["BTCUSDT", "ETHUSDT", "ETHBTC"],
        help="comma-separated exchange symbols (default BTCUSDT,ETHUSDT,ETHBTC)",
    )
    parser.add_argument(
        "--tick-interval",
        type=float,  # float-ok: seconds
        default=1.0,
        help="seconds between market ticks of the background price process (0 = frozen market)",
    )
    parser.add_argument("--mode", choices=["binance", "binanceus"], default="binance", help="exchange flavour")
    parser.add_argument(
        "--show-secrets",
        action="store_true",
        help="print the simulator accounts' secrets (simulator-only credentials; hidden by default)",
    )
    parser.add_argument(
        "--no-rate-limits", action="store_true", help="disable request-weight and order-count limits (benchmarks)"
    )


def run(args: argparse.Namespace) -> int:
    """Start the simulator, print where it listens and which keys to use, and serve until SIGINT/SIGTERM."""
    try:
        config = SimConfig(
            seed=args.seed,
            symbols=args.symbols,
            market_tick_interval_s=args.tick_interval,
            exchange_mode=args.mode,
            rate_limits=RateLimitConfig(enabled=not args.no_rate_limits),
        )
        sim = Simulator(config, host=args.host, port=args.port)
        sim.start()
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"error: cannot start the simulator: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        urls = sim.urls
        print(f"Binance Spot simulator (seed {config.seed}, symbols {', '.join(config.symbols)})")
        print(f"  REST      {urls.rest}")
        print(f"  WS API    {urls.ws_api}")
        print(f"  streams   {urls.stream}")
        print(f"  control   {urls.rest}/_sim/<operation>")
        for acc in sim.accounts:
            print(f"  account {acc.name}: api key {acc.api_key}")
            if args.show_secrets:
                print(f"    secret (simulator-only credential) {acc.secret}")
            else:
                print("    secret: the default simulator secret, sim.AccountSpec().secret (--show-secrets prints it)")
        print("Press Ctrl+C to stop.", flush=True)
        stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sim.stop()
    print("simulator stopped", flush=True)
    return 0


def main() -> int:
    """``python -m sim.cli``."""
    parser = argparse.ArgumentParser(prog="sim", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
