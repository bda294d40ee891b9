"""`watch` runs until Ctrl-C: a stream the daemon ends (a graceful stop) or loses (kill -9) is an error, said on
stderr with the reason when the daemon gave one, and exit 5 — never a silent exit 0."""

from __future__ import annotations

import argparse
import asyncio
import http.server
import io
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiohttp.test_utils import TestClient, TestServer

from engine.service._app import ApiState, EventHub, build_app
from engine.service._commands import EXIT_UNREACHABLE, run_watch

TOKEN = "t0ken-for-the-watch-test"
_EVENT = b'event: accepted\ndata: {"kind": "accepted", "pair": "BTC/USDT", "time": "2024-01-01T00:00:00+00:00"}\n\n'


def _serve(body: bytes) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.write(b": subscribed\n\n" + _EVENT + body)
            self.wfile.flush()
            self.close_connection = True  # the daemon going away: the socket closes after what was sent

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


def _watch(url: str, token_file: Path) -> tuple[int, str]:
    args = argparse.Namespace(config_opt=None, url=url, token_file=token_file, json=False, pair=None, count=None)
    out = io.StringIO()
    code = run_watch(args, out)
    return code, out.getvalue()


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b": closed: the daemon is shutting down\n\n", "the daemon is shutting down"),
        (b"", "the connection ended without a word from the daemon"),
    ],
    ids=["graceful-stop", "killed"],
)
def test_a_stream_that_ends_is_exit_5_with_the_reason(
    body: bytes, why: str, token_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for url in _serve(body):
        code, out = _watch(url, token_file)
    err = capsys.readouterr().err
    assert code == EXIT_UNREACHABLE, err
    assert "accepted" in out  # the events before the end were printed
    assert f"error: the daemon's event stream closed: {why}" in err, err


def test_count_reached_is_still_exit_0(token_file: Path) -> None:
    for url in _serve(b""):
        args = argparse.Namespace(config_opt=None, url=url, token_file=token_file, json=True, pair=None, count=1)
        assert run_watch(args, io.StringIO()) == 0


async def _stream_until_stopped() -> str:
    engine = SimpleNamespace(config=SimpleNamespace(risk=SimpleNamespace(kill_switch=False)))
    hub = EventHub()
    state = ApiState(engine, TOKEN, hub)  # type: ignore[arg-type]
    async with TestClient(TestServer(build_app(state), host="127.0.0.1", port=0)) as client:
        response = await client.get("/events", headers={"Authorization": f"Bearer {TOKEN}"})
        assert await response.content.readline() == b": subscribed\n"
        state.draining = True  # what the daemon does on SIGTERM before it stops the API
        hub.close()
        return (await response.content.read()).decode()


def test_the_daemon_says_why_it_ends_a_stream() -> None:
    assert ": closed: the daemon is shutting down" in asyncio.run(_stream_until_stopped())
