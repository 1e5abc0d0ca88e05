"""Alert changes and maintenance windows as hub events, written in the caller's transaction.

- ``AlertTriggered(alert)``: every change of an alert (fired, refired, updated,
  acknowledged, silenced, resolved); the alert record in camelCase, its ``state``
  says which.
- ``ResourceAlertTriggered(serviceId, alert)``: the same, also, for an alert about a
  connected service's resources (``resource_above``).
- A maintenance window that begins or ends: ``AlertTriggered`` with
  ``{"kind": "maintenance_window", "state": "started" | "ended", "window": {...}}``,
  announced once each by the evaluator (``announce_windows``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
import psycopg_pool

from b2c_monitoring.alerting.lifecycle import AlertState, Change
from b2c_monitoring.alerting.records import AlertRecord
from b2c_monitoring.alerting.rules import AlertKind
from b2c_monitoring.live_events import HubEvent
from b2c_monitoring.storage.db import translate_errors
from b2c_monitoring.storage.hub_events import publish


def alert_events(
    conn: psycopg.Connection[Any], alert: AlertState, changes: Sequence[Change]
) -> None:
    if not changes:
        return
    body = AlertRecord.of(alert).json_body()
    events = [
        HubEvent(
            tenant_id=alert.tenant_id,
            target="AlertTriggered",
            arguments=(body,),
            job_type=alert.job_type,
            service_id=alert.service_id,
        )
    ]
    if alert.kind is AlertKind.RESOURCE_ABOVE and alert.service_id is not None:
        events.append(
            HubEvent(
                tenant_id=alert.tenant_id,
                target="ResourceAlertTriggered",
                arguments=(alert.service_id, body),
                service_id=alert.service_id,
            )
        )
    publish(conn, events)


def announce_windows(pool: psycopg_pool.ConnectionPool, now: datetime) -> int:
    """Push each window that began or ended since the last round, once; how many."""
    with translate_errors(), pool.connection() as conn, conn.transaction():
        rows = conn.execute(
            "UPDATE maintenance_windows SET announced = CASE WHEN ends_at <= %(now)s "
            "THEN 'ended' ELSE 'started' END "
            "WHERE (announced = 'none' AND starts_at <= %(now)s) "
            "OR (announced <> 'ended' AND ends_at <= %(now)s) "
            "RETURNING id::text, tenant_id, service_name, job_type, starts_at, ends_at, reason, "
            "announced",
            {"now": now},
        ).fetchall()
        events = [
            HubEvent(
                tenant_id=tenant_id,
                target="AlertTriggered",
                arguments=(
                    {
                        "kind": "maintenance_window",
                        "state": announced,
                        "window": {
                            "id": wid,
                            "tenantId": tenant_id,
                            "serviceName": service_name,
                            "jobType": job_type,
                            "startsAt": starts_at.isoformat(),
                            "endsAt": ends_at.isoformat(),
                            "reason": reason,
                        },
                    },
                ),
                job_type=job_type,
            )
            for wid, tenant_id, service_name, job_type, starts_at, ends_at, reason, announced in rows
        ]
        if events:
            publish(conn, events)
    return len(events)
