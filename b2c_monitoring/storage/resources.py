"""Resource samples in Postgres: stored at full resolution, folded into each owner's window.

``apply_resources`` runs inside the caller's transaction (``storage/metrics.py``).
A sample is stored once (its key is owner and time); only the samples stored now
are folded into the owner's ``resource_windows`` row, so a batch the collector sends
again changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson
import psycopg_pool
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb, set_json_loads

from b2c_monitoring.live_events import resource_metrics_updated
from b2c_monitoring.processors.resources import (
    VALUE_FIELDS,
    Bucket,
    ResourceSample,
    ResourceWindow,
    derive_all,
    summarize,
)
from b2c_monitoring.storage.db import translate_errors
from b2c_monitoring.storage.hub_events import publish
from b2c_monitoring.storage.partitions import Retention, mark_late
from b2c_monitoring.storage.services import Resolution

OwnerKey = tuple[str, str]

_SAMPLE_COLUMNS: Final = f"tenant_id, owner, at, {', '.join(VALUE_FIELDS)}"
_INSERT_SAMPLES: Final = f"""
INSERT INTO resource_samples ({_SAMPLE_COLUMNS})
SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[],
    {", ".join("%s::float8[]" for _ in VALUE_FIELDS)})
ON CONFLICT (tenant_id, owner, at) DO NOTHING
RETURNING {_SAMPLE_COLUMNS}
"""

_WINDOW_COLUMNS: Final = (
    "tenant_id, owner, current, current_at, buckets, last_sample_at, updated_at"
)
_LOCK: Final = f"""
SELECT {_WINDOW_COLUMNS} FROM resource_windows
WHERE (tenant_id, owner) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
ORDER BY tenant_id, owner
FOR UPDATE
"""
_UPSERT: Final = f"""
INSERT INTO resource_windows ({_WINDOW_COLUMNS})
SELECT * FROM unnest(%s::text[], %s::text[], %s::jsonb[], %s::jsonb[], %s::jsonb[],
    %s::timestamptz[], %s::timestamptz[])
ON CONFLICT (tenant_id, owner) DO UPDATE SET current = excluded.current,
    current_at = excluded.current_at, buckets = excluded.buckets,
    last_sample_at = excluded.last_sample_at, updated_at = excluded.updated_at
"""


def window_from_row(row: dict[str, Any]) -> ResourceWindow:
    return ResourceWindow(
        tenant_id=row["tenant_id"],
        owner=row["owner"],
        current={k: float(v) for k, v in row["current"].items()},
        current_at={k: datetime.fromisoformat(v) for k, v in row["current_at"].items()},
        buckets=tuple(Bucket(*b) for b in row["buckets"]),
        last_sample_at=row["last_sample_at"],
    )


def _window_values(w: ResourceWindow, now: datetime) -> tuple[Any, ...]:
    return (
        w.tenant_id,
        w.owner,
        Jsonb(w.current),
        Jsonb({k: v.isoformat() for k, v in w.current_at.items()}),
        Jsonb(w.buckets),  # tuples: JSON arrays in field order
        w.last_sample_at,
        now,
    )


def _sample_from_row(row: dict[str, Any]) -> ResourceSample:
    return ResourceSample(
        tenant_id=row["tenant_id"],
        owner=row["owner"],
        at=row["at"],
        **{name: row[name] for name in VALUE_FIELDS},
    )


def sample_times(
    samples: Sequence[ResourceSample], now: datetime, retention: Retention
) -> list[datetime]:
    oldest = now - retention.raw
    return [s.at for s in samples if s.at >= oldest]


def apply_resources(
    cur: Any, samples: Sequence[ResourceSample], retention: Retention, now: datetime
) -> int:
    """Store new samples and fold them into their owners' windows; returns how many were new."""
    oldest = now - retention.raw
    kept = sorted(
        (s for s in samples if s.at >= oldest), key=lambda s: (s.tenant_id, s.owner, s.at)
    )
    if not kept:
        return 0
    columns = [
        [s.tenant_id for s in kept],
        [s.owner for s in kept],
        [s.at for s in kept],
        *([getattr(s, name) for s in kept] for name in VALUE_FIELDS),
    ]
    cur.execute(_INSERT_SAMPLES, columns)
    fresh: dict[OwnerKey, list[ResourceSample]] = defaultdict(list)
    for row in cur.fetchall():
        sample = _sample_from_row(row)
        fresh[(sample.tenant_id, sample.owner)].append(sample)
    if not fresh:
        return 0
    mark_late(cur, "resource_samples", min(s.at for v in fresh.values() for s in v))
    keys = sorted(fresh)
    cur.execute(_LOCK, ([k[0] for k in keys], [k[1] for k in keys]))
    stored = {(r["tenant_id"], r["owner"]): window_from_row(r) for r in cur.fetchall()}
    windows = []
    for key in keys:
        window = derive_all(stored.get(key), sorted(fresh[key], key=lambda s: s.at), now)
        assert window is not None
        windows.append(window)
    cur.execute(
        _UPSERT, [list(col) for col in zip(*(_window_values(w, now) for w in windows), strict=True)]
    )
    _announce(cur, keys, windows, now)
    return sum(len(v) for v in fresh.values())


def _announce(
    cur: Any, keys: Sequence[OwnerKey], windows: Sequence[ResourceWindow], now: datetime
) -> None:
    """``ResourceMetricsUpdated`` for each owner that is a known service (the event
    names the service by its id; an owner without a service row has none yet)."""
    cur.execute(_SERVICE_IDS, ([k[0] for k in keys], [k[1] for k in keys]))
    ids = {(r["tenant_id"], r["name"]): r["id"] for r in cur.fetchall()}
    updated = [
        (key[0], ids[key], summarize(window, now))
        for key, window in zip(keys, windows, strict=True)
        if key in ids
    ]
    publish(cur.connection, resource_metrics_updated(updated))


_SERVICE_IDS: Final = """
SELECT tenant_id, name, id::text AS id FROM services
WHERE (tenant_id, name) IN (SELECT * FROM unnest(%b::text[], %b::text[]))
"""


@dataclass(frozen=True)
class ResourcePoint:
    at: datetime
    resolution: Resolution
    samples: int
    cpu_average: float | None  # ratio 0..1
    cpu_peak: float | None
    memory_average: float | None  # bytes
    memory_peak: float | None
    memory_limit: float | None
    threads: float | None
    pool_used: float | None
    queue_depth: float | None


class ResourceStore:
    def __init__(self, pool: psycopg_pool.ConnectionPool) -> None:
        self._pool = pool

    def windows(self, keys: Sequence[OwnerKey]) -> dict[OwnerKey, ResourceWindow]:
        if not keys:
            return {}
        with (
            translate_errors(),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            # three documents a window, one of 60 minutes: orjson parses them in a
            # fraction of json.loads' time (the services list reads 100 windows)
            set_json_loads(orjson.loads, cur)
            cur.execute(
                f"SELECT {_WINDOW_COLUMNS} FROM resource_windows "
                "WHERE (tenant_id, owner) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
                ([k[0] for k in keys], [k[1] for k in keys]),
            )
            return {(r["tenant_id"], r["owner"]): window_from_row(r) for r in cur.fetchall()}

    def history(
        self,
        tenant_id: str,
        owner: str,
        since: datetime,
        until: datetime,
        resolution: Resolution,
    ) -> list[ResourcePoint]:
        """Samples of ``[since, until)`` at one resolution, oldest first."""
        if resolution == "raw":
            sql = (
                "SELECT at, 1 AS samples, cpu_ratio AS cpu_average, cpu_ratio AS cpu_peak, "
                "memory_used AS memory_average, memory_used AS memory_peak, memory_limit, "
                "threads, pool_used, queue_depth FROM resource_samples "
                "WHERE tenant_id = %s AND owner = %s AND at >= %s AND at < %s ORDER BY at"
            )
        else:
            table = "resource_samples_5m" if resolution == "5m" else "resource_samples_1h"
            sql = (
                "SELECT bucket AS at, samples, "
                "CASE WHEN cpu_count > 0 THEN cpu_sum / cpu_count END AS cpu_average, "
                "cpu_max AS cpu_peak, "
                "CASE WHEN memory_count > 0 THEN memory_sum / memory_count END AS memory_average, "
                "memory_max AS memory_peak, memory_limit, threads_max AS threads, "
                f"pool_used_max AS pool_used, queue_depth_max AS queue_depth FROM {table} "
                "WHERE tenant_id = %s AND owner = %s AND bucket >= %s AND bucket < %s "
                "ORDER BY bucket"
            )
        with (
            translate_errors(),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            cur.execute(sql, (tenant_id, owner, since, until))
            return [ResourcePoint(resolution=resolution, **r) for r in cur.fetchall()]
