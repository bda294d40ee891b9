"""Simulator throughput: signed order round trips over aiohttp keep-alive, and user-data events to one
raw websockets client.

Run: ``python bench/sim_throughput.py [--orders N] [--concurrency C] [--events N]``. The simulator runs in
a separate process (``python -m sim.cli``) so the client does not share its GIL. Targets from the issue:
≥ 2,000 order round trips/s and ≥ 20,000 user-data events/s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import orjson
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[1]
_SIM_CMD = [sys.executable, "-m", "sim.cli"]


def start_sim() -> tuple[subprocess.Popen[str], str, str, str]:
    """Start ``sim.cli`` in a subprocess; return (process, REST URL, api key, secret)."""
    proc = subprocess.Popen(
        [*_SIM_CMD, "--tick-interval", "0", "--no-rate-limits", "--show-secrets", "--symbols", "BTCUSDT"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    out: list[str] = []
    while not (line := proc.stdout.readline()).startswith("Press Ctrl+C"):
        if not line:
            raise RuntimeError("simulator exited:\n" + "".join(out))
        out.append(line)
    text = "".join(out)
    rest = re.search(r"REST\s+(\S+)", text)
    key = re.search(r"api key (\S+)", text)
    secret = re.search(r"secret \(simulator-only credential\) (\S+)", text)
    if not (rest and key and secret):
        raise RuntimeError("cannot parse simulator banner:\n" + text)
    return proc, rest.group(1), key.group(1), secret.group(1)


async def bench_orders(rest: str, key: str, secret: str, n: int, concurrency: int) -> float:
    """Signed LIMIT IOC orders (accepted, then expired unfilled); returns round trips per second."""
    secret_b = secret.encode()
    headers = {"X-MBX-APIKEY": key, "Content-Type": "application/x-www-form-urlencoded"}
    url = rest + "/api/v3/order"
    counter = iter(range(n))
    errors = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        for i in counter:
            query = (
                f"timestamp={int(time.time() * 1000)}&symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=IOC"
                f"&quantity=0.001&price=60000&newClientOrderId=b{i}&newOrderRespType=RESULT&recvWindow=10000"
            )
            sig = hmac.new(secret_b, query.encode(), hashlib.sha256).hexdigest()
            async with session.post(url, data=f"{query}&signature={sig}", headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    errors += 1

    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{errors} order requests failed")
    return n / elapsed


async def bench_events(rest: str, key: str, secret: str, n_credits: int) -> float:
    """``credit`` × n (2 events each) delivered to one raw websockets client; returns events per second."""
    ws_url = rest.replace("http://", "ws://") + "/ws-api/v3"
    async with connect(ws_url, max_queue=None) as ws:
        ts = int(time.time() * 1000)
        payload = f"apiKey={key}&timestamp={ts}"
        sig = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        req_id = str(uuid.uuid4())
        await ws.send(
            orjson.dumps(
                {
                    "id": req_id,
                    "method": "userDataStream.subscribe.signature",
                    "params": {"apiKey": key, "timestamp": ts, "signature": sig},
                }
            ).decode()
        )
        ack = orjson.loads(await ws.recv())
        if ack.get("status") != 200:
            raise RuntimeError(f"subscribe failed: {ack}")
        expected = 2 * n_credits
        async with aiohttp.ClientSession() as session:
            t0 = time.perf_counter()
            async with session.post(
                rest + "/_sim/credit", json={"asset": "USDT", "amount": "1", "repeat": n_credits}
            ) as resp:
                await resp.read()
            got = 0
            while got < expected:
                await ws.recv()
                got += 1
            elapsed = time.perf_counter() - t0
    return expected / elapsed


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` (Linux /proc), or None where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    """Run both benchmarks against a fresh simulator process and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--events", type=int, default=50000, help="credits to send (2 events each)")
    args = parser.parse_args()
    proc, rest, key, secret = start_sim()
    try:
        asyncio.run(bench_orders(rest, key, secret, 500, args.concurrency))  # warm-up
        cpu0 = process_cpu_s(proc.pid)
        orders = asyncio.run(bench_orders(rest, key, secret, args.orders, args.concurrency))
        cpu1 = process_cpu_s(proc.pid)
        events = asyncio.run(bench_events(rest, key, secret, args.events))
    finally:
        proc.terminate()
        proc.wait(10)
    print(
        f"signed order round trips: {orders:,.0f}/s ({args.orders} orders, {args.concurrency} keep-alive "
        f"connections; target ≥ 2,000/s) {'OK' if orders >= 2000 else 'BELOW TARGET'}"
    )
    if cpu0 is not None and cpu1 is not None and cpu1 > cpu0:
        per_order = (cpu1 - cpu0) / args.orders
        print(
            f"simulator CPU per order round trip: {per_order * 1e6:,.0f} µs "
            f"(≈ {1 / per_order:,.0f} orders/s per fully available core; the client needs its own CPU)"
        )
    print(
        f"user-data events to one websockets client: {events:,.0f}/s ({2 * args.events} events; "
        f"target ≥ 20,000/s) {'OK' if events >= 20000 else 'BELOW TARGET'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
