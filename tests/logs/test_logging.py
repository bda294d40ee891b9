"""Logging: one loguru setup, stdlib routed in, every secret masked — messages, context and tracebacks."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from urllib.parse import quote

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from loguru import logger

from engine.logs import MASK, redact, setup_logging
from tests.config import keys

SENTINEL = "SENTINEL+secret/value=42"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    redact.clear()
    setup_logging(level="DEBUG", sink=buf, secrets=[SENTINEL, keys.rsa_pem()])
    yield buf
    redact.clear()
    logger.remove()


def test_message_context_and_url_encoded_forms_masked(captured: io.StringIO) -> None:
    logger.bind(pair="BTC/USDT", client_order_id="bx-1", auth=SENTINEL).info(
        "sent {} and {}", SENTINEL, quote(SENTINEL, safe="")
    )
    text = captured.getvalue()
    assert SENTINEL not in text and quote(SENTINEL, safe="") not in text
    assert text.count(MASK) == 3
    assert "pair=BTC/USDT" in text and "client_order_id=bx-1" in text


def test_traceback_masked(captured: io.StringIO) -> None:
    def fail(secret: str) -> None:
        raise RuntimeError(f"request failed with key {secret}")

    try:
        fail(SENTINEL)
    except RuntimeError:
        logger.exception("order failed")
    text = captured.getvalue()
    assert "RuntimeError: request failed with key ***" in text
    assert SENTINEL not in text


def test_pem_lines_masked(captured: io.StringIO) -> None:
    pem = keys.rsa_pem()
    body = [ln for ln in pem.splitlines() if not ln.startswith("-----")]
    logger.warning("config dump: {}", pem)
    logger.warning("one line: {}", body[3])
    logger.warning("escaped: {}", pem.replace("\n", "\\n"))
    text = captured.getvalue()
    assert not any(line in text for line in body)


def test_stdlib_routed_and_masked(captured: io.StringIO) -> None:
    logging.getLogger("pykka").warning("actor saw %s", SENTINEL)
    logging.getLogger("unicorn_binance_websocket_api").error("stream error")
    text = captured.getvalue()
    assert "actor saw ***" in text and "stdlib=pykka" in text
    assert "stream error" in text


def test_json_lines() -> None:
    buf = io.StringIO()
    redact.clear()
    setup_logging(sink=buf, json_lines=True, secrets=[SENTINEL])
    try:
        raise ValueError(SENTINEL)
    except ValueError:
        logger.bind(pair="ETH/USDT").exception("bad {}", SENTINEL)
    record = orjson.loads(buf.getvalue().splitlines()[0])
    assert record["level"] == "ERROR"
    assert record["message"] == "bad ***"
    assert record["context"] == {"pair": "ETH/USDT"}
    assert record["exception"].endswith("ValueError: ***")
    redact.clear()
    logger.remove()


@given(secret=st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=8, max_size=40))
def test_arbitrary_secrets_never_logged(secret: str) -> None:
    buf = io.StringIO()
    redact.clear()
    setup_logging(sink=buf, secrets=[secret])
    logger.bind(ctx=secret).info("value={} encoded={}", secret, quote(secret, safe=""))
    try:
        raise KeyError(secret)
    except KeyError:
        logger.exception("failed")
    assert secret not in buf.getvalue()
    assert quote(secret, safe="") not in buf.getvalue()
    redact.clear()
    logger.remove()


def test_stdlib_records_below_the_level_are_not_created() -> None:
    setup_logging(level="WARNING", sink=io.StringIO())
    assert not logging.getLogger("ccxt.base.exchange").isEnabledFor(logging.DEBUG)
    assert logging.getLogger("ccxt.base.exchange").isEnabledFor(logging.WARNING)
    logger.remove()


@pytest.mark.parametrize("secret", ['s3cr"et-db-pass', "s3cr\\et-db-pass", "tab\tsecret-value", "new\nline-secret"])
def test_json_lines_mask_secrets_that_json_escapes(secret: str) -> None:
    # Masked before escaping: after it, `"` → `\"` and the secret is no longer found in the line.
    buf = io.StringIO()
    redact.clear()
    setup_logging(sink=buf, json_lines=True, secrets=[secret])
    try:
        logger.bind(dsn=f"postgresql://u:{secret}@h/db").error("cannot connect: {}", secret)
    finally:
        redact.clear()
        logger.remove()
    record = orjson.loads(buf.getvalue().splitlines()[0])
    assert record["message"] == "cannot connect: ***"
    assert secret not in record["context"]["dsn"]


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_the_websocket_librarys_chatter_is_debug_and_its_warnings_stay(level: str) -> None:
    # UBWA logs every payload, subscription, speed record and close at INFO: about half the daemon's lines in a
    # short run. The stream actor logs what an operator needs (connected, gap, recreated) at INFO itself.
    buf = io.StringIO()
    setup_logging(level=level, sink=buf)
    try:
        ubwa = logging.getLogger("unicorn_binance_websocket_api")
        ubwa.info("BinanceWebSocketApiManager.create_payload(...)")
        ubwa.warning("BinanceWebSocketApiManager._stream_is_crashing(...)")
        logging.getLogger("pykka").info("pykka still at info")
    finally:
        logger.remove()
    lines = buf.getvalue().splitlines()
    chatter = [line for line in lines if "create_payload" in line]
    assert chatter == [] if level == "INFO" else len(chatter) == 1 and "| DEBUG " in chatter[0]
    assert any("_stream_is_crashing" in line and "| WARNING " in line for line in lines)
    assert any("pykka still at info" in line and "| INFO " in line for line in lines)


def test_ubwas_leftover_listen_key_task_at_stop_is_not_an_error() -> None:
    # binance.us: UBWA's listenKey keep-alive task outlives its stream's loop, and asyncio logged an ERROR at
    # every stream stop. Any other destroyed task stays an error.
    buf = io.StringIO()
    setup_logging(level="INFO", sink=buf)
    try:
        asyncio_log = logging.getLogger("asyncio")
        asyncio_log.error(
            "Task was destroyed but it is pending!\ntask: <Task pending name='Task-40464' "
            "coro=<BinanceWebSocketApiManager._ping_listen_key() running at manager.py:None>>"
        )
        asyncio_log.error("Task was destroyed but it is pending!\ntask: <Task pending coro=<ours() running>>")
    finally:
        logger.remove()
    text = buf.getvalue()
    assert "_ping_listen_key" not in text
    assert "coro=<ours() running>" in text and "| ERROR " in text


def test_ubwas_high_cpu_warning_is_debug() -> None:
    # UBWA warns "High CPU usage since 5 seconds" whenever the host is busy: 88 of a daemon's 143 lines on a loaded
    # machine, nothing about the streams. Its other warnings stay warnings.
    buf = io.StringIO()
    setup_logging(level="DEBUG", sink=buf)
    try:
        ubwa = logging.getLogger("unicorn_binance_websocket_api")
        ubwa.warning("BinanceWebSocketApiManager._frequent_checks() - High CPU usage since 5 seconds: 100.0")
        ubwa.warning("BinanceWebSocketApiManager._stream_is_crashing(...)")
    finally:
        logger.remove()
    lines = buf.getvalue().splitlines()
    [cpu] = [line for line in lines if "High CPU usage" in line]
    assert "| DEBUG " in cpu
    assert any("_stream_is_crashing" in line and "| WARNING " in line for line in lines)


def test_pykkas_returned_exception_traceback_is_debug() -> None:
    # pykka logs, at INFO with a full traceback, every exception an actor hands back to its asker (a database
    # outage: one per failed lookup); the asker logs what it means.
    buf = io.StringIO()
    setup_logging(level="INFO", sink=buf)
    try:
        pykka_log = logging.getLogger("pykka")
        try:
            raise RuntimeError("database down")
        except RuntimeError:
            pykka_log.info("Exception returned from PersistenceActor (urn:uuid:1) to caller:", exc_info=True)
        pykka_log.info("pykka still at info")
    finally:
        logger.remove()
    text = buf.getvalue()
    assert "Exception returned from" not in text and "database down" not in text
    assert "pykka still at info" in text
