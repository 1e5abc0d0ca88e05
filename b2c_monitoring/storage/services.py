"""Connected services in Postgres: checks applied in batches, declarations, reads.

``apply_checks`` runs inside the caller's transaction (one per export request,
``storage/metrics.py``), in the same steps as ``storage/jobs.py``: lock the batch's
services in key order, derive in Python (``processors/services.py``), insert the new
ones (``ON CONFLICT DO NOTHING``; a service another replica inserted meanwhile is
locked and re-derived), update the changed ones, then append the status changes and
the checks at full resolution.

Checks older than the full-resolution retention still move nothing (they are late)
and are not kept as samples: their partition is gone or about to go.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

import psycopg_pool
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from b2c_monitoring.auth import Principal
from b2c_monitoring.live_events import service_status_changed
from b2c_monitoring.processors.services import (
    CheckReport,
    DampingPolicy,
    DeclaredCheck,
    Service,
    ServiceStatus,
    ServiceType,
    StatusChange,
    derive_all,
    new_service,
    observe,
)
from b2c_monitoring.redaction import redact
from b2c_monitoring.storage import audit
from b2c_monitoring.storage.db import retry_conflicts, translate_errors
from b2c_monitoring.storage.hub_events import publish
from b2c_monitoring.storage.partitions import PartitionGuard, Retention, Tier, mark_late, tiers

ServiceKey = tuple[str, str]  # tenant, name

_COLUMNS: Final = (
    "tenant_id, name, service_type, endpoint, status, first_seen, last_checked, "
    "last_successful, last_latency_s, last_error, last_observed, streak, answering_streak, "
    "recent_latencies, declared, check_spec, updated_at"
)
_ARRAYS: Final = (
    "%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[], "
    "%s::timestamptz[], %s::timestamptz[], %s::float8[], %s::text[], %s::text[], %s::int[], "
    "%s::int[], %s::jsonb[], %s::bool[], %s::jsonb[], %s::timestamptz[]"
)
_SELECT: Final = f"SELECT id, {_COLUMNS} FROM services"

_LOCK: Final = f"""
{_SELECT}
WHERE (tenant_id, name) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
ORDER BY tenant_id, name
FOR UPDATE
"""

_INSERT: Final = f"""
INSERT INTO services ({_COLUMNS})
SELECT * FROM unnest({_ARRAYS})
ON CONFLICT (tenant_id, name) DO NOTHING
RETURNING id, {_COLUMNS}
"""

_UPDATE: Final = f"""
UPDATE services AS s SET service_type = u.service_type, endpoint = u.endpoint,
    status = u.status, first_seen = u.first_seen, last_checked = u.last_checked,
    last_successful = u.last_successful, last_latency_s = u.last_latency_s,
    last_error = u.last_error, last_observed = u.last_observed, streak = u.streak,
    answering_streak = u.answering_streak, recent_latencies = u.recent_latencies,
    declared = u.declared, check_spec = u.check_spec, updated_at = u.updated_at
FROM unnest({_ARRAYS}) AS u({_COLUMNS})
WHERE s.tenant_id = u.tenant_id AND s.name = u.name
"""

_COPY_CHANGES: Final = """
COPY service_status_changes (service_id, tenant_id, previous, status, at, reason, recorded_at)
FROM STDIN
"""

_INSERT_CHECKS: Final = """
INSERT INTO service_checks (service_id, at, up, observed, latency_s, source, error)
SELECT * FROM unnest(%s::uuid[], %s::timestamptz[], %s::bool[], %s::text[], %s::float8[],
    %s::text[], %s::text[])
ON CONFLICT (service_id, at) DO NOTHING
"""


@dataclass(frozen=True)
class AppliedChecks:
    services_written: int
    changes: list[StatusChange]
    samples: int


def check_to_json(check: DeclaredCheck | None) -> Jsonb | None:
    if check is None:
        return None
    return Jsonb(
        {
            "kind": check.kind,
            "target": check.target,
            "timeout_s": check.timeout_s,
            "expect_status": check.expect_status,
            "degraded_after_s": check.degraded_after_s,
        }
    )


def check_from_json(data: dict[str, Any] | None) -> DeclaredCheck | None:
    if not data:
        return None
    return DeclaredCheck(
        kind=data["kind"],
        target=data["target"],
        timeout_s=data.get("timeout_s", 5.0),
        expect_status=data.get("expect_status"),
        degraded_after_s=data.get("degraded_after_s"),
    )


def service_from_row(row: dict[str, Any]) -> Service:
    return Service(
        id=str(row["id"]),
        tenant_id=row["tenant_id"],
        name=row["name"],
        service_type=ServiceType(row["service_type"]),
        endpoint=row["endpoint"],
        status=ServiceStatus(row["status"]),
        first_seen=row["first_seen"],
        last_checked=row["last_checked"],
        last_successful=row["last_successful"],
        last_latency_s=row["last_latency_s"],
        last_error=row["last_error"],
        last_observed=ServiceStatus(row["last_observed"]) if row["last_observed"] else None,
        streak=row["streak"],
        answering_streak=row["answering_streak"],
        recent_latencies=tuple(row["recent_latencies"]),
        declared=row["declared"],
        check=check_from_json(row["check_spec"]),
        updated_at=row["updated_at"],
    )


def _values(s: Service) -> tuple[Any, ...]:
    return (
        s.tenant_id,
        s.name,
        s.service_type.value,
        s.endpoint,
        s.status.value,
        s.first_seen,
        s.last_checked,
        s.last_successful,
        s.last_latency_s,
        s.last_error,
        s.last_observed.value if s.last_observed else None,
        s.streak,
        s.answering_streak,
        Jsonb(list(s.recent_latencies)),
        s.declared,
        check_to_json(s.check),
        s.updated_at,
    )


def _columns(services: Sequence[Service]) -> list[list[Any]]:
    return [list(col) for col in zip(*(_values(s) for s in services), strict=True)]


def _lock(cur: Any, keys: Sequence[ServiceKey]) -> dict[ServiceKey, Service]:
    cur.execute(_LOCK, ([k[0] for k in keys], [k[1] for k in keys]))
    return {(r["tenant_id"], r["name"]): service_from_row(r) for r in cur.fetchall()}


def sample_times(
    reports: Sequence[CheckReport], now: datetime, retention: Retention
) -> list[datetime]:
    oldest = now - retention.raw
    return [r.at for r in reports if r.at >= oldest]


def write_services(
    cur: Any, services: Sequence[Service], existing: set[ServiceKey]
) -> dict[ServiceKey, str]:
    """Insert or update ``services``; the ids of those written (an insert that lost a race
    to another replica is not written and not returned)."""
    ids: dict[ServiceKey, str] = {}
    updates = [s for s in services if (s.tenant_id, s.name) in existing]
    inserts = [s for s in services if (s.tenant_id, s.name) not in existing]
    if updates:
        cur.execute(_UPDATE, _columns(updates))
        ids.update({(s.tenant_id, s.name): s.id for s in updates if s.id is not None})
    if inserts:
        cur.execute(_INSERT, _columns(inserts))
        ids.update({(r["tenant_id"], r["name"]): str(r["id"]) for r in cur.fetchall()})
    return ids


def apply_checks(
    cur: Any,
    reports: Sequence[CheckReport],
    policy: DampingPolicy,
    retention: Retention,
    now: datetime,
) -> AppliedChecks:
    """Derive and store one batch of checks, inside the caller's transaction."""
    if not reports:
        return AppliedChecks(0, [], 0)
    grouped: dict[ServiceKey, list[CheckReport]] = defaultdict(list)
    for report in reports:
        grouped[(report.tenant_id, report.service_name)].append(report)
    keys = sorted(grouped)
    stored = _lock(cur, keys)
    derived: dict[ServiceKey, tuple[Service, list[StatusChange]]] = {}

    def derive_keys(keys: Sequence[ServiceKey]) -> None:
        for key in keys:
            before = stored.get(key)
            after, changes = derive_all(before, grouped[key], policy, now)
            assert after is not None
            derived[key] = (after, changes)

    derive_keys(keys)
    to_write = [s for key, (s, _) in derived.items() if s != stored.get(key)]
    ids = write_services(cur, to_write, set(stored))
    raced = [k for k in keys if k not in stored and k not in ids]
    if raced:
        # another replica inserted these first: merge onto its rows instead
        stored.update(_lock(cur, raced))
        derive_keys(raced)
        ids.update(write_services(cur, [derived[k][0] for k in raced], set(raced)))
    for key, service in stored.items():
        if service.id is not None:
            ids.setdefault(key, service.id)

    changes = [c for key in keys for c in derived[key][1]]
    if changes:
        with cur.copy(_COPY_CHANGES) as copy:
            for c in changes:
                copy.write_row(
                    (
                        ids[(c.tenant_id, c.service_name)],
                        c.tenant_id,
                        c.previous.value,
                        c.status.value,
                        c.at,
                        c.reason,
                        now,
                    )
                )
        publish(cur.connection, service_status_changed(changes, ids))
    oldest = now - retention.raw
    rows = []
    for key in keys:
        service = derived[key][0]
        threshold = service.threshold(policy)
        for r in grouped[key]:
            if r.at >= oldest:
                observed = observe(r, threshold)
                rows.append(
                    (
                        ids[key],
                        r.at,
                        r.up,
                        observed.value if observed else None,
                        r.latency_s,
                        r.source.value,
                        r.error,
                    )
                )
    if rows:
        cur.execute(_INSERT_CHECKS, [list(col) for col in zip(*rows, strict=True)])
        mark_late(cur, "service_checks", min(row[1] for row in rows))
    return AppliedChecks(len(to_write), changes, len(rows))


# Reads


Resolution = Tier
RESOLUTION_SECONDS: Final[dict[Resolution, int]] = {"raw": 0, "5m": 300, "1h": 3600}


@dataclass(frozen=True)
class LatencyPoint:
    at: datetime
    resolution: Resolution
    checks: int
    up_checks: int
    latency_count: int
    average_s: float | None
    min_s: float | None
    max_s: float | None


@dataclass(frozen=True)
class ServiceQuery:
    tenants: Sequence[str] | None = None  # None: every tenant
    statuses: Sequence[ServiceStatus] = ()
    service_type: ServiceType | None = None
    after: tuple[str, str] | None = None  # (tenant, name) of the previous page's last
    limit: int | None = None  # None: all


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


class ServiceStore:
    def __init__(
        self,
        pool: psycopg_pool.ConnectionPool,
        policy: DampingPolicy,
        retention: Retention,
        guard: PartitionGuard | None = None,
    ) -> None:
        self._pool = pool
        self.policy = policy
        self.retention = retention
        self._guard = guard or PartitionGuard(pool)

    # writes

    def record(
        self, reports: Sequence[CheckReport], now: datetime, *, actor: Principal | None = None
    ) -> AppliedChecks:
        """Derive and store checks in a transaction of their own (central tests).
        ``actor``: the operator who ran them (the connection test), audited in the same
        transaction (``None``: the scheduled checks of the stack itself)."""
        self._guard.ensure(
            {
                "service_status_changes": [r.at for r in reports],
                "service_checks": sample_times(reports, now, self.retention),
            }
        )

        def once() -> AppliedChecks:
            with (
                self._pool.connection() as conn,
                conn.transaction(),
                conn.cursor(row_factory=dict_row) as cur,
            ):
                applied = apply_checks(cur, reports, self.policy, self.retention, now)
                if actor is not None:
                    for report in reports:
                        audit.record(conn, _test_entry(actor, report, now))
                return applied

        result: AppliedChecks = retry_conflicts(once)
        return result

    def declare(
        self,
        tenant_id: str,
        name: str,
        service_type: ServiceType,
        endpoint: str | None,
        check: DeclaredCheck | None,
        now: datetime,
        *,
        actor: Principal | None = None,
    ) -> tuple[Service, bool]:
        """Declare a service, or its check (an existing one keeps its status and history).

        Returns the service and whether it was created. ``actor``: the admin who asked,
        audited in the same transaction (``None``: the services file read at start).
        """

        def once() -> tuple[Service, bool]:
            with (
                self._pool.connection() as conn,
                conn.transaction(),
                conn.cursor(row_factory=dict_row) as cur,
            ):
                stored = _lock(cur, [(tenant_id, name)]).get((tenant_id, name))
                base = stored or new_service(tenant_id, name, now)
                service = replace(
                    base,
                    service_type=service_type,
                    endpoint=endpoint or base.endpoint,
                    declared=True,
                    check=check,
                    updated_at=now,
                )
                ids = write_services(cur, [service], {(tenant_id, name)} if stored else set())
                if (tenant_id, name) not in ids:
                    # inserted by a report meanwhile: declare onto that row
                    stored = _lock(cur, [(tenant_id, name)])[(tenant_id, name)]
                    service = replace(
                        stored,
                        service_type=service_type,
                        endpoint=endpoint or stored.endpoint,
                        declared=True,
                        check=check,
                        updated_at=now,
                    )
                    ids = write_services(cur, [service], {(tenant_id, name)})
                if actor is not None:
                    audit.record(
                        conn,
                        audit.AuditEntry.by(
                            actor,
                            "service.declare",
                            name,
                            at=now,
                            tenant_id=tenant_id,
                            details={
                                "type": service_type.value,
                                "endpoint": redact(endpoint) if endpoint else None,
                                "check": check.kind if check is not None else None,
                                "created": stored is None,
                            },
                        ),
                    )
                return replace(service, id=ids[(tenant_id, name)]), stored is None

        result: tuple[Service, bool] = retry_conflicts(once)
        return result

    # reads

    def select(self, query: ServiceQuery) -> list[Service]:
        where: list[str] = []
        params: dict[str, Any] = {}
        if query.tenants is not None:
            where.append("tenant_id = ANY(%(tenants)s)")
            params["tenants"] = list(query.tenants)
        if query.statuses:
            where.append("status = ANY(%(statuses)s)")
            params["statuses"] = [s.value for s in query.statuses]
        if query.service_type is not None:
            where.append("service_type = %(type)s")
            params["type"] = query.service_type.value
        if query.after is not None:
            where.append("(tenant_id, name) > (%(after_tenant)s, %(after_name)s)")
            params["after_tenant"], params["after_name"] = query.after
        sql = (
            f"{_SELECT} {'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY tenant_id, name"
        )
        if query.limit is not None:
            sql += " LIMIT %(limit)s"
            params["limit"] = query.limit
        with (
            translate_errors(),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            cur.execute(sql, params)
            return [service_from_row(r) for r in cur.fetchall()]

    def find(self, ref: str, tenants: Sequence[str] | None) -> list[Service]:
        """The services ``ref`` names in the given tenants: its id, or its name."""
        by = "(id = %(id)s OR name = %(ref)s)" if _is_uuid(ref) else "name = %(ref)s"
        params: dict[str, Any] = {"ref": ref, "id": ref if _is_uuid(ref) else None}
        sql = f"{_SELECT} WHERE {by}"
        if tenants is not None:
            sql += " AND tenant_id = ANY(%(tenants)s)"
            params["tenants"] = list(tenants)
        with (
            translate_errors(),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            cur.execute(sql + " ORDER BY tenant_id", params)
            return [service_from_row(r) for r in cur.fetchall()]

    def changes(self, service_ids: Sequence[str], since: datetime) -> dict[str, list[StatusChange]]:
        """Status changes after ``since`` of each service, oldest first."""
        found: dict[str, list[StatusChange]] = {i: [] for i in service_ids}
        if not service_ids:
            return found
        with (
            translate_errors(),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            cur.execute(
                "SELECT c.service_id, c.tenant_id, s.name, c.previous, c.status, c.at, c.reason "
                "FROM service_status_changes c JOIN services s ON s.id = c.service_id "
                "WHERE c.service_id = ANY(%s::uuid[]) AND c.at > %s ORDER BY c.service_id, c.at, c.seq",
                (list(service_ids), since),
            )
            for r in cur.fetchall():
                found[str(r["service_id"])].append(
                    StatusChange(
                        tenant_id=r["tenant_id"],
                        service_name=r["name"],
                        previous=ServiceStatus(r["previous"]),
                        status=ServiceStatus(r["status"]),
                        at=r["at"],
                        reason=r["reason"],
                    )
                )
        return found

    def latency(
        self, service_id: str, since: datetime, until: datetime, resolution: Resolution
    ) -> list[LatencyPoint]:
        """Checks of ``[since, until)`` at one resolution, oldest first."""
        if since >= until:
            return []
        if resolution == "raw":
            sql = (
                "SELECT at, 1 AS checks, (up IS TRUE)::int AS up_checks, "
                "(latency_s IS NOT NULL)::int AS latency_count, latency_s AS average_s, "
                "latency_s AS min_s, latency_s AS max_s, (up IS NOT NULL) AS has_up "
                "FROM service_checks WHERE service_id = %s AND at >= %s AND at < %s ORDER BY at"
            )
        else:
            table = "service_checks_5m" if resolution == "5m" else "service_checks_1h"
            sql = (
                "SELECT bucket AS at, checks, up_checks, latency_count, "
                "CASE WHEN latency_count > 0 THEN latency_sum / latency_count END AS average_s, "
                "latency_min AS min_s, latency_max AS max_s, true AS has_up "
                f"FROM {table} WHERE service_id = %s AND bucket >= %s AND bucket < %s ORDER BY bucket"
            )
        with (
            translate_errors(),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            cur.execute(sql, (service_id, since, until))
            return [
                LatencyPoint(
                    at=r["at"],
                    resolution=resolution,
                    checks=r["checks"] if r["has_up"] else 0,
                    up_checks=r["up_checks"],
                    latency_count=r["latency_count"],
                    average_s=r["average_s"],
                    min_s=r["min_s"],
                    max_s=r["max_s"],
                )
                for r in cur.fetchall()
            ]

    def latency_history(
        self, service_id: str, since: datetime, until: datetime, now: datetime
    ) -> list[LatencyPoint]:
        """Each check of the last 24 hours, rollups before it (``partitions.tiers``)."""
        points: list[LatencyPoint] = []
        for start, end, resolution in tiers(since, until, now, self.retention):
            points += self.latency(service_id, start, end, resolution)
        return points

    def counts(self, tenants: Sequence[str] | None) -> dict[ServiceStatus, int]:
        """How many services are in each status."""
        sql = "SELECT status, count(*) FROM services"
        params: list[Any] = []
        if tenants is not None:
            sql += " WHERE tenant_id = ANY(%s)"
            params.append(list(tenants))
        with translate_errors(), self._pool.connection() as conn:
            rows = conn.execute(sql + " GROUP BY status", params).fetchall()
        found = {status: 0 for status in ServiceStatus}
        found.update({ServiceStatus(status): n for status, n in rows})
        return found


def _test_entry(actor: Principal, report: CheckReport, now: datetime) -> audit.AuditEntry:
    return audit.AuditEntry.by(
        actor,
        "service.test",
        report.service_name,
        at=now,
        tenant_id=report.tenant_id,
        details={
            "up": report.up,
            "latencyMs": None if report.latency_s is None else round(report.latency_s * 1000, 3),
            # a driver's error may quote the target's URL, password and all
            "error": redact(report.error) if report.error else None,
        },
    )


# Discovery: a service is known from its first report of any kind (telemetry contract),
# not only from its checks: a communication error or a log line naming it (the
# collector routes a copy of those records' identity to the processor), or resource
# metrics under its name.

_DISCOVER: Final = """
INSERT INTO services (tenant_id, name, service_type, endpoint, status, first_seen, updated_at)
SELECT t, n, ty, e, 'unknown', now_, now_
FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) AS u(t, n, ty, e),
    (SELECT %s::timestamptz AS now_) AS c
ORDER BY t, n
ON CONFLICT (tenant_id, name) DO NOTHING
"""
# an address learnt later fills an endpoint nobody stated; never overwrites one
_FILL_ENDPOINT: Final = """
UPDATE services AS s SET endpoint = u.e, updated_at = %s
FROM unnest(%s::text[], %s::text[], %s::text[]) AS u(t, n, e)
WHERE s.tenant_id = u.t AND s.name = u.n AND s.endpoint IS NULL
"""


@dataclass(frozen=True)
class Discovered:
    tenant_id: str
    name: str
    service_type: ServiceType = ServiceType.OTHER
    endpoint: str | None = None


def discover(cur: Any, found: Sequence[Discovered], now: datetime) -> None:
    """Make ``found`` known (status unknown until a check says otherwise), inside the
    caller's transaction; one row a service, whatever the batch repeats."""
    unique: dict[ServiceKey, Discovered] = {}
    for d in found:
        before = unique.get((d.tenant_id, d.name))
        if before is None or (before.endpoint is None and d.endpoint is not None):
            unique[(d.tenant_id, d.name)] = d
    if not unique:
        return
    rows = [unique[k] for k in sorted(unique)]
    cur.execute(
        _DISCOVER,
        (
            [d.tenant_id for d in rows],
            [d.name for d in rows],
            [d.service_type.value for d in rows],
            [d.endpoint for d in rows],
            now,
        ),
    )
    addressed = [d for d in rows if d.endpoint is not None]
    if addressed:
        cur.execute(
            _FILL_ENDPOINT,
            (
                now,
                [d.tenant_id for d in addressed],
                [d.name for d in addressed],
                [d.endpoint for d in addressed],
            ),
        )
