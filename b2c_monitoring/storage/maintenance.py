"""The periodic maintenance of the history: partitions, rollups, retention, staleness.

``maintain(pool, policy, now)`` runs one round under a session advisory lock (the
replica that holds it does the round; the others skip it), and is safe to run again
at any time: creating is ``IF NOT EXISTS``, rollups are upserts recomputed from the
finer table, dropping concerns whole partitions past their retention, alerts
resolved before theirs (``B2C_ALERT_RETENTION_DAYS``) are deleted, the records that are
not partitioned (jobs and their timelines, commands, the audit log, hub events, ended
silences and windows) age out in batches (``storage/retention.py``) for at most
``B2C_RETENTION_BUDGET_S`` a round, and a component turns ``unknown`` once (claimed
with ``SKIP LOCKED``). The budget bounds how long the lock is held: a backlog (the
first round after an upgrade) is worked off over several rounds.

``MaintenanceThread`` runs it every ``interval`` in the processor's front process, and
with it the log indices' round (``storage/logs.py``, ``LogIndices``: daily indices
created ahead, whole indices past retention deleted). That round needs no lock (every
step is idempotent) and runs even when Postgres is down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg_pool

from b2c_monitoring.errors import B2CError
from b2c_monitoring.periodic import Periodic
from b2c_monitoring.storage.alerts import prune_resolved as prune_resolved_alerts
from b2c_monitoring.storage.db import translate_errors
from b2c_monitoring.storage.health import HealthStore
from b2c_monitoring.storage.job_commands import JobCommandStore
from b2c_monitoring.storage.logs import LogIndices
from b2c_monitoring.storage.metrics import MetricsPolicy
from b2c_monitoring.storage.partitions import (
    MaintenanceReport,
    autocommit_connection,
    maintain_partitions,
    release_maintenance_lock,
    try_maintenance_lock,
)
from b2c_monitoring.storage.retention import cutoffs, sweep

log = logging.getLogger(__name__)


def maintain(
    pool: psycopg_pool.ConnectionPool, policy: MetricsPolicy, now: datetime
) -> MaintenanceReport:
    """One round of maintenance as of ``now``; ``ran`` is False if another replica has it."""
    with translate_errors(), autocommit_connection(pool) as conn:
        if not try_maintenance_lock(conn):
            return MaintenanceReport(ran=False)
        try:
            report = maintain_partitions(conn, now, policy.retention)
            report.pruned_alerts = prune_resolved_alerts(
                conn, now - policy.retention.resolved_alerts
            )
            swept = sweep(
                conn,
                cutoffs(policy.retention, now),
                batch=policy.retention.delete_batch,
                budget=policy.retention.delete_budget,
            )
            report.deleted = swept.deleted
            report.deleting_s = swept.seconds
            report.longest_delete_s = swept.longest_batch_s
            report.deletes_left = swept.left
        finally:
            release_maintenance_lock(conn)
    report.expired_components = len(HealthStore(pool).expire(policy.stale_after, now))
    # commands nobody polls for: their API reads expire them too, this ends the rest
    JobCommandStore(pool).expire(now)
    return report


class MaintenanceThread:
    """Runs ``maintain`` now and then every ``interval`` until ``stop``."""

    def __init__(
        self,
        pool: psycopg_pool.ConnectionPool,
        policy: MetricsPolicy,
        interval: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        log_indices: LogIndices | None = None,
    ) -> None:
        self._pool = pool
        self._log_indices = log_indices
        self._policy = policy
        self._interval = interval
        self._clock = clock
        self._loop = Periodic("b2c-maintenance", interval.total_seconds(), self.run_once, log=log)

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def run_once(self) -> MaintenanceReport | None:
        if self._log_indices is not None:
            self._maintain_log_indices(self._log_indices)
        try:
            report = maintain(self._pool, self._policy, self._clock())
        except B2CError as exc:
            log.warning("maintenance round failed (next round in %s): %s", self._interval, exc)
            return None
        if report.created or report.dropped or report.expired_components or report.pruned_alerts:
            log.info(
                "maintenance: created %d partition(s), dropped %d, %d component(s) turned "
                "unknown, %d resolved alert(s) past retention deleted",
                len(report.created),
                len(report.dropped),
                report.expired_components,
                report.pruned_alerts,
            )
        if report.deleted:
            log.info(
                "retention: deleted %s in %.1f s (longest transaction %.2f s)%s",
                ", ".join(f"{rows} {table}" for table, rows in sorted(report.deleted.items())),
                report.deleting_s,
                report.longest_delete_s,
                "; more left for the next round" if report.deletes_left else "",
            )
        return report

    def _maintain_log_indices(self, indices: LogIndices) -> None:
        try:
            done = indices.maintain(self._clock())
        except B2CError as exc:
            log.warning("log index maintenance failed (next round in %s): %s", self._interval, exc)
            return
        if done.created or done.deleted:
            log.info(
                "log indices: created %s, deleted past retention %s",
                ", ".join(done.created) or "none",
                ", ".join(done.deleted) or "none",
            )
