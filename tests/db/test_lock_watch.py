"""The PostgreSQL instance lock is watched while the engine runs: a lost session is re-taken, or the engine hears
it could not be; its session asks the server to notice a dead client within seconds; an unreachable server at
start is an error for a caller that needs the lock."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from loguru import logger

from db import DatabaseInUseError, InstanceLock, StorageError, acquire_instance_lock
from db._lockwatch import KEY_SQL, LockLoss
from tests.pg_fixtures import lock_holder

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]

_WAIT_S = 10.0  # bounded waits for the watch thread (it reports through events, never a sleep)


@pytest.fixture
def lock(pg_url: str) -> Iterator[InstanceLock]:
    held = acquire_instance_lock(pg_url, wait_s=0.5, retake_wait_s=0.5)
    try:
        yield held
    finally:
        held.release()


def _lock_connection(lock: InstanceLock) -> Any:
    return lock._session._conn  # type: ignore[union-attr]  # the session's own settings


def test_the_lock_session_asks_the_server_to_drop_it_within_seconds_of_a_dead_client(lock: InstanceLock) -> None:
    # A crashed engine host sends nothing: without server-side keepalives its session (and the lock) lives on
    # for the kernel's two hours, and no engine can start on the database meanwhile.
    with _lock_connection(lock).cursor() as cur:
        shown = {}
        for name in ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count"):
            cur.execute(f"SHOW {name}")
            shown[name] = cur.fetchone()[0]
    assert shown == {"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "2"}
    # And the client side notices a dead server as quickly (a lost lock is then re-taken or reported).
    client = _lock_connection(lock).info.dsn_parameters
    assert (client["keepalives"], client["keepalives_idle"], client["keepalives_count"]) == ("1", "10", "2")


def test_a_terminated_lock_session_is_re_taken_and_kept(lock: InstanceLock, pg_admin: Any, pg_url: str) -> None:
    first = lock_holder(pg_admin)
    assert first is not None
    with pg_admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (first,))

    assert lock.check() is True  # what the watch does every period: reconnected, the lock taken again
    again = lock_holder(pg_admin)
    assert again is not None and again != first
    with pytest.raises(DatabaseInUseError):
        acquire_instance_lock(pg_url, wait_s=0.2)


def test_the_watch_re_takes_a_lost_lock_by_itself(lock: InstanceLock, pg_admin: Any) -> None:
    retaken = threading.Event()
    sink = logger.add(lambda _m: retaken.set(), level="WARNING", filter=lambda r: "re-taken" in r["message"])
    lost: list[LockLoss] = []
    try:
        lock.watch(lost.append, every_s=0.05)
        first = lock_holder(pg_admin)
        with pg_admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (first,))
        assert retaken.wait(_WAIT_S), "the watch never re-took the lock"
    finally:
        logger.remove(sink)
    assert lost == [] and lock_holder(pg_admin) not in (None, first)  # `lost` is the watch's on_lost: never called


def test_a_lock_another_session_took_meanwhile_is_reported_lost(lock: InstanceLock, pg_admin: Any) -> None:
    # The server restarted (here: the session was terminated) and another engine got the lock first: this one
    # must hear of it, since a second engine now runs on its database.
    fired = threading.Event()
    reasons: list[LockLoss] = []

    def on_lost(loss: LockLoss) -> None:
        reasons.append(loss)
        fired.set()

    lock.watch(on_lost, every_s=0.05)
    with pg_admin.cursor() as cur:
        # One statement: the other session is queued for the lock before this one's watch can reconnect.
        cur.execute(f"SELECT pg_terminate_backend(%s), pg_advisory_lock({KEY_SQL})", (lock_holder(pg_admin),))
    assert fired.wait(_WAIT_S), "on_lost was never called"
    assert reasons[0].held_elsewhere and "another engine" in reasons[0].reason
    assert lock.check() is False and len(reasons) == 1  # once per loss, not once per check
    with pg_admin.cursor() as cur:
        cur.execute(f"SELECT pg_advisory_unlock({KEY_SQL})")
    assert lock.check() is True  # free again: held again (the engine stays halted: its on_lost decided that)


def test_a_lock_another_engine_holds_is_lost_at_once_not_after_the_retake_wait(pg_url: str, pg_admin: Any) -> None:
    # PostgreSQL review: the retake waited its 25 s for a lock another engine had taken, and this engine traded on
    # meanwhile, intake open, while the other resumed the same requests: a 0.01 buy bought 0.02 (both fallbacks).
    # Only this process's own stale session is worth the wait. (A 600 s wait here: the old code met the timeout.)
    held = acquire_instance_lock(pg_url, wait_s=0.5, retake_wait_s=600)
    paused: list[str] = []
    lost: list[LockLoss] = []
    try:
        held._session._on_unheld = paused.append  # type: ignore[union-attr]  # what `watch` sets, without a thread
        held._session._on_lost = lost.append  # type: ignore[union-attr]
        with pg_admin.cursor() as cur:
            # Another engine's session, with this one's pid (pid 1 in two containers behind one NAT): only the
            # process's token tells them apart (third review: pid and address took it for this one's own)
            cur.execute("SET application_name = %s", (f"bexec-engine pid {os.getpid()} id 00000000",))
            cur.execute(f"SELECT pg_terminate_backend(%s), pg_advisory_lock({KEY_SQL})", (lock_holder(pg_admin),))
        assert held.check() is False
        assert len(paused) == 1 and paused[0].startswith("its session")  # new orders paused before the retake
        [loss] = lost
        assert loss.held_elsewhere and f"pid {os.getpid()} from" in loss.reason
    finally:
        with pg_admin.cursor() as cur:
            cur.execute(f"SELECT pg_advisory_unlock({KEY_SQL})")
            cur.execute("RESET application_name")
        held.release()


def test_a_lock_another_engine_of_this_process_took_is_lost_at_once(pg_url: str, pg_admin: Any) -> None:
    # Last review: the token was per process, so a second engine of the same process holding the lock was taken for
    # the first one's own stale session, and the retake waited its whole window.
    first = acquire_instance_lock(pg_url, wait_s=0.5, retake_wait_s=600)
    lost: list[LockLoss] = []
    try:
        first._session._on_unheld = lambda _reason: None  # type: ignore[union-attr]
        first._session._on_lost = lost.append  # type: ignore[union-attr]
        with pg_admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (lock_holder(pg_admin),))
        second = acquire_instance_lock(pg_url, wait_s=5)
        try:
            assert first.check() is False
            [loss] = lost
            assert loss.held_elsewhere
        finally:
            second.release()
    finally:
        first.release()


def test_release_stops_the_watch_at_once(pg_url: str) -> None:
    held = acquire_instance_lock(pg_url)
    held.watch(lambda _reason: None, every_s=3600)
    thread = held._session._thread  # type: ignore[union-attr]  # this lock's own watch
    assert thread is not None and thread.is_alive()
    held.release()  # an Event wait, not a sleep: no hour-long join
    acquire_instance_lock(pg_url, wait_s=5).release()  # let go of: the next one takes it
    assert not thread.is_alive()


def test_a_retake_that_ends_after_the_release_gave_up_on_it_lets_go_of_the_lock(
    lock: InstanceLock, pg_admin: Any, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stop while the watch re-took a lost lock (its connect and lock waits can outlast the release's join):
    # the retake then held the lock on a connection nobody closed, and no engine could start here again until
    # the process ended.
    session = lock._session
    assert session is not None
    monkeypatch.setattr("db._lockwatch._JOIN_S", 0.05)
    retaking, go_on = threading.Event(), threading.Event()
    retake = session._retake

    def slow_retake() -> Any:
        retaking.set()
        assert go_on.wait(_WAIT_S)
        return retake()

    session._retake = slow_retake
    with pg_admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (lock_holder(pg_admin),))
    checked: list[bool] = []
    checker = threading.Thread(target=lambda: checked.append(lock.check()))
    checker.start()
    assert retaking.wait(_WAIT_S)
    lock.release()  # gives up waiting for the busy check
    go_on.set()
    checker.join(_WAIT_S)
    assert checked == [False]
    acquire_instance_lock(pg_url, wait_s=2).release()  # free: the retaken session was ended


def test_a_lock_that_cannot_be_taken_for_want_of_the_server_is_an_error_when_required() -> None:
    with pytest.raises(StorageError, match="database lock") as raised:
        acquire_instance_lock("postgresql://nobody:s3ntinel-pw@127.0.0.1:1/none", required=True)
    assert isinstance(raised.value, RuntimeError) and "s3ntinel-pw" not in str(raised.value)
