"""Alerts in Postgres (tables ``alerts``, ``alert_events``, ``alert_silences``, 0008).

``reconcile`` applies ``lifecycle.derive`` to every dedup key of a tenant in one
transaction: the alert rows, a history row per change, the notification outbox rows
of each change that pages, and the hub events, so that nothing is lost between
"stored" and "told". Operator acts (acknowledge, silence) go through the same rows,
with their audit row in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final

import psycopg
import psycopg_pool
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from b2c_monitoring.alerting.lifecycle import (
    AlertState,
    AlertStatus,
    Change,
    ChangeKind,
    Context,
    Window,
    acknowledge,
    derive,
    in_maintenance,
)
from b2c_monitoring.alerting.records import AlertRecord
from b2c_monitoring.alerting.rules import AlertKind, DesiredAlert, Severity
from b2c_monitoring.auth import Principal
from b2c_monitoring.errors import NotFound
from b2c_monitoring.storage import audit, notifications
from b2c_monitoring.storage.alert_hub import alert_events
from b2c_monitoring.storage.db import translate_errors

_COLUMNS: Final = (
    "id::text, tenant_id, rule_id::text, kind, dedup_key, state, severity, title, service_name, "
    "service_id::text, job_type, details, started_at, last_fired_at, fire_count, "
    "acknowledged_at, acknowledged_by, resolved_at, notified"
)


def _state(row: Mapping[str, Any], silenced_until: datetime | None = None) -> AlertState:
    return AlertState(
        id=row["id"],
        tenant_id=row["tenant_id"],
        rule_id=row["rule_id"],
        kind=AlertKind(row["kind"]),
        dedup_key=row["dedup_key"],
        status=AlertStatus(row["state"]),
        severity=Severity(row["severity"]),
        title=row["title"],
        started_at=row["started_at"],
        last_fired_at=row["last_fired_at"],
        service_name=row["service_name"],
        service_id=row["service_id"],
        job_type=row["job_type"],
        details=row["details"],
        fire_count=row["fire_count"],
        acknowledged_at=row["acknowledged_at"],
        acknowledged_by=row["acknowledged_by"],
        resolved_at=row["resolved_at"],
        notified=row["notified"],
        silenced_until=silenced_until,
    )


def _silences(conn: psycopg.Connection[Any], tenant_id: str, now: datetime) -> dict[str, datetime]:
    rows = conn.execute(
        "SELECT dedup_key, max(until) FROM alert_silences WHERE tenant_id = %s AND until > %s "
        "GROUP BY dedup_key",
        (tenant_id, now),
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def active_windows(conn: psycopg.Connection[Any], tenant_id: str, now: datetime) -> list[Window]:
    rows = conn.execute(
        "SELECT id::text, service_name, job_type, starts_at, ends_at FROM maintenance_windows "
        "WHERE tenant_id = %s AND starts_at <= %s AND ends_at > %s",
        (tenant_id, now, now),
    ).fetchall()
    return [Window(*r) for r in rows]


def _save(conn: psycopg.Connection[Any], alert: AlertState, now: datetime, insert: bool) -> None:
    values = {
        "id": alert.id,
        "tenant_id": alert.tenant_id,
        "rule_id": alert.rule_id,
        "kind": alert.kind.value,
        "dedup_key": alert.dedup_key,
        "state": alert.status.value,
        "severity": alert.severity.value,
        "title": alert.title,
        "service_name": alert.service_name,
        "service_id": alert.service_id,
        "job_type": alert.job_type,
        "details": Jsonb(dict(alert.details)),
        "started_at": alert.started_at,
        "last_fired_at": alert.last_fired_at,
        "fire_count": alert.fire_count,
        "acknowledged_at": alert.acknowledged_at,
        "acknowledged_by": alert.acknowledged_by,
        "resolved_at": alert.resolved_at,
        "notified": alert.notified,
        "updated_at": now,
    }
    if insert:
        cols = ", ".join(values)
        conn.execute(
            f"INSERT INTO alerts ({cols}) VALUES ({', '.join(f'%({c})s' for c in values)})",
            values,
        )
    else:
        sets = ", ".join(f"{c} = %({c})s" for c in values if c not in ("id", "tenant_id"))
        conn.execute(f"UPDATE alerts SET {sets} WHERE id = %(id)s", values)


def _record_changes(
    conn: psycopg.Connection[Any],
    alert: AlertState,
    changes: Sequence[Change],
    now: datetime,
) -> None:
    for change in changes:
        conn.execute(
            "INSERT INTO alert_events (alert_id, tenant_id, at, event, actor, details) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (
                alert.id,
                alert.tenant_id,
                now,
                change.kind.value,
                change.actor,
                Jsonb(dict(change.details)),
            ),
        )
        if change.notify:
            notifications.enqueue(conn, alert, change.kind, now)
    if changes:
        alert_events(conn, alert, changes)


@dataclass(frozen=True)
class AlertFilter:
    tenants: Sequence[str] | None  # None: every tenant
    states: Sequence[str] = ()
    severities: Sequence[str] = ()
    kinds: Sequence[str] = ()
    service: str | None = None
    before: tuple[datetime, str] | None = None  # (started_at, id) of the previous page's last
    limit: int = 50


@dataclass(frozen=True)
class AlertEvent:
    at: datetime
    event: str
    actor: str | None
    details: dict[str, Any]


PRUNE_BATCH: Final = 5_000


def prune_resolved(conn: psycopg.Connection[Any], resolved_before: datetime) -> int:
    """Delete the alerts resolved before ``resolved_before``, their history and their
    notifications (``ON DELETE CASCADE``); how many. Firing and acknowledged alerts are
    never deleted, nor one with a notification still to send. ``conn`` is in autocommit:
    each batch is a transaction of its own, so a backlog holds no lock for long."""
    deleted = 0
    while True:
        cur = conn.execute(
            "DELETE FROM alerts WHERE id IN ("
            " SELECT a.id FROM alerts a"
            " WHERE a.state = 'resolved' AND a.resolved_at < %s"
            " AND NOT EXISTS (SELECT 1 FROM notifications n"
            "  WHERE n.alert_id = a.id AND n.state IN ('pending', 'sending'))"
            " LIMIT %s FOR UPDATE SKIP LOCKED)",
            (resolved_before, PRUNE_BATCH),
        )
        deleted += cur.rowcount
        if cur.rowcount < PRUNE_BATCH:
            return deleted


class AlertStore:
    def __init__(self, pool: psycopg_pool.ConnectionPool) -> None:
        self._pool = pool

    # ---- the evaluator -------------------------------------------------------------

    def reconcile(
        self,
        tenant_id: str,
        desired: Mapping[str, DesiredAlert],
        now: datetime,
        hold: frozenset[AlertKind] = frozenset(),
    ) -> list[tuple[AlertState, list[Change]]]:
        """Bring the tenant's alerts in line with ``desired``, in one transaction.

        Open alerts of a kind in ``hold`` are left as they are when not desired: their
        facts could not be read this round, so their absence means nothing."""
        done: list[tuple[AlertState, list[Change]]] = []
        with translate_errors(), self._pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            # one reconciler per tenant at a time; acknowledgements wait on the row locks
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('b2c-alerts:' || %s))", (tenant_id,)
            )
            open_rows = cur.execute(
                f"SELECT {_COLUMNS} FROM alerts WHERE tenant_id = %s AND state <> 'resolved' "
                "FOR UPDATE",
                (tenant_id,),
            ).fetchall()
            current: dict[str, AlertState] = {r["dedup_key"]: _state(r) for r in open_rows}
            fresh = [k for k in desired if k not in current]
            if fresh:
                for r in cur.execute(
                    f"SELECT DISTINCT ON (dedup_key) {_COLUMNS} FROM alerts "
                    "WHERE tenant_id = %s AND dedup_key = ANY(%s) AND state = 'resolved' "
                    "ORDER BY dedup_key, resolved_at DESC",
                    (tenant_id, fresh),
                ).fetchall():
                    current[r["dedup_key"]] = _state(r)
            silences = _silences(conn, tenant_id, now)
            windows = active_windows(conn, tenant_id, now)
            for key in sorted(set(current) | set(desired)):
                before = current.get(key)
                want = desired.get(key)
                if want is None and before is not None and before.kind in hold:
                    continue
                ctx = Context(
                    now=now,
                    tenant_id=tenant_id,
                    new_id=str(uuid.uuid4()),
                    silenced=key in silences,
                    in_maintenance=want is not None and in_maintenance(want, windows, now),
                )
                after, changes = derive(before, want, ctx)
                if after is None or (after == before and not changes):
                    continue
                after_shown = replace(after, silenced_until=silences.get(key))
                _save(conn, after, now, insert=before is None or after.id != before.id)
                _record_changes(conn, after_shown, changes, now)
                if changes:
                    done.append((after_shown, changes))
        return done

    # ---- the API -------------------------------------------------------------------

    def page(
        self, query: AlertFilter, now: datetime
    ) -> tuple[list[AlertRecord], tuple[datetime, str] | None]:
        where: list[str] = []
        params: dict[str, Any] = {"limit": query.limit + 1, "now": now}
        if query.tenants is not None:
            where.append("a.tenant_id = ANY(%(tenants)s)")
            params["tenants"] = list(query.tenants)
        for column, values in (
            ("state", query.states),
            ("severity", query.severities),
            ("kind", query.kinds),
        ):
            if values:
                where.append(f"a.{column} = ANY(%({column})s)")
                params[column] = list(values)
        if query.service is not None:
            where.append("a.service_name = %(service)s")
            params["service"] = query.service
        if query.before is not None:
            where.append("(a.started_at, a.id) < (%(b_at)s, %(b_id)s::uuid)")
            params["b_at"], params["b_id"] = query.before
        sql = (
            f"SELECT {', '.join('a.' + c.strip() for c in _COLUMNS.split(','))}, "
            "(SELECT max(until) FROM alert_silences s WHERE s.tenant_id = a.tenant_id "
            " AND s.dedup_key = a.dedup_key AND s.until > %(now)s) AS silenced_until "
            f"FROM alerts a {'WHERE ' + ' AND '.join(where) if where else ''} "
            "ORDER BY a.started_at DESC, a.id DESC LIMIT %(limit)s"
        )
        with (
            translate_errors(),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            rows = cur.execute(sql, params).fetchall()
        records = [AlertRecord.of(_state(r, r["silenced_until"])) for r in rows[: query.limit]]
        if len(rows) <= query.limit:
            return records, None
        last = records[-1]
        return records, (last.started_at, last.id)

    def _get(
        self,
        conn: psycopg.Connection[Any],
        alert_id: str,
        tenants: Sequence[str] | None,
        lock: bool,
    ) -> AlertState:
        try:
            uuid.UUID(alert_id)
        except ValueError:
            raise NotFound(f"no alert {alert_id!r} in your tenants") from None
        with conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(
                f"SELECT {_COLUMNS} FROM alerts WHERE id = %s {'FOR UPDATE' if lock else ''}",
                (alert_id,),
            ).fetchone()
        if row is None or (tenants is not None and row["tenant_id"] not in tenants):
            # another tenant's alert answers exactly like an absent one
            raise NotFound(f"no alert {alert_id!r} in your tenants")
        return _state(row)

    def get(
        self, alert_id: str, tenants: Sequence[str] | None, now: datetime
    ) -> tuple[AlertRecord, list[AlertEvent]]:
        with translate_errors(), self._pool.connection() as conn:
            alert = self._get(conn, alert_id, tenants, lock=False)
            until = _silences(conn, alert.tenant_id, now).get(alert.dedup_key)
            events = [
                AlertEvent(*r)
                for r in conn.execute(
                    "SELECT at, event, actor, details FROM alert_events WHERE alert_id = %s "
                    "ORDER BY seq",
                    (alert_id,),
                ).fetchall()
            ]
        return AlertRecord.of(replace(alert, silenced_until=until)), events

    def acknowledge(self, alert_id: str, principal: Principal, now: datetime) -> AlertRecord:
        with translate_errors(), self._pool.connection() as conn, conn.transaction():
            alert = self._get(conn, alert_id, principal.scope(), lock=True)
            acked, changes = acknowledge(alert, principal.name, now)
            until = _silences(conn, alert.tenant_id, now).get(alert.dedup_key)
            acked = replace(acked, silenced_until=until)
            if changes:
                _save(conn, acked, now, insert=False)
                _record_changes(conn, acked, changes, now)
                audit.record(
                    conn,
                    audit.AuditEntry.by(
                        principal,
                        "alert.acknowledge",
                        alert.id,
                        at=now,
                        tenant_id=alert.tenant_id,
                        details={"dedupKey": alert.dedup_key},
                    ),
                )
        return AlertRecord.of(acked)

    def silence(
        self,
        alert_id: str,
        principal: Principal,
        duration: timedelta,
        reason: str | None,
        now: datetime,
    ) -> AlertRecord:
        """Mute the notifications of the alert's condition until ``now + duration``."""
        with translate_errors(), self._pool.connection() as conn, conn.transaction():
            alert = self._get(conn, alert_id, principal.scope(), lock=True)
            until = now + duration
            conn.execute(
                "INSERT INTO alert_silences (id, tenant_id, dedup_key, until, created_by, reason, "
                "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    str(uuid.uuid4()),
                    alert.tenant_id,
                    alert.dedup_key,
                    until,
                    principal.name,
                    reason,
                    now,
                ),
            )
            until = _silences(conn, alert.tenant_id, now)[alert.dedup_key]
            shown = replace(alert, silenced_until=until)
            _record_changes(
                conn,
                shown,
                [
                    Change(
                        ChangeKind.SILENCED,
                        actor=principal.name,
                        details={"until": until.isoformat(), "reason": reason},
                    )
                ],
                now,
            )
            audit.record(
                conn,
                audit.AuditEntry.by(
                    principal,
                    "alert.silence",
                    alert.id,
                    at=now,
                    tenant_id=alert.tenant_id,
                    details={
                        "until": until.isoformat(),
                        "reason": reason,
                        "dedupKey": alert.dedup_key,
                    },
                ),
            )
        return AlertRecord.of(shown)
