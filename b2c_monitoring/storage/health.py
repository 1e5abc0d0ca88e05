"""Component health in Postgres: reports applied in batches, the staleness sweep, reads.

``apply_health`` runs inside the caller's transaction (``storage/metrics.py``): lock
the batch's components in key order, derive (``processors/health.py``), upsert, and
append the changes. ``HealthStore.expire`` records the turn to ``unknown`` of silent
components; the processor's maintenance runs it, claiming the rows with
``FOR UPDATE SKIP LOCKED`` so that two replicas never record the same turn.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import psycopg_pool
from psycopg.rows import dict_row

from b2c_monitoring.live_events import health_status_changed
from b2c_monitoring.processors.health import (
    Component,
    HealthChange,
    HealthReport,
    HealthStatus,
    derive_all,
    expire,
)
from b2c_monitoring.storage.db import translate_errors
from b2c_monitoring.storage.hub_events import publish
from b2c_monitoring.storage.partitions import PartitionGuard

ComponentKey = tuple[str, str]

_COLUMNS: Final = (
    "tenant_id, name, status, reported_status, description, last_report_at, first_seen, "
    "service_name, updated_at"
)
_ARRAYS: Final = (
    "%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[], "
    "%s::timestamptz[], %s::text[], %s::timestamptz[]"
)

_LOCK: Final = f"""
SELECT {_COLUMNS} FROM components
WHERE (tenant_id, name) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
ORDER BY tenant_id, name
FOR UPDATE
"""

# a row another replica inserted meanwhile is overwritten only if this report is newer
_UPSERT: Final = f"""
INSERT INTO components AS c ({_COLUMNS})
SELECT * FROM unnest({_ARRAYS})
ON CONFLICT (tenant_id, name) DO UPDATE SET status = excluded.status,
    reported_status = excluded.reported_status, description = excluded.description,
    last_report_at = excluded.last_report_at, first_seen = least(c.first_seen, excluded.first_seen),
    service_name = coalesce(excluded.service_name, c.service_name), updated_at = excluded.updated_at
WHERE excluded.last_report_at >= c.last_report_at
"""

_COPY_CHANGES: Final = """
COPY component_health_changes (tenant_id, component, previous, status, at, description, recorded_at)
FROM STDIN
"""


def component_from_row(row: dict[str, Any]) -> Component:
    return Component(
        tenant_id=row["tenant_id"],
        name=row["name"],
        status=HealthStatus(row["status"]),
        reported_status=HealthStatus(row["reported_status"]),
        description=row["description"],
        last_report_at=row["last_report_at"],
        first_seen=row["first_seen"],
        service_name=row["service_name"],
        updated_at=row["updated_at"],
    )


def _values(c: Component) -> tuple[Any, ...]:
    return (
        c.tenant_id,
        c.name,
        c.status.value,
        c.reported_status.value,
        c.description,
        c.last_report_at,
        c.first_seen,
        c.service_name,
        c.updated_at,
    )


def _lock(cur: Any, keys: Sequence[ComponentKey]) -> dict[ComponentKey, Component]:
    cur.execute(_LOCK, ([k[0] for k in keys], [k[1] for k in keys]))
    return {(r["tenant_id"], r["name"]): component_from_row(r) for r in cur.fetchall()}


_TENANT_STATUSES: Final = "SELECT tenant_id, name, status FROM components WHERE tenant_id = ANY(%s)"


def _write(
    cur: Any, components: Sequence[Component], changes: Sequence[HealthChange], now: datetime
) -> None:
    if components:
        cur.execute(
            _UPSERT, [list(col) for col in zip(*(_values(c) for c in components), strict=True)]
        )
    if changes:
        tenants = sorted({ch.tenant_id for ch in changes})
        cur.execute(_TENANT_STATUSES, (tenants,))
        statuses: dict[str, dict[str, HealthStatus]] = {}
        for r in cur.fetchall():
            statuses.setdefault(r["tenant_id"], {})[r["name"]] = HealthStatus(r["status"])
        publish(cur.connection, health_status_changed(changes, statuses))
        with cur.copy(_COPY_CHANGES) as copy:
            for ch in changes:
                copy.write_row(
                    (
                        ch.tenant_id,
                        ch.component,
                        ch.previous.value,
                        ch.status.value,
                        ch.at,
                        ch.description,
                        now,
                    )
                )


def change_times(reports: Sequence[HealthReport], stale_after: timedelta) -> list[datetime]:
    """Times the batch's changes can have: a report's, or its turn to unknown."""
    return [r.at for r in reports] + [r.at + stale_after for r in reports]


def apply_health(
    cur: Any, reports: Sequence[HealthReport], stale_after: timedelta, now: datetime
) -> list[HealthChange]:
    """Derive and store one batch of health reports, inside the caller's transaction."""
    if not reports:
        return []
    grouped: dict[ComponentKey, list[HealthReport]] = defaultdict(list)
    for report in reports:
        grouped[(report.tenant_id, report.component)].append(report)
    keys = sorted(grouped)
    stored = _lock(cur, keys)
    written: list[Component] = []
    changes: list[HealthChange] = []
    for key in keys:
        before = stored.get(key)
        after, more = derive_all(before, grouped[key], stale_after, now)
        if after is not None and after != before:
            written.append(after)
            changes.extend(more)
    _write(cur, written, changes, now)
    return changes


@dataclass(frozen=True)
class HealthQuery:
    tenants: Sequence[str] | None = None
    component: str | None = None


class HealthStore:
    def __init__(
        self, pool: psycopg_pool.ConnectionPool, guard: PartitionGuard | None = None
    ) -> None:
        self._pool = pool
        self._guard = guard or PartitionGuard(pool)

    def components(self, query: HealthQuery) -> list[Component]:
        where, params = self._where(query, "name")
        with (
            translate_errors(),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            cur.execute(
                f"SELECT {_COLUMNS} FROM components {where} ORDER BY tenant_id, name", params
            )
            return [component_from_row(r) for r in cur.fetchall()]

    def history(self, query: HealthQuery, since: datetime, until: datetime) -> list[HealthChange]:
        """Changes within ``[since, until)``, oldest first."""
        where, params = self._where(query, "component")
        where = f"{where} {'AND' if where else 'WHERE'} at >= %(since)s AND at < %(until)s"
        params.update(since=since, until=until)
        with (
            translate_errors(),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            cur.execute(
                "SELECT tenant_id, component, previous, status, at, description "
                f"FROM component_health_changes {where} ORDER BY at, seq",
                params,
            )
            return [
                HealthChange(
                    tenant_id=r["tenant_id"],
                    component=r["component"],
                    previous=HealthStatus(r["previous"]),
                    status=HealthStatus(r["status"]),
                    at=r["at"],
                    description=r["description"],
                )
                for r in cur.fetchall()
            ]

    def expire(
        self, stale_after: timedelta, now: datetime, limit: int = 1000
    ) -> list[HealthChange]:
        """Record the turn to unknown of components silent for longer than ``stale_after``."""
        horizon = now - stale_after
        with translate_errors(), self._pool.connection() as conn:
            times = conn.execute(
                "SELECT last_report_at FROM components WHERE status <> 'unknown' "
                "AND last_report_at < %s LIMIT %s",
                (horizon, limit),
            ).fetchall()
        if not times:
            return []
        # partitions first: no DDL inside the claiming transaction
        self._guard.ensure({"component_health_changes": [t[0] + stale_after for t in times]})
        with (
            translate_errors(),
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=dict_row) as cur,
        ):
            cur.execute(
                f"SELECT {_COLUMNS} FROM components WHERE status <> 'unknown' "
                "AND last_report_at < %s ORDER BY tenant_id, name LIMIT %s "
                "FOR UPDATE SKIP LOCKED",
                (horizon, limit),
            )
            written: list[Component] = []
            changes: list[HealthChange] = []
            for row in cur.fetchall():
                after, more = expire(component_from_row(row), stale_after, now)
                written.append(after)
                changes.extend(more)
            _write(cur, written, changes, now)
            return changes

    @staticmethod
    def _where(query: HealthQuery, name_column: str) -> tuple[str, dict[str, Any]]:
        where: list[str] = []
        params: dict[str, Any] = {}
        if query.tenants is not None:
            where.append("tenant_id = ANY(%(tenants)s)")
            params["tenants"] = list(query.tenants)
        if query.component is not None:
            where.append(f"{name_column} = %(component)s")
            params["component"] = query.component
        return ("WHERE " + " AND ".join(where) if where else ""), params
