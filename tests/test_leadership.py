"""The alerting lead (``storage/leadership.py``) on a real Postgres: one holder at a time,
handed over when the holder's session ends, however it ends."""

from __future__ import annotations

import psycopg

from b2c_monitoring.storage.leadership import Leadership

KEY = 0x7465_7374  # a key of this test's own


def test_one_process_leads_and_the_lead_moves_when_its_session_ends(fresh_db: str) -> None:
    first, second = Leadership(fresh_db, KEY, "one"), Leadership(fresh_db, KEY, "two")
    try:
        assert first.hold()
        assert not second.hold()
        assert first.hold(), "the leader keeps the lead at every poll"
        assert (first.leading, second.leading) == (True, False)
        # Postgres ends the leader's session (as when its process or node died)
        with psycopg.connect(fresh_db, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'b2c-leader-one'"
            )
        assert second.hold(), "the lock went with the session"
        assert not first.hold(), "the old leader finds out at its next poll and steps down"
        assert (first.leading, second.leading) == (False, True)
    finally:
        first.release()
        second.release()


def test_a_released_lead_is_taken_at_the_next_poll(fresh_db: str) -> None:
    first, second = Leadership(fresh_db, KEY, "one"), Leadership(fresh_db, KEY, "two")
    try:
        assert first.hold()
        first.release()
        assert not first.leading
        assert second.hold()
    finally:
        first.release()
        second.release()


def test_a_store_that_cannot_be_reached_means_not_leading() -> None:
    nowhere = Leadership("postgresql://b2c@127.0.0.1:1/none?connect_timeout=1", KEY, "x")
    assert not nowhere.hold()
    assert not nowhere.leading
