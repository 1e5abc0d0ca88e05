"""What operators configure for alerting (0008): rules, notification channels,
maintenance windows and job schedules, per tenant. Every change writes its audit row
in its own transaction; another tenant's object answers ``NotFound``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

import psycopg
import psycopg_pool
from psycopg.types.json import Jsonb
from pydantic import TypeAdapter

from b2c_monitoring.alerting.channels import ChannelKind
from b2c_monitoring.alerting.rules import Condition, Rule, Severity
from b2c_monitoring.alerting.schedules import Schedule
from b2c_monitoring.auth import Principal
from b2c_monitoring.errors import Conflict, NotFound
from b2c_monitoring.storage import audit
from b2c_monitoring.storage.audit import JsonScalar
from b2c_monitoring.storage.db import translate_errors

_CONDITION: Final = TypeAdapter[Condition](Condition)


def _uuid_or_missing(value: str, what: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise NotFound(f"no {what} {value!r} in your tenants") from None


def _audit(
    conn: psycopg.Connection[Any],
    principal: Principal,
    action: str,
    target: str,
    tenant_id: str,
    now: datetime,
    details: Mapping[str, JsonScalar] | None = None,
) -> None:
    audit.record(
        conn,
        audit.AuditEntry.by(
            principal, action, target, at=now, tenant_id=tenant_id, details=details
        ),
    )


def _rule(row: Sequence[Any]) -> Rule:
    rid, tenant, name, severity, params, cooldown, enabled, created_at = row
    condition = _CONDITION.validate_python(params)
    return Rule(rid, tenant, name, Severity(severity), condition, cooldown, enabled, created_at)


_RULE_COLS: Final = "id::text, tenant_id, name, severity, params, cooldown, enabled, created_at"


@dataclass(frozen=True)
class ChannelRecord:
    id: str
    tenant_id: str
    name: str
    kind: ChannelKind
    config: dict[str, Any]
    has_secret: bool
    min_severity: Severity
    enabled: bool
    created_at: datetime


@dataclass(frozen=True)
class WindowRecord:
    id: str
    tenant_id: str
    service_name: str | None
    job_type: str | None
    starts_at: datetime
    ends_at: datetime
    reason: str | None
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class ScheduleRecord:
    tenant_id: str
    schedule: Schedule


class AlertConfigStore:
    def __init__(self, pool: psycopg_pool.ConnectionPool) -> None:
        self._pool = pool

    # ---- rules ---------------------------------------------------------------------

    def rules(self, tenants: Sequence[str] | None) -> list[Rule]:
        with translate_errors(), self._pool.connection() as conn:
            rows = conn.execute(
                f"SELECT {_RULE_COLS} FROM alert_rules "
                "WHERE %(t)s::text[] IS NULL OR tenant_id = ANY(%(t)s) ORDER BY tenant_id, name",
                {"t": None if tenants is None else list(tenants)},
            ).fetchall()
        return [_rule(r) for r in rows]

    def rule(self, rule_id: str, tenants: Sequence[str] | None) -> Rule:
        rid = _uuid_or_missing(rule_id, "alert rule")
        with translate_errors(), self._pool.connection() as conn:
            row = conn.execute(
                f"SELECT {_RULE_COLS} FROM alert_rules WHERE id = %s", (rid,)
            ).fetchone()
        if row is None or (tenants is not None and row[1] not in tenants):
            raise NotFound(f"no alert rule {rule_id!r} in your tenants")
        return _rule(row)

    def create_rule(self, rule: Rule, principal: Principal, now: datetime) -> Rule:
        with translate_errors(), self._pool.connection() as conn, conn.transaction():
            inserted = conn.execute(
                "INSERT INTO alert_rules (id, tenant_id, name, kind, severity, params, cooldown, "
                "enabled, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (tenant_id, name) DO NOTHING RETURNING id",
                (
                    rule.id,
                    rule.tenant_id,
                    rule.name,
                    rule.kind.value,
                    rule.severity.value,
                    Jsonb(rule.condition.model_dump(mode="json", by_alias=True)),
                    rule.cooldown,
                    rule.enabled,
                    now,
                    now,
                ),
            ).fetchone()
            if inserted is None:
                raise Conflict(f"tenant {rule.tenant_id!r} has a rule named {rule.name!r} already")
            _audit(
                conn,
                principal,
                "alert_rule.create",
                rule.id,
                rule.tenant_id,
                now,
                {"name": rule.name, "kind": rule.kind.value},
            )
        return replace(rule, created_at=now)

    def delete_rule(self, rule_id: str, principal: Principal, now: datetime) -> None:
        rule = self.rule(rule_id, principal.scope())
        with translate_errors(), self._pool.connection() as conn, conn.transaction():
            conn.execute("DELETE FROM alert_rules WHERE id = %s", (rule.id,))
            _audit(
                conn,
                principal,
                "alert_rule.delete",
                rule.id,
                rule.tenant_id,
                now,
                {"name": rule.name},
            )

    def tenants_to_evaluate(self) -> list[str]:
        """Tenants with a rule, a schedule or an open alert (which may have to resolve)."""
        with translate_errors(), self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT tenant_id FROM alert_rules UNION SELECT tenant_id FROM job_schedules "
                "UNION SELECT DISTINCT tenant_id FROM alerts WHERE state <> 'resolved'"
            ).fetchall()
        return sorted(r[0] for r in rows)

    # ---- notification channels -------------------------------------------------------

    def channels(self, tenants: Sequence[str] | None) -> list[ChannelRecord]:
        with translate_errors(), self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT id::text, tenant_id, name, kind, config, secret IS NOT NULL, min_severity, "
                "enabled, created_at FROM notification_channels "
                "WHERE %(t)s::text[] IS NULL OR tenant_id = ANY(%(t)s) ORDER BY tenant_id, name",
                {"t": None if tenants is None else list(tenants)},
            ).fetchall()
        return [
            ChannelRecord(
                r[0], r[1], r[2], ChannelKind(r[3]), r[4], r[5], Severity(r[6]), r[7], r[8]
            )
            for r in rows
        ]

    def create_channel(
        self,
        tenant_id: str,
        name: str,
        kind: ChannelKind,
        config: dict[str, Any],
        secret: str | None,
        min_severity: Severity,
        principal: Principal,
        now: datetime,
    ) -> ChannelRecord:
        cid = str(uuid.uuid4())
        with translate_errors(), self._pool.connection() as conn, conn.transaction():
            inserted = conn.execute(
                "INSERT INTO notification_channels (id, tenant_id, name, kind, config, secret, "
                "min_severity, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (tenant_id, name) DO NOTHING RETURNING id",
                (cid, tenant_id, name, kind.value, Jsonb(config), secret, min_severity.value, now),
            ).fetchone()
            if inserted is None:
                raise Conflict(f"tenant {tenant_id!r} has a channel named {name!r} already")
            # the secret never reaches the audit log
            _audit(
                conn,
                principal,
                "notification_channel.create",
                cid,
                tenant_id,
                now,
                {"name": name, "kind": kind.value},
            )
        return ChannelRecord(
            cid, tenant_id, name, kind, config, secret is not None, min_severity, True, now
        )

    def delete_channel(self, channel_id: str, principal: Principal, now: datetime) -> None:
        cid = _uuid_or_missing(channel_id, "notification channel")
        tenants = principal.scope()
        with translate_errors(), self._pool.connection() as conn, conn.transaction():
            row = conn.execute(
                "DELETE FROM notification_channels WHERE id = %s "
                "AND (%s::text[] IS NULL OR tenant_id = ANY(%s)) RETURNING tenant_id, name",
                (cid, tenants, tenants),
            ).fetchone()
            if row is None:
                raise NotFound(f"no notification channel {channel_id!r} in your tenants")
            _audit(
                conn, principal, "notification_channel.delete", cid, row[0], now, {"name": row[1]}
            )

    # ---- maintenance windows -----------------------------------------------------------

    def windows(
        self, tenants: Sequence[str] | None, *, ending_after: datetime | None = None
    ) -> list[WindowRecord]:
        with translate_errors(), self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT id::text, tenant_id, service_name, job_type, starts_at, ends_at, reason, "
                "created_by, created_at FROM maintenance_windows "
                "WHERE (%(t)s::text[] IS NULL OR tenant_id = ANY(%(t)s)) "
                "AND (%(after)s::timestamptz IS NULL OR ends_at > %(after)s) "
                "ORDER BY starts_at DESC LIMIT 500",
                {"t": None if tenants is None else list(tenants), "after": ending_after},
            ).fetchall()
        return [WindowRecord(*r) for r in rows]

    def create_window(
        self, window: WindowRecord, principal: Principal, now: datetime
    ) -> WindowRecord:
        with translate_errors(), self._pool.connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO maintenance_windows (id, tenant_id, service_name, job_type, starts_at, "
                "ends_at, reason, created_by, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    window.id,
                    window.tenant_id,
                    window.service_name,
                    window.job_type,
                    window.starts_at,
                    window.ends_at,
                    window.reason,
                    window.created_by,
                    window.created_at,
                ),
            )
            _audit(
                conn,
                principal,
                "maintenance_window.create",
                window.id,
                window.tenant_id,
                now,
                {
                    "serviceName": window.service_name,
                    "jobType": window.job_type,
                    "startsAt": window.starts_at.isoformat(),
                    "endsAt": window.ends_at.isoformat(),
                },
            )
        return window

    def end_window(self, window_id: str, principal: Principal, now: datetime) -> WindowRecord:
        """End a window now (one not yet begun is ended before it begins: removed)."""
        wid = _uuid_or_missing(window_id, "maintenance window")
        tenants = principal.scope()
        with translate_errors(), self._pool.connection() as conn, conn.transaction():
            row = conn.execute(
                "SELECT id::text, tenant_id, service_name, job_type, starts_at, ends_at, reason, "
                "created_by, created_at FROM maintenance_windows WHERE id = %s "
                "AND (%s::text[] IS NULL OR tenant_id = ANY(%s)) FOR UPDATE",
                (wid, tenants, tenants),
            ).fetchone()
            if row is None:
                raise NotFound(f"no maintenance window {window_id!r} in your tenants")
            window = WindowRecord(*row)
            if window.starts_at >= now:
                conn.execute("DELETE FROM maintenance_windows WHERE id = %s", (wid,))
            elif window.ends_at > now:
                conn.execute(
                    "UPDATE maintenance_windows SET ends_at = %s WHERE id = %s", (now, wid)
                )
                window = replace(window, ends_at=now)
            _audit(conn, principal, "maintenance_window.end", wid, window.tenant_id, now)
        return window

    # ---- job schedules ---------------------------------------------------------------

    def schedules(self, tenants: Sequence[str] | None) -> list[ScheduleRecord]:
        with translate_errors(), self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT tenant_id, job_type, cron, timezone, grace, created_at FROM job_schedules "
                "WHERE %(t)s::text[] IS NULL OR tenant_id = ANY(%(t)s) ORDER BY tenant_id, job_type",
                {"t": None if tenants is None else list(tenants)},
            ).fetchall()
        return [ScheduleRecord(r[0], Schedule(r[1], r[2], r[3], r[4], r[5])) for r in rows]

    def put_schedule(
        self, tenant_id: str, schedule: Schedule, principal: Principal, now: datetime
    ) -> ScheduleRecord:
        """Set a type's schedule; a changed one expects runs from ``now`` on."""
        with translate_errors(), self._pool.connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO job_schedules (tenant_id, job_type, cron, timezone, grace, created_at, "
                "updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (tenant_id, job_type) "
                "DO UPDATE SET cron = excluded.cron, timezone = excluded.timezone, "
                "grace = excluded.grace, created_at = excluded.created_at, updated_at = excluded.updated_at",
                (
                    tenant_id,
                    schedule.job_type,
                    schedule.cron,
                    schedule.timezone,
                    schedule.grace,
                    schedule.created_at,
                    now,
                ),
            )
            _audit(
                conn,
                principal,
                "job_schedule.put",
                schedule.job_type,
                tenant_id,
                now,
                {
                    "cron": schedule.cron,
                    "timezone": schedule.timezone,
                    "graceSeconds": schedule.grace.total_seconds(),
                },
            )
        return ScheduleRecord(tenant_id, schedule)

    def delete_schedule(
        self, tenant_id: str, job_type: str, principal: Principal, now: datetime
    ) -> None:
        with translate_errors(), self._pool.connection() as conn, conn.transaction():
            row = conn.execute(
                "DELETE FROM job_schedules WHERE tenant_id = %s AND job_type = %s RETURNING 1",
                (tenant_id, job_type),
            ).fetchone()
            if row is None:
                raise NotFound(f"no schedule of {job_type!r} in tenant {tenant_id!r}")
            _audit(conn, principal, "job_schedule.delete", job_type, tenant_id, now)
