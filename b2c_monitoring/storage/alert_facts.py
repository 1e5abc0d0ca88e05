"""The facts alert rules are evaluated on, read from Postgres and Elasticsearch.

Only what a tenant's rules need is read: failed jobs only for a ``job_failed`` rule,
resource minima per (metric, duration) of its ``resource_above`` rules, communication
error counts per window of its ``error_rate_above`` rules. Communication errors are
log records with ``event.name`` = ``connected_service.communication_error`` (the
contract); a failed job's are those carrying its ``scheduler.job.id``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import psycopg
from elasticsearch import Elasticsearch

from b2c_monitoring.alerting.rules import (
    CalledService,
    ComponentFact,
    ComponentUnhealthy,
    ErrorRateAbove,
    Facts,
    FailedJob,
    FlaggedJob,
    JobFailed,
    JobStalled,
    ResourceAbove,
    ResourceFact,
    Rule,
    ServiceFact,
)
from b2c_monitoring.alerting.schedules import Schedule
from b2c_monitoring.errors import StorageError
from b2c_monitoring.processors.job_flags import JobFlag, WindowPolicy
from b2c_monitoring.storage.job_windows import WINDOWS_JOIN, flag_condition, flag_params
from b2c_monitoring.storage.logs import JOB_ID_ATTR, LogSearch, tenant_filter

log = logging.getLogger(__name__)

COMMUNICATION_ERROR: Final = "connected_service.communication_error"
_EVENT_FIELD: Final = "Attributes.event.name"
_SERVICE_FIELD: Final = "Attributes.connected_service.name"
_JOB_FIELD: Final = f"Attributes.{JOB_ID_ATTR}"
# bounded reads: a tenant with more failing or flagged jobs than this sees the newest
_MAX_JOBS: Final = 2000
_ES_TIMEOUT_S: Final = 5.0


@dataclass(frozen=True)
class CommunicationErrors:
    """Communication errors of a tenant in Elasticsearch (indices ``index_pattern``)."""

    client: Elasticsearch
    index_pattern: str
    default_tenant: str

    def _search(self, body: dict[str, Any]) -> dict[str, Any]:
        return LogSearch(self.client, self.index_pattern, _ES_TIMEOUT_S)(body)

    def _filters(self, tenant_id: str) -> list[dict[str, Any]]:
        return [
            tenant_filter(tenant_id, self.default_tenant),
            {"term": {_EVENT_FIELD: COMMUNICATION_ERROR}},
        ]

    def services_of_jobs(self, tenant_id: str, job_ids: Sequence[str]) -> dict[str, list[str]]:
        """The services named by each job's communication errors."""
        out: dict[str, list[str]] = {}
        for start in range(0, len(job_ids), 500):
            chunk = list(job_ids[start : start + 500])
            body = {
                "size": 0,
                "query": {
                    "bool": {"filter": [*self._filters(tenant_id), {"terms": {_JOB_FIELD: chunk}}]}
                },
                "aggs": {
                    "jobs": {
                        "terms": {"field": _JOB_FIELD, "size": len(chunk)},
                        "aggs": {"services": {"terms": {"field": _SERVICE_FIELD, "size": 20}}},
                    }
                },
            }
            result = self._search(body)
            for bucket in result.get("aggregations", {}).get("jobs", {}).get("buckets", []):
                out[str(bucket["key"])] = sorted(
                    str(s["key"]) for s in bucket["services"]["buckets"]
                )
        return out

    def counts(self, tenant_id: str, since: datetime, until: datetime) -> dict[str, int]:
        """Communication errors per service in [since, until)."""
        body = {
            "size": 0,
            "query": {
                "bool": {
                    "filter": [
                        *self._filters(tenant_id),
                        {
                            "range": {
                                "@timestamp": {"gte": since.isoformat(), "lt": until.isoformat()}
                            }
                        },
                    ]
                }
            },
            "aggs": {"services": {"terms": {"field": _SERVICE_FIELD, "size": 1000}}},
        }
        result = self._search(body)
        return {
            str(b["key"]): int(b["doc_count"])
            for b in result.get("aggregations", {}).get("services", {}).get("buckets", [])
        }


def _services(conn: psycopg.Connection[Any], tenant_id: str) -> dict[str, ServiceFact]:
    rows = conn.execute(
        "SELECT id::text, name, status, last_observed, streak, last_latency_s, last_checked "
        "FROM services WHERE tenant_id = %s",
        (tenant_id,),
    ).fetchall()
    return {r[1]: ServiceFact(r[1], r[0], r[2], r[3], r[4], r[5], r[6]) for r in rows}


def _failed_jobs(
    conn: psycopg.Connection[Any], tenant_id: str, lookback: timedelta, now: datetime
) -> list[tuple[str, str | None, datetime, str | None]]:
    # a failure stays an alert until a later run of its type succeeds (or it ages out)
    return [
        (r[0], r[1], r[2], r[3])
        for r in conn.execute(
            "SELECT f.job_id, f.job_type, f.completed_at, f.error_message FROM jobs f "
            "WHERE f.tenant_id = %(t)s AND f.status = 'failed' AND f.completed_at > %(since)s "
            "AND NOT EXISTS (SELECT 1 FROM jobs s WHERE s.tenant_id = f.tenant_id "
            "  AND s.job_type IS NOT DISTINCT FROM f.job_type AND s.status = 'succeeded' "
            "  AND s.completed_at > f.completed_at) "
            "ORDER BY f.completed_at DESC LIMIT %(limit)s",
            {"t": tenant_id, "since": now - lookback, "limit": _MAX_JOBS},
        ).fetchall()
    ]


def _statuses_at(conn: psycopg.Connection[Any], pairs: Sequence[tuple[str, datetime]]) -> list[str]:
    """The status of each (service id, time): the latest change at or before it."""
    if not pairs:
        return []
    rows = conn.execute(
        "SELECT x.i, (SELECT c.status FROM service_status_changes c "
        "  WHERE c.service_id = x.sid AND c.at <= x.at ORDER BY c.at DESC, c.seq DESC LIMIT 1) "
        "FROM unnest(%s::uuid[], %s::timestamptz[]) WITH ORDINALITY AS x(sid, at, i) ORDER BY x.i",
        ([p[0] for p in pairs], [p[1] for p in pairs]),
    ).fetchall()
    return [r[1] or "unknown" for r in rows]


def _flagged_jobs(
    conn: psycopg.Connection[Any], tenant_id: str, policy: WindowPolicy, now: datetime
) -> list[FlaggedJob]:
    selects = " UNION ALL ".join(
        f"(SELECT j.job_id, j.job_type, j.status, '{flag.value}', j.last_report_at "
        f"FROM jobs j {WINDOWS_JOIN} WHERE j.tenant_id = %(tenant)s AND {flag_condition(flag)} "
        "LIMIT %(n)s)"
        for flag in JobFlag
    )
    rows = conn.execute(
        selects, {"tenant": tenant_id, "n": _MAX_JOBS, **flag_params(policy.default, now)}
    ).fetchall()
    return [FlaggedJob(*row) for row in rows]


def _metric_sql(metric: str, alias: str) -> str:
    """The metric in percent, of the samples named ``alias``."""
    if metric == "cpu":
        return f"{alias}.cpu_ratio * 100"
    return (
        f"CASE WHEN {alias}.memory_limit > 0 "
        f"THEN {alias}.memory_used / {alias}.memory_limit * 100 END"
    )


def _resource_minima(
    conn: psycopg.Connection[Any], tenant_id: str, metric: str, duration_s: int, now: datetime
) -> dict[str, tuple[float | None, bool]]:
    start = now - timedelta(seconds=duration_s)
    rows = conn.execute(
        # the owner reported the metric before the window began: it covers the duration
        f"SELECT owner, min({_metric_sql(metric, 's')}), "
        "  EXISTS (SELECT 1 FROM resource_samples p WHERE p.tenant_id = s.tenant_id "
        "    AND p.owner = s.owner AND p.at <= %(start)s AND p.at > %(before)s "
        f"   AND ({_metric_sql(metric, 'p')}) IS NOT NULL) "
        "FROM resource_samples s WHERE tenant_id = %(t)s AND at > %(start)s AND at <= %(now)s "
        "GROUP BY tenant_id, owner",
        {
            "t": tenant_id,
            "start": start,
            "now": now,
            "before": start - max(timedelta(seconds=duration_s), timedelta(minutes=1)),
        },
    ).fetchall()
    return {r[0]: (r[1], bool(r[2])) for r in rows}


def read_facts(
    conn: psycopg.Connection[Any],
    errors: CommunicationErrors | None,
    tenant_id: str,
    rules: Sequence[Rule],
    schedules: Sequence[Schedule],
    policy: WindowPolicy,
    now: datetime,
) -> Facts:
    """Everything ``rules`` and ``schedules`` of ``tenant_id`` need, as of ``now``.

    ``errors`` None (no Elasticsearch configured): no failed job names a service and no
    error rate is known. Elasticsearch failing is not a reason to skip the round (a
    service still goes down): ``Facts.logs_available`` is False instead, and the alerts
    that need the logs are held as they are (``AlertStore.reconcile``, ``hold``).
    """
    conds = [r.condition for r in rules if r.enabled]
    logs_available = True
    services = _services(conn, tenant_id)
    facts: dict[str, Any] = {"services": services, "schedules": list(schedules)}
    failed_rules = [c for c in conds if isinstance(c, JobFailed)]
    if failed_rules:
        lookback = timedelta(seconds=max(c.lookback_s for c in failed_rules))
        failed = _failed_jobs(conn, tenant_id, lookback, now)
        called: dict[str, list[str]] = {}
        if errors is not None and failed:
            try:
                called = errors.services_of_jobs(tenant_id, [f[0] for f in failed])
            except StorageError as exc:
                log.warning("communication errors of %s unreadable this round: %s", tenant_id, exc)
                logs_available = False
        pairs: list[tuple[str, datetime]] = []
        for job_id, _, completed_at, _ in failed:
            pairs += [
                (services[name].service_id, completed_at)
                for name in called.get(job_id, [])
                if name in services
            ]
        statuses = iter(_statuses_at(conn, pairs))
        jobs = []
        for job_id, job_type, completed_at, message in failed:
            calls = tuple(
                CalledService(
                    name,
                    next(statuses) if name in services else "unknown",
                    services[name].service_id if name in services else None,
                )
                for name in called.get(job_id, [])
            )
            jobs.append(FailedJob(job_id, job_type, completed_at, message, calls))
        facts["failed_jobs"] = jobs
        facts["attributed_jobs"] = frozenset(
            r[0]
            for r in conn.execute(
                "SELECT j->>'jobId' FROM alerts a, "
                "  jsonb_array_elements(a.details->'affectedJobs') AS j "
                "WHERE a.tenant_id = %s AND a.started_at > %s AND a.details ? 'affectedJobs'",
                (tenant_id, now - lookback - timedelta(days=1)),
            ).fetchall()
        )
    if any(isinstance(c, JobStalled) for c in conds):
        facts["flagged_jobs"] = _flagged_jobs(conn, tenant_id, policy, now)
    if any(isinstance(c, ComponentUnhealthy) for c in conds):
        facts["components"] = [
            ComponentFact(r[0], r[1], r[2])
            for r in conn.execute(
                "SELECT name, status, description FROM components WHERE tenant_id = %s",
                (tenant_id,),
            ).fetchall()
        ]
    resources = {}
    for metric, duration_s in {
        (c.metric, c.duration_s) for c in conds if isinstance(c, ResourceAbove)
    }:
        for owner, (minimum, covered) in _resource_minima(
            conn, tenant_id, metric, duration_s, now
        ).items():
            resources[(owner, metric, duration_s)] = ResourceFact(
                owner, metric, duration_s, minimum, covered
            )
    facts["resources"] = resources
    counts: dict[tuple[str, int], int] = {}
    if errors is not None and logs_available:
        try:
            for window_s in {c.window_s for c in conds if isinstance(c, ErrorRateAbove)}:
                since = now - timedelta(seconds=window_s)
                for service, n in errors.counts(tenant_id, since, now).items():
                    counts[(service, window_s)] = n
        except StorageError as exc:
            log.warning("communication errors of %s unreadable this round: %s", tenant_id, exc)
            logs_available = False
    facts["error_counts"] = counts
    facts["logs_available"] = logs_available
    if schedules:
        facts["last_runs"] = {
            r[0]: r[1]
            for r in conn.execute(
                # a run its scheduler skipped (APScheduler's EVENT_JOB_MISSED, stored as
                # cancelled) is the missed run itself, not a run that happened
                "SELECT job_type, max(created_at) FROM jobs WHERE tenant_id = %s "
                "AND job_type = ANY(%s) AND NOT (status = 'cancelled' "
                "AND metadata->>'apscheduler.skipped' = 'missed') GROUP BY job_type",
                (tenant_id, [s.job_type for s in schedules]),
            ).fetchall()
        }
    return Facts(**facts)
