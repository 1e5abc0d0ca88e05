"""A firing alert opened as the evaluator would open it, for tests that need one to act
on (acknowledge, silence, resolve) without waiting for a real outage."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg_pool

from b2c_monitoring.alerting.lifecycle import AlertState
from b2c_monitoring.alerting.rules import AlertKind, DesiredAlert, Severity
from b2c_monitoring.storage.alerts import AlertStore


def open_service_down(
    pool: psycopg_pool.ConnectionPool, tenant: str, service: str, now: datetime
) -> AlertState:
    """The tenant's ``service_down`` alert of ``service``, firing from ``now``."""
    key = f"service_down:{service}"
    wanted = DesiredAlert(
        dedup_key=key,
        rule_id=None,
        kind=AlertKind.SERVICE_DOWN,
        severity=Severity.CRITICAL,
        title=f"{service} is down",
        cooldown=timedelta(minutes=5),
        service_name=service,
    )
    [(opened, _)] = AlertStore(pool).reconcile(tenant, {key: wanted}, now)
    return opened
