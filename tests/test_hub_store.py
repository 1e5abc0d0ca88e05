"""The hub's outbox in Postgres: an event exists iff its transaction committed, and a
reader never skips one that committed after a later id."""

from __future__ import annotations

import asyncio
import time

import psycopg

from b2c_monitoring.hub.ordering import Sequencer
from b2c_monitoring.live_events import HubEvent
from b2c_monitoring.storage.hub_events import StoredEvent, publish, read_after


def _event(component: str) -> HubEvent:
    return HubEvent("t", "HealthStatusChanged", (component, "healthy"))


async def _read(url: str, sequencer: Sequencer, now: float) -> list[StoredEvent]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        rows, snapshot = await read_after(conn, sequencer.watermark, 100)
    return sequencer.advance(rows, snapshot, now)


def test_an_event_committed_after_a_later_id_is_delivered_first_not_skipped(fresh_db: str) -> None:
    sequencer = Sequencer(watermark=0)
    with psycopg.connect(fresh_db) as slow, psycopg.connect(fresh_db) as fast:
        publish(slow, [_event("first")])  # draws id 1, stays uncommitted
        with fast.transaction():
            publish(fast, [_event("second")])  # id 2, committed
        assert asyncio.run(_read(fresh_db, sequencer, now=0)) == []
        slow.commit()
    delivered = asyncio.run(_read(fresh_db, sequencer, now=1))
    assert [(e.id, e.event.arguments[0]) for e in delivered] == [(1, "first"), (2, "second")]


def test_a_rolled_back_event_never_exists_and_leaves_no_lasting_gap(fresh_db: str) -> None:
    sequencer = Sequencer(watermark=0)
    with psycopg.connect(fresh_db) as conn:
        with conn.transaction():
            publish(conn, [_event("kept")])
        publish(conn, [_event("rolled back")])
        conn.rollback()
        with conn.transaction():
            publish(conn, [_event("after")])
    delivered: list[StoredEvent] = []
    # transactions of other databases of the cluster may be in progress at a read; the
    # gap is final once they end (no give-up: the clock stays below give_up_s)
    for _ in range(100):
        delivered += asyncio.run(_read(fresh_db, sequencer, now=0))
        if not sequencer.waiting and len(delivered) == 2:
            break
        time.sleep(0.05)
    assert [e.event.arguments[0] for e in delivered] == ["kept", "after"]
    assert sequencer.given_up == 0
