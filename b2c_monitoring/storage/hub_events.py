"""Hub events in Postgres: the outbox that every API instance's hub reads from.

``publish`` writes events inside the caller's open transaction, so an event exists
if and only if the change it announces committed, and Postgres delivers the
``pg_notify`` that wakes the hubs only at that commit. Each row also records the
writing transaction's id (``xid``), taken before the row's ``id``: a reader that
sees a gap in ``id`` can then tell when the transaction that may still fill it has
ended (``hub/backplane.py``).

``read_after`` and ``oldest_id`` are the readers' side; ``prune`` drops old events in
the maintenance round.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import psycopg
from pydantic import JsonValue

from b2c_monitoring.live_events import HubEvent, HubTarget
from b2c_monitoring.storage.db import JSONB_BYTES, copy_jsonb, copy_rows

CHANNEL: Final = "b2c_hub_events"

# How far back a reconnecting client can catch up; older, it is told to reload.
HUB_EVENTS_KEPT: Final = timedelta(hours=1)

# COPY, not INSERT ... unnest: a batch of jobs publishes one event per job, and COPY
# formats its rows in C (storage/db.copy_rows). ``xid`` and ``id`` come from column
# defaults (0007, 0009); the transaction id is assigned first, by a statement of its
# own, so it exists before any id is drawn (see the module docstring).
_ASSIGN_XID: Final = "SELECT pg_current_xact_id()"
_COPY: Final = (
    "COPY hub_events (tenant_id, target, arguments, job_id, job_type, service_id) "
    "FROM STDIN (FORMAT BINARY)"
)
_TYPES: Final = ("text", "text", JSONB_BYTES, "text", "text", "text")
# currval: the last id this session drew, the highest of the events just written
_NOTIFY: Final = f"SELECT pg_notify('{CHANNEL}', currval('hub_events_id_seq')::text)"


def publish(conn: psycopg.Connection[Any], events: Sequence[HubEvent]) -> None:
    """Write ``events`` in ``conn``'s open transaction; nothing if none."""
    if not events:
        return
    with conn.cursor() as cur:
        cur.execute(_ASSIGN_XID)
        copy_rows(
            cur,
            _COPY,
            _TYPES,
            (
                (
                    e.tenant_id,
                    e.target,
                    copy_jsonb(e.arguments),
                    e.job_id,
                    e.job_type,
                    e.service_id,
                )
                for e in events
            ),
        )
        cur.execute(_NOTIFY)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: int
    event: HubEvent


_COLUMNS: Final = "id, tenant_id, target, arguments, job_id, job_type, service_id"


def _stored(row: tuple[Any, ...]) -> StoredEvent:
    id_, tenant_id, target, arguments, job_id, job_type, service_id = row
    target_: HubTarget = target
    args: list[JsonValue] = arguments
    return StoredEvent(id_, HubEvent(tenant_id, target_, tuple(args), job_id, job_type, service_id))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The transactions in progress when a read ran (``pg_current_snapshot``)."""

    xmax: int
    in_progress: frozenset[int]


# One statement, so the rows and the list of transactions in progress come from the
# same snapshot (the LEFT JOIN answers the snapshot even when there are no rows).
_READ_AFTER: Final = f"""
SELECT snap.xmax, snap.xip, e.*
FROM (SELECT pg_snapshot_xmax(s)::text AS xmax,
             ARRAY(SELECT x::text FROM pg_snapshot_xip(s) AS x) AS xip
      FROM pg_current_snapshot() AS s) AS snap
LEFT JOIN LATERAL (
    SELECT {_COLUMNS} FROM hub_events WHERE id > %s ORDER BY id LIMIT %s
) AS e ON true
"""


def _snapshot(row: tuple[Any, ...]) -> Snapshot:
    """The snapshot columns (xmax, in-progress xids as text) of a read's first row."""
    return Snapshot(int(row[0]), frozenset(int(x) for x in row[1]))


async def read_after(
    conn: psycopg.AsyncConnection[Any], after_id: int, limit: int
) -> tuple[list[StoredEvent], Snapshot]:
    """Committed events with ``id > after_id`` in id order, and the read's snapshot."""
    cur = await conn.execute(_READ_AFTER, (after_id, limit))
    rows = await cur.fetchall()
    return [_stored(row[2:]) for row in rows if row[2] is not None], _snapshot(rows[0])


@dataclass(frozen=True, slots=True)
class EventId:
    id: int


_READ_IDS_AFTER: Final = _READ_AFTER.replace(f"SELECT {_COLUMNS} FROM", "SELECT id FROM")


async def read_ids_after(
    conn: psycopg.AsyncConnection[Any], after_id: int, limit: int
) -> tuple[list[EventId], Snapshot]:
    """``read_after`` without the events: a reader with nobody to deliver to still
    has to follow the ids, and reading and decoding every event's payload was most
    of an idle API's work under a busy pipeline."""
    cur = await conn.execute(_READ_IDS_AFTER, (after_id, limit))
    rows = await cur.fetchall()
    return [EventId(row[2]) for row in rows if row[2] is not None], _snapshot(rows[0])


async def latest_id(conn: psycopg.AsyncConnection[Any]) -> int:
    """The highest committed id: where a new reader starts."""
    cur = await conn.execute("SELECT coalesce(max(id), 0) FROM hub_events")
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


def read_for_tenants(
    conn: psycopg.Connection[Any], tenants: Sequence[str] | None, after_id: int, upto_id: int
) -> list[StoredEvent]:
    """Events of ``tenants`` (None: all) in ``(after_id, upto_id]``, in id order: a
    client's catch-up."""
    cur = conn.execute(
        f"SELECT {_COLUMNS} FROM hub_events WHERE id > %s AND id <= %s "
        "AND (%s::text[] IS NULL OR tenant_id = ANY(%s::text[])) ORDER BY id",
        (after_id, upto_id, tenants, tenants),
    )
    return [_stored(row) for row in cur.fetchall()]


def oldest_id(conn: psycopg.Connection[Any]) -> int | None:
    row = conn.execute("SELECT min(id) FROM hub_events").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def prune(conn: psycopg.Connection[Any], older_than: datetime) -> int:
    """Delete events created before ``older_than``; how many."""
    cur = conn.execute("DELETE FROM hub_events WHERE created_at < %s", (older_than,))
    return cur.rowcount
