"""One metrics export request, stored in one transaction: checks, health, resources.

The partitions the rows will land in are made sure of first, outside the transaction
(``PartitionGuard``); then services, components and resource windows are locked in
that order, each in key order, so that two replicas never wait on each other in a
cycle. A deadlock or serialization failure retries the whole transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg_pool
from psycopg.rows import dict_row

from b2c_monitoring.processors.health import HealthChange, HealthReport
from b2c_monitoring.processors.resources import ResourceSample
from b2c_monitoring.processors.services import CheckReport, DampingPolicy, StatusChange
from b2c_monitoring.settings import Settings
from b2c_monitoring.storage import health, resources, services
from b2c_monitoring.storage.db import retry_conflicts
from b2c_monitoring.storage.partitions import PartitionGuard, Retention


@dataclass(frozen=True)
class MetricsPolicy:
    damping: DampingPolicy = field(default_factory=DampingPolicy)
    stale_after: timedelta = timedelta(minutes=3)
    retention: Retention = field(default_factory=Retention)


def policy_from(settings: Settings) -> MetricsPolicy:
    return MetricsPolicy(
        damping=DampingPolicy(
            down_after=settings.service_down_after,
            up_after=settings.service_up_after,
            latency_after=settings.service_latency_after,
            degraded_after_s=settings.service_degraded_after_s,
        ),
        stale_after=timedelta(seconds=settings.health_stale_after_s),
        retention=Retention(
            raw=timedelta(hours=settings.retention_raw_hours),
            five_minutes=timedelta(days=settings.retention_5m_days),
            hourly=timedelta(days=settings.retention_1h_days),
            history=timedelta(days=settings.retention_history_days),
            resolved_alerts=timedelta(days=settings.alert_retention_days),
            jobs=timedelta(days=settings.job_retention_days),
            job_commands=timedelta(days=settings.job_command_retention_days),
            audit=timedelta(days=settings.audit_retention_days),
            delete_budget=timedelta(seconds=settings.retention_budget_s),
        ),
    )


@dataclass(frozen=True)
class AppliedMetrics:
    status_changes: list[StatusChange]
    health_changes: list[HealthChange]
    check_samples: int
    resource_samples: int


class MetricsStore:
    def __init__(self, pool: psycopg_pool.ConnectionPool, policy: MetricsPolicy) -> None:
        self._pool = pool
        self.policy = policy
        self._guard = PartitionGuard(pool)

    def apply(
        self,
        checks: Sequence[CheckReport],
        health_reports: Sequence[HealthReport],
        samples: Sequence[ResourceSample],
        now: datetime,
    ) -> AppliedMetrics:
        """Derive and store one request's reports; all or nothing."""
        if not (checks or health_reports or samples):
            return AppliedMetrics([], [], 0, 0)
        retention = self.policy.retention
        self._guard.ensure(
            {
                "service_status_changes": [r.at for r in checks],
                "service_checks": services.sample_times(checks, now, retention),
                "component_health_changes": health.change_times(
                    health_reports, self.policy.stale_after
                ),
                "resource_samples": resources.sample_times(samples, now, retention),
            }
        )
        return retry_conflicts(lambda: self._apply_once(checks, health_reports, samples, now))

    def discover(self, found: Sequence[services.Discovered], now: datetime) -> None:
        """Make the services named by log records known (one transaction)."""
        if not found:
            return

        def once() -> None:
            with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                services.discover(cur, found, now)

        retry_conflicts(once)

    def _apply_once(
        self,
        checks: Sequence[CheckReport],
        health_reports: Sequence[HealthReport],
        samples: Sequence[ResourceSample],
        now: datetime,
    ) -> AppliedMetrics:
        policy = self.policy
        with (
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=dict_row) as cur,
        ):
            applied = services.apply_checks(cur, checks, policy.damping, policy.retention, now)
            health_changes = health.apply_health(cur, health_reports, policy.stale_after, now)
            stored_samples = resources.apply_resources(cur, samples, policy.retention, now)
            # resources under a name no check reported are a service of their own
            services.discover(
                cur, [services.Discovered(s.tenant_id, s.owner) for s in samples], now
            )
        return AppliedMetrics(
            status_changes=applied.changes,
            health_changes=health_changes,
            check_samples=applied.samples,
            resource_samples=stored_samples,
        )
