"""Jobs: runs, failures, durations and backlog per job type and tenant."""

# The SQL here is the text of Grafana panels, run by Grafana with its own variables
# and macros; nothing of ours formats user input into it.
# ruff: noqa: S608

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as dm

from b2c_monitoring.dashboards import panels as p
from b2c_monitoring.dashboards.common import (
    LUCENE_TENANT,
    PROM_TENANT,
    SQL_TENANT,
    dashboard,
    job_flag_sql,
)
from b2c_monitoring.dashboards.datasources import POSTGRES

UID = "b2c-jobs"

_FILTER = f"{SQL_TENANT} AND job_type IN ($job_type)"

JOB_TYPE_QUERY = (
    f"SELECT DISTINCT job_type FROM jobs WHERE {SQL_TENANT} AND job_type IS NOT NULL ORDER BY 1"
)
# the job whose log the last panel shows: the newest failure by default; links from the
# tables set it to any job
JOB_QUERY = (
    f"SELECT job_id FROM jobs WHERE {SQL_TENANT} AND status = 'failed' "
    "AND $__timeFilter(completed_at) ORDER BY completed_at DESC LIMIT 50"
)

RUNS = f"""\
SELECT $__timeGroupAlias(created_at, $__interval), job_type AS metric, count(*) AS runs
FROM jobs
WHERE {_FILTER} AND $__timeFilter(created_at)
GROUP BY 1, 2
ORDER BY 1"""

FAILURES = f"""\
SELECT $__timeGroupAlias(completed_at, $__interval), job_type AS metric, count(*) AS failures
FROM jobs
WHERE {_FILTER} AND status = 'failed' AND $__timeFilter(completed_at)
GROUP BY 1, 2
ORDER BY 1"""

DURATION_P95 = f"""\
SELECT $__timeGroupAlias(completed_at, $__interval), job_type AS metric,
       percentile_cont(0.95) WITHIN GROUP (
         ORDER BY extract(epoch FROM completed_at - started_at)) AS p95_seconds
FROM jobs
WHERE {_FILTER} AND started_at IS NOT NULL AND $__timeFilter(completed_at)
GROUP BY 1, 2
ORDER BY 1"""

PER_TYPE = f"""\
SELECT tenant_id AS tenant, job_type,
       count(*) AS runs,
       count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
       count(*) FILTER (WHERE status = 'failed')::float
         / NULLIF(count(*) FILTER (WHERE status IN ('succeeded', 'failed', 'cancelled')), 0)
         AS failure_ratio,
       percentile_cont(0.5) WITHIN GROUP (
         ORDER BY extract(epoch FROM completed_at - started_at)) AS p50_seconds,
       percentile_cont(0.95) WITHIN GROUP (
         ORDER BY extract(epoch FROM completed_at - started_at)) AS p95_seconds,
       max(extract(epoch FROM completed_at - started_at)) AS max_seconds
FROM jobs
WHERE {_FILTER} AND $__timeFilter(created_at)
GROUP BY 1, 2
ORDER BY failed DESC, runs DESC"""

BACKLOG = f"""\
SELECT tenant, job_type,
       count(*) FILTER (WHERE status = 'pending') AS pending,
       count(*) FILTER (WHERE status = 'running') AS running,
       count(*) FILTER (WHERE flag = 'overdue') AS overdue,
       count(*) FILTER (WHERE flag = 'stalled') AS stalled,
       min(created_at) FILTER (WHERE status = 'pending') AS oldest_pending
FROM (
  SELECT j.tenant_id AS tenant, j.job_type, j.status, j.created_at, {job_flag_sql()} AS flag
  FROM jobs j LEFT JOIN job_type_windows w ON w.job_type = j.job_type
  WHERE j.{SQL_TENANT} AND j.job_type IN ($job_type)
    AND (j.status IN ('pending', 'running') OR $__timeFilter(j.created_at))
) recent
GROUP BY 1, 2
ORDER BY count(*) FILTER (WHERE status IN ('pending', 'running')) DESC, tenant, job_type"""

RECENT_FAILURES = f"""\
SELECT tenant_id AS tenant, job_id, job_type, attempt, retry_of, error_message,
       started_at, completed_at
FROM jobs
WHERE {_FILTER} AND status = 'failed' AND $__timeFilter(completed_at)
ORDER BY completed_at DESC
LIMIT 100"""

QUEUE_DEPTH = f"max by (service_name) (scheduler_queue_depth{{{PROM_TENANT}}})"

JOB_LOG = f'Attributes.scheduler.job.id:"$job" AND {LUCENE_TENANT}'


def build() -> db.Dashboard:
    to_log = p.link(
        "Show this job's log below",
        "/d/b2c-jobs/b2c-jobs?var-tenant=${__data.fields.tenant}&var-job_type=$job_type"
        "&var-job=${__value.raw}&${__url_time_range}",
    )
    return (
        dashboard(UID, "b2c: Jobs", "Runs, failures, durations and backlog per type and tenant.")
        .with_variable(
            db.QueryVariable("job_type")
            .label("Job type")
            .datasource(POSTGRES)
            .query(JOB_TYPE_QUERY)
            .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD)
            .sort(dm.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
        )
        .with_variable(
            db.QueryVariable("job")
            .label("Job (log)")
            .description("The job whose log the last panel shows; the job ids in the tables set it")
            .datasource(POSTGRES)
            .query(JOB_QUERY)
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .allow_custom_value(True)
        )
        .with_panel(
            p.sql_timeseries(
                "Runs started",
                "How many runs of each job type started per interval?",
                RUNS,
                bars=True,
                span=8,
            )
        )
        .with_panel(
            p.sql_timeseries(
                "Failures",
                "How many runs of each job type failed per interval?",
                FAILURES,
                bars=True,
                span=8,
            )
        )
        .with_panel(
            p.sql_timeseries(
                "Duration p95",
                "How long do the slowest runs (95th percentile) of each type take, by the "
                "time they ended?",
                DURATION_P95,
                unit="s",
                span=8,
            )
        )
        .with_panel(
            p.sql_table(
                "Runs per type and tenant",
                "Per tenant and job type: how many runs, how many failed, what share failed, "
                "and how long they took (p50, p95, max)?",
                PER_TYPE,
                columns=[
                    "tenant",
                    "job_type",
                    "runs",
                    "succeeded",
                    "failed",
                    "cancelled",
                    "failure_ratio",
                    "p50_seconds",
                    "p95_seconds",
                    "max_seconds",
                ],
                renames={
                    "failure_ratio": "failed share",
                    "p50_seconds": "p50",
                    "p95_seconds": "p95",
                    "max_seconds": "max",
                },
                units={
                    "failure_ratio": "percentunit",
                    "p50_seconds": "s",
                    "p95_seconds": "s",
                    "max_seconds": "s",
                },
                span=14,
            )
        )
        .with_panel(
            p.sql_table(
                "Backlog",
                "Per tenant and job type: how many runs wait (pending) or run now, how many "
                "of them are overdue or stalled, and since when the oldest one waits?",
                BACKLOG,
                columns=[
                    "tenant",
                    "job_type",
                    "pending",
                    "running",
                    "overdue",
                    "stalled",
                    "oldest_pending",
                ],
                renames={"oldest_pending": "oldest pending since"},
                span=10,
            )
        )
        .with_panel(
            p.prom_timeseries(
                "Scheduler queue depth",
                "How many jobs wait in each scheduler's queue over time, as the schedulers "
                "report it (scheduler.queue.depth)?",
                [(QUEUE_DEPTH, "{{service_name}}")],
                span=24,
            )
        )
        .with_panel(
            p.sql_table(
                "Recent failures",
                "Which runs failed most recently, with what error, and was it a retry? The "
                "job id shows its log below.",
                RECENT_FAILURES,
                columns=[
                    "tenant",
                    "job_id",
                    "job_type",
                    "attempt",
                    "retry_of",
                    "error_message",
                    "started_at",
                    "completed_at",
                ],
                renames={"error_message": "error", "retry_of": "retry of"},
                links={"job_id": to_log, "retry_of": to_log},
                height=10,
            )
        )
        .with_panel(
            p.es_documents_table(
                "Log of job $job",
                "What did the selected job log, in order (from Elasticsearch)?",
                JOB_LOG,
                columns=["@timestamp", "SeverityText", "Body"],
                renames={"@timestamp": "time", "SeverityText": "level", "Body": "message"},
                size=500,
            )
        )
    )
