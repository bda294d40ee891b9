"""A plan waiting to re-send its fallback is stored with its request (schema 8): the latest wait wins, a copy without
one keeps it, the caller's cancel stays set once; crash recovery reads it back."""

from __future__ import annotations

from datetime import timedelta

import pytest

from db import BatchWriter, connect, load_recovery, migrate, request_of
from engine.domain import ClientOrderId, RequestRecord
from tests.db import _records as rec


@pytest.fixture
def fresh_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    return sqlite_url if request.param == "sqlite" else str(request.getfixturevalue("pg_fresh_url"))


def _waiting(rid: str, cid: str, seconds: int) -> RequestRecord:
    update = {"fallback_retry": ClientOrderId(cid), "fallback_retry_at": rec.T0 + timedelta(seconds=seconds)}
    return rec.request(rid).model_copy(update=update)


def _canceled(rid: str) -> RequestRecord:
    return rec.request(rid).model_copy(update={"canceled": "canceled by the caller"})


def _retry(db: object, rid: str) -> tuple[object, object, object]:
    stored = request_of(db, rid)  # type: ignore[arg-type]
    assert stored is not None
    return stored.fallback_retry, stored.fallback_retry_at, stored.canceled


def test_the_latest_wait_is_stored_and_a_copy_without_one_keeps_it(db_url: str) -> None:
    db = connect(db_url)
    try:
        writer = BatchWriter(db)
        writer.write([rec.request("r-1")])
        assert _retry(db, "r-1") == (None, None, None)
        writer.write([_waiting("r-1", "bx-f1", 5)])  # one row: PostgreSQL's prepared statement
        assert _retry(db, "r-1") == ("bx-f1", rec.T0 + timedelta(seconds=5), None)
        writer.write([rec.request("r-1")])  # a replayed intent
        writer.write([_canceled("r-1")])  # the caller's cancel, built from the request as made
        assert _retry(db, "r-1") == ("bx-f1", rec.T0 + timedelta(seconds=5), "canceled by the caller")
        writer.write([_waiting("r-1", "bx-f2", 9)])  # a later attempt's wait; the cancel stays
        assert _retry(db, "r-1") == ("bx-f2", rec.T0 + timedelta(seconds=9), "canceled by the caller")
        # One batch (the multi-row statement): told in any order, the cancel and the latest wait are kept.
        writer.write([_waiting("r-2", "bx-a", 1), _canceled("r-2"), rec.request("r-2"), _waiting("r-2", "bx-b", 2),
                      rec.request("r-3"), _waiting("r-4", "bx-c", 3), rec.request("r-4")])  # fmt: skip
        assert _retry(db, "r-2") == ("bx-b", rec.T0 + timedelta(seconds=2), "canceled by the caller")
        assert _retry(db, "r-3") == (None, None, None)
        assert _retry(db, "r-4") == ("bx-c", rec.T0 + timedelta(seconds=3), None)
        [loaded] = [r for r in load_recovery(db).requests if r.request_id == "r-4"]
        assert loaded == _waiting("r-4", "bx-c", 3)
    finally:
        db.close()


@pytest.mark.parametrize("fresh_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_migration_8_keeps_requests_without_a_wait_and_an_older_engine_can_still_insert_them(fresh_url: str) -> None:
    insert = (
        "INSERT INTO requests (request_id, idempotency_key, exchange, pair, payload, reference_price, created_at, "
        "canceled) VALUES ({p}, 'k', 'binance', 'BTC/USDT', '{{}}', NULL, '2026-01-01 00:00:00.000000', NULL)"
    )
    db = connect(fresh_url, apply_migrations=False)
    try:
        migrate(db, target=7)
        db.execute_sql(insert.format(p=db.param), ("before",))
        migrate(db)
        db.execute_sql(insert.format(p=db.param), ("after",))  # as an engine without migration 8 writes
        sql = "SELECT request_id, fallback_retry, fallback_retry_at FROM requests ORDER BY request_id"
        assert [tuple(r) for r in db.execute_sql(sql).fetchall()] == [("after", None, None), ("before", None, None)]
    finally:
        db.close()


def test_a_wait_comes_whole_or_not_at_all() -> None:
    with pytest.raises(ValueError, match="go together"):
        RequestRecord(request=rec.request("r").request, fallback_retry=ClientOrderId("bx-f1"))
