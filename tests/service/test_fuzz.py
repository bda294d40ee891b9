"""Fuzz the control API from the OpenAPI document it serves (schemathesis): valid and malformed requests alike.

Whatever arrives, the answer is never a 5xx; every malformed input gets a 4xx, and every 422 names the field
in a message starting with it. Runs against a real daemon on the embedded defaults (kept under ~30 s).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402 - after the optional import
from schemathesis.checks import negative_data_rejection, not_a_server_error  # noqa: E402
from schemathesis.core.parameters import ParameterLocation  # noqa: E402

from engine.config import Config  # noqa: E402
from engine.service._openapi import openapi_schema  # noqa: E402
from tests.service._proc import DaemonProcess  # noqa: E402

pytestmark = pytest.mark.timeout(180)

# The document the daemon serves on the embedded defaults (checked against the served one below); built here
# because schemathesis parametrizes at collection time. /events streams until the client leaves: not fuzzed.
SERVED = openapi_schema(tuple(Config().exchange.pair_whitelist))
schema = schemathesis.openapi.from_dict(SERVED).exclude(path="/events")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path_factory.mktemp("fuzz"), FREQTRADE__EXECUTION__LIMIT_TIMEOUT_S="900")
    yield proc
    proc.signal(signal.SIGTERM)
    try:
        assert proc.wait() == 0
    finally:
        proc.kill()


def test_the_fuzzed_document_is_the_served_one(daemon: DaemonProcess) -> None:
    import json
    import urllib.request

    with urllib.request.urlopen(daemon.url + "/openapi.json", timeout=30) as response:
        assert json.loads(response.read()) == json.loads(json.dumps(SERVED))


def _check_422(body: Any) -> None:
    # Validation errors, and the engine's refusals about the request itself (not_whitelisted, filter_failure).
    assert isinstance(body, dict) and body.get("error") in ("invalid_request", "not_whitelisted", "filter_failure")
    fields = body.get("fields")
    assert fields and all(f.get("field") and f.get("message") for f in fields), body
    if body["error"] == "invalid_request":
        assert any(body["message"].startswith(f"{f['field']}: ") for f in fields), body


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_request_is_answered_without_a_server_error(case: Any, daemon: DaemonProcess) -> None:
    # A case whose headers are the negative part (the bearer token missing or malformed) keeps them: forcing the
    # valid token onto it made a correct request of it, and the server's 200 then read as negative data accepted.
    negative_headers = case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER)
    headers = {} if negative_headers else {"Authorization": f"Bearer {daemon.token}"}
    response = case.call(base_url=daemon.url, headers=headers, timeout=30)
    case.validate_response(response, checks=[not_a_server_error, negative_data_rejection])
    if response.status_code == 422:
        _check_422(response.json())
