"""Signatures (HMAC docs vector, RSA, Ed25519), timing rules and every negative auth case over REST."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import quote, urlencode

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from sim import AccountSpec, SimConfig, SimError, Simulator
from sim._auth import KeyVerifier, check_timestamp, split_signature

DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_PAYLOAD = (
    "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
)
DOC_SIG = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"

RO_SECRET = "s2" * 32  # an HMAC secret is 64 characters, as Binance's


def test_docs_hmac_vector() -> None:
    v = KeyVerifier(DOC_SECRET)
    assert v.kind == "HMAC"
    assert v.verify(DOC_PAYLOAD.encode(), DOC_SIG, url_encoded=True)
    assert v.verify(DOC_PAYLOAD.encode(), DOC_SIG.upper(), url_encoded=True)  # hex is case-insensitive
    assert not v.verify(DOC_PAYLOAD.encode() + b"x", DOC_SIG, url_encoded=True)
    assert split_signature(DOC_PAYLOAD + "&signature=" + DOC_SIG) == (DOC_PAYLOAD, DOC_SIG)
    assert split_signature(DOC_PAYLOAD) is None


def test_rsa_and_ed25519_verifiers(rsa_pem: str, ed25519_pem: str) -> None:
    payload = b"timestamp=1&symbol=BTCUSDT"
    rsa_key = serialization.load_pem_private_key(rsa_pem.encode(), None)
    assert isinstance(rsa_key, rsa.RSAPrivateKey)
    sig = base64.b64encode(rsa_key.sign(payload, padding.PKCS1v15(), hashes.SHA256())).decode()
    v = KeyVerifier(rsa_pem)
    assert v.kind == "RSA"
    assert v.verify(payload, quote(sig, safe=""), url_encoded=True)
    assert v.verify(payload, sig, url_encoded=False)
    assert not v.verify(payload + b"1", sig, url_encoded=False)
    assert not v.verify(payload, "not base64!!", url_encoded=False)
    ed_key = serialization.load_pem_private_key(ed25519_pem.encode(), None)
    assert isinstance(ed_key, ed25519.Ed25519PrivateKey)
    esig = base64.b64encode(ed_key.sign(payload)).decode()
    ve = KeyVerifier(ed25519_pem)
    assert ve.kind == "ED25519" and len(ed25519_pem) <= 120
    assert ve.verify(payload, quote(esig, safe=""), url_encoded=True)
    assert not ve.verify(b"other", esig, url_encoded=False)


@pytest.mark.parametrize(
    ("ts_offset", "window", "code"),
    [
        (0, None, None),
        (-4000, None, None),
        (-6000, None, -1021),
        (-6000, "10000", None),
        (1500, None, -1021),
        (0, "60001", -1102),
        (-59000, "60000", None),
    ],
)
def test_timestamp_rules(ts_offset: int, window: str | None, code: int | None) -> None:
    now = 1_767_225_600_000
    if code is None:
        check_timestamp(str(now + ts_offset), window, now)
    else:
        with pytest.raises(SimError) as exc:
            check_timestamp(str(now + ts_offset), window, now)
        assert exc.value.code == code
    check_timestamp(str((now - 10) * 1000), None, now)  # microseconds are accepted
    with pytest.raises(SimError, match="timestamp"):
        check_timestamp(None, None, now)


def raw_post(sim: Simulator, params: dict[str, str], key: str, secret: str, timeout: float) -> requests.Response:
    """A signed form POST to /api/v3/order with a client timeout."""
    query = urlencode({"timestamp": str(int(time.time() * 1000)), **params}, quote_via=quote)
    sig = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    return requests.post(
        sim.urls.rest + "/api/v3/order",
        data=f"{query}&signature={sig}",
        timeout=timeout,
        headers={"X-MBX-APIKEY": key, "Content-Type": "application/x-www-form-urlencoded"},
    )


def _signed(
    sim: Simulator,
    method: str,
    path: str,
    params: dict[str, str],
    key: str | None,
    secret: str,
    *,
    ts: int | None = None,
    tamper: bool = False,
) -> requests.Response:
    q = {"timestamp": str(ts if ts is not None else int(time.time() * 1000)), **params}
    query = urlencode(q, quote_via=quote)
    sig = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    if tamper:
        sig = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    headers = {"X-MBX-APIKEY": key} if key is not None else {}
    body = f"{query}&signature={sig}"
    if method == "POST":
        return requests.post(
            sim.urls.rest + path,
            data=body,
            timeout=5,
            headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
        )
    return requests.request(method, f"{sim.urls.rest}{path}?{body}", headers=headers, timeout=5)


def test_rest_auth_negative_cases() -> None:
    cfg = SimConfig(
        accounts=[
            AccountSpec(),
            AccountSpec(
                name="ro", api_key="readonly1", secret=RO_SECRET, enable_spot_trading=False, enable_withdrawals=True
            ),
        ]
    )
    with Simulator(cfg) as sim:
        acc = sim.accounts[0]
        ok = _signed(sim, "GET", "/api/v3/account", {}, acc.api_key, acc.secret)
        assert ok.status_code == 200 and ok.headers["Content-Type"].startswith("application/json")
        assert ok.json()["accountType"] == "SPOT"
        cases = [
            (_signed(sim, "GET", "/api/v3/account", {}, None, acc.secret), 401, -2014),
            (_signed(sim, "GET", "/api/v3/account", {}, "bad key!", acc.secret), 401, -2014),
            (_signed(sim, "GET", "/api/v3/account", {}, "unknownkey", acc.secret), 401, -2015),
            (_signed(sim, "GET", "/api/v3/account", {}, acc.api_key, acc.secret, tamper=True), 400, -1022),
            (_signed(sim, "GET", "/api/v3/account", {}, acc.api_key, "wrong"), 400, -1022),
            (
                _signed(sim, "GET", "/api/v3/account", {}, acc.api_key, acc.secret, ts=int(time.time() * 1000) - 7000),
                400,
                -1021,
            ),
            (_signed(sim, "GET", "/api/v3/account", {"recvWindow": "60001"}, acc.api_key, acc.secret), 400, -1102),
            (
                _signed(
                    sim,
                    "POST",
                    "/api/v3/order",
                    {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001"},
                    "readonly1",
                    RO_SECRET,
                ),
                401,
                -2015,
            ),
        ]
        for resp, status, code in cases:
            assert (resp.status_code, resp.json()["code"]) == (status, code), resp.text
        no_sig = requests.get(
            f"{sim.urls.rest}/api/v3/account?timestamp=1", timeout=5, headers={"X-MBX-APIKEY": acc.api_key}
        )
        assert no_sig.status_code == 400
        assert no_sig.json() == {
            "code": -1102,
            "msg": "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.",
        }
        ro = _signed(sim, "GET", "/sapi/v1/account/apiRestrictions", {}, "readonly1", RO_SECRET).json()
        assert ro["enableWithdrawals"] is True and ro["enableSpotAndMarginTrading"] is False


def test_percent_encoded_params_are_verified_raw() -> None:
    with Simulator(SimConfig()) as sim:
        acc = sim.accounts[0]
        # A client order id with characters that must be percent-encoded before signing.
        r = _signed(
            sim,
            "POST",
            "/api/v3/order",
            {
                "symbol": "BTCUSDT",
                "side": "BUY",
                "type": "LIMIT",
                "timeInForce": "GTC",
                "quantity": "0.001",
                "price": "60000",
                "newClientOrderId": "a.b_c-d",
            },
            acc.api_key,
            acc.secret,
        )
        assert r.status_code == 200, r.text
        assert r.json()["clientOrderId"] == "a.b_c-d"
        q = _signed(
            sim,
            "GET",
            "/api/v3/order",
            {"symbol": "BTCUSDT", "origClientOrderId": "a.b_c-d", "orderId": str(r.json()["orderId"] + 1)},
            acc.api_key,
            acc.secret,
        )
        assert q.json()["code"] in (-2013, -2039)
        wrong = _signed(
            sim,
            "GET",
            "/api/v3/order",
            {"symbol": "BTCUSDT", "origClientOrderId": "zzz", "orderId": str(r.json()["orderId"])},
            acc.api_key,
            acc.secret,
        )
        assert wrong.json() == {"code": -2039, "msg": "Client order ID is not correct for this order ID."}
        neither = _signed(sim, "GET", "/api/v3/order", {"symbol": "BTCUSDT"}, acc.api_key, acc.secret)
        assert neither.json()["code"] == -1102


def test_garbage_bodies_get_binance_errors_not_500() -> None:
    with Simulator(SimConfig()) as sim:
        acc = sim.accounts[0]
        headers = {"X-MBX-APIKEY": acc.api_key, "Content-Type": "application/x-www-form-urlencoded"}
        for body in (b"\xff\xfe=1", b"timestamp=1&signature=\xff", b"&&&=", b"symbol=BTCUSDT"):
            r = requests.post(sim.urls.rest + "/api/v3/order", data=body, headers=headers, timeout=5)
            assert r.status_code == 400 and r.json()["code"] in (-1102, -1021, -1022), (body, r.text)
