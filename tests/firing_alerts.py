"""A firing alert opened as the evaluator would open it, for tests that need one to act
on (acknowledge, silence, resolve) without waiting for a real outage; and, for the
schedulers' end-to-end tests, the schedule a scheduler registered and the missed-run
alert the evaluator raised, as the API shows them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import psycopg_pool

from b2c_monitoring.alerting.lifecycle import AlertState
from b2c_monitoring.alerting.rules import AlertKind, DesiredAlert, Severity
from b2c_monitoring.storage.alerts import AlertStore
from tests.polling import eventually
from tests.tokens import bearer


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


def registered_schedule(
    api: httpx.Client, tenant: str, operator: str, job_type: str, *, timeout: float, what: str
) -> dict[str, Any]:
    """The tenant's job schedule of ``job_type``, once a scheduler has registered it."""

    def registered() -> dict[str, Any] | None:
        body = api.get(
            "/api/admin/job-schedules", params={"tenant": tenant}, headers=bearer(operator)
        ).json()
        return next((s for s in body["items"] if s["jobType"] == job_type), None)

    schedule: dict[str, Any] = eventually(registered, timeout=timeout, what=what)
    return schedule


def raised_missed_run(
    api: httpx.Client, tenant: str, operator: str, *, timeout: float
) -> dict[str, Any]:
    """The tenant's first ``missed_run`` alert as the API shows it, once the processor's
    evaluator has raised it (within ``timeout`` s): the schedulers' end-to-end tests."""

    def missed() -> dict[str, Any] | None:
        body = api.get(
            "/api/admin/alerts",
            params={"tenant": tenant, "kind": "missed_run"},
            headers=bearer(operator),
        ).json()
        return next(iter(body["items"]), None)

    alert: dict[str, Any] = eventually(missed, timeout=timeout, what="the missed-run alert")
    return alert
