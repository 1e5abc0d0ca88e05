"""Overview: is everything all right, and if not, what needs attention first."""

# The SQL here is the text of Grafana panels, run by Grafana with its own variables
# and macros; nothing of ours formats user input into it.
# ruff: noqa: S608

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as dm

from b2c_monitoring.dashboards import panels as p
from b2c_monitoring.dashboards.common import SQL_TENANT, dashboard, job_flag_sql

UID = "b2c-overview"

_ALERT_STATE_COLOURS = {"firing": p.BAD, "acknowledged": p.WARN, "resolved": p.GOOD}
_HEALTH_TEXT = {"0": ("healthy", p.GOOD), "1": ("degraded", p.WARN), "2": ("unhealthy", p.BAD)}

OVERALL_HEALTH = f"""\
SELECT GREATEST(
  COALESCE((SELECT max(CASE status WHEN 'healthy' THEN 0 WHEN 'unhealthy' THEN 2 ELSE 1 END)
            FROM components WHERE {SQL_TENANT}), 0),
  COALESCE((SELECT max(CASE status WHEN 'up' THEN 0 WHEN 'down' THEN 2 ELSE 1 END)
            FROM services WHERE {SQL_TENANT}), 0)
) AS health"""

SERVICES_DOWN = f"""\
SELECT count(*) FILTER (WHERE status = 'down') AS down
FROM services WHERE {SQL_TENANT}"""

FAILED_JOBS = f"""\
SELECT count(*) AS failed
FROM jobs
WHERE {SQL_TENANT} AND status = 'failed' AND $__timeFilter(completed_at)"""

STALLED_JOBS = f"""\
SELECT count(*) AS stalled
FROM jobs j LEFT JOIN job_type_windows w ON w.job_type = j.job_type
WHERE j.{SQL_TENANT} AND j.status IN ('running', 'pending') AND {job_flag_sql()} IS NOT NULL"""

FIRING_ALERTS = f"""\
SELECT count(*) AS firing
FROM alerts WHERE {SQL_TENANT} AND state = 'firing'"""

COMPONENTS = f"""\
SELECT tenant_id AS tenant, name AS component, status, description, service_name,
       last_report_at
FROM components
WHERE {SQL_TENANT}
ORDER BY CASE status WHEN 'unhealthy' THEN 0 WHEN 'degraded' THEN 1 WHEN 'unknown' THEN 2
         ELSE 3 END, tenant_id, name"""

ATTENTION_JOBS = f"""\
SELECT * FROM (
  SELECT j.tenant_id AS tenant, j.job_id, j.job_type,
         COALESCE({job_flag_sql()}, j.status) AS problem,
         j.error_message, j.attempt, j.last_report_at
  FROM jobs j LEFT JOIN job_type_windows w ON w.job_type = j.job_type
  WHERE j.{SQL_TENANT}
    AND ((j.status = 'failed' AND $__timeFilter(j.completed_at))
         OR (j.status IN ('running', 'pending') AND {job_flag_sql()} IS NOT NULL))
) attention
ORDER BY CASE problem WHEN 'stalled' THEN 0 WHEN 'overdue' THEN 1 ELSE 2 END,
         last_report_at DESC
LIMIT 100"""

ALERTS = f"""\
SELECT tenant_id AS tenant, title, severity, state, kind,
       COALESCE(service_name, job_type) AS subject, started_at, last_fired_at, resolved_at,
       fire_count
FROM alerts
WHERE {SQL_TENANT}
  AND (state IN ('firing', 'acknowledged') OR $__timeFilter(last_fired_at)
       OR $__timeFilter(resolved_at))
ORDER BY CASE state WHEN 'firing' THEN 0 WHEN 'acknowledged' THEN 1 ELSE 2 END,
         CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,
         last_fired_at DESC
LIMIT 100"""


def build() -> db.Dashboard:
    jobs_link = p.link(
        "Open the job's log",
        "/d/b2c-jobs/b2c-jobs?var-tenant=${__data.fields.tenant}&var-job=${__value.raw}"
        "&${__url_time_range}",
    )
    return (
        dashboard(
            UID,
            "b2c: Overview",
            "Overall health, components, failing and stalled jobs, firing alerts.",
        )
        .with_panel(
            p.sql_stat(
                "Overall health",
                "Is everything healthy right now? The worst state of any component or "
                "connected service of the selected tenants.",
                OVERALL_HEALTH,
                field="health",
                mappings=[
                    dm.ValueMap(
                        options={
                            key: dm.ValueMappingResult(text=text, color=colour, index=i)
                            for i, (key, (text, colour)) in enumerate(_HEALTH_TEXT.items())
                        }
                    )
                ],
                thresholds=((None, p.GOOD), (1, p.WARN), (2, p.BAD)),
                span=6,
            )
        )
        .with_panel(
            p.sql_stat(
                "Connected services down",
                "How many connected services (ERP, PIM, CRM, databases) are down now?",
                SERVICES_DOWN,
                field="down",
                thresholds=((None, p.GOOD), (1, p.BAD)),
            )
        )
        .with_panel(
            p.sql_stat(
                "Failed jobs",
                "How many job runs failed in the selected time range?",
                FAILED_JOBS,
                field="failed",
                thresholds=((None, p.GOOD), (1, p.BAD)),
            )
        )
        .with_panel(
            p.sql_stat(
                "Stalled or overdue jobs",
                "How many jobs are stalled (running, silent past their heartbeat window) or "
                "overdue (pending past their start window) now?",
                STALLED_JOBS,
                field="stalled",
                thresholds=((None, p.GOOD), (1, p.WARN)),
            )
        )
        .with_panel(
            p.sql_stat(
                "Firing alerts",
                "How many alerts are firing (not acknowledged, not resolved) now?",
                FIRING_ALERTS,
                field="firing",
                thresholds=((None, p.GOOD), (1, p.BAD)),
                span=6,
            )
        )
        .with_panel(
            p.sql_table(
                "Components",
                "Which components report which health, and since when have we heard of them? "
                "Worst first.",
                COMPONENTS,
                columns=[
                    "tenant",
                    "component",
                    "status",
                    "description",
                    "service_name",
                    "last_report_at",
                ],
                renames={"service_name": "reported by", "last_report_at": "last report"},
                colours={"status": p.HEALTH_COLOURS},
                span=12,
            )
        )
        .with_panel(
            p.sql_table(
                "Alerts",
                "Which alerts are open now (firing, then acknowledged, most severe first), "
                "and which fired or resolved in the range?",
                ALERTS,
                columns=[
                    "tenant",
                    "title",
                    "severity",
                    "state",
                    "kind",
                    "subject",
                    "started_at",
                    "last_fired_at",
                    "resolved_at",
                    "fire_count",
                ],
                renames={
                    "started_at": "since",
                    "last_fired_at": "last fired",
                    "resolved_at": "resolved",
                    "fire_count": "fired",
                },
                colours={"severity": p.SEVERITY_COLOURS, "state": _ALERT_STATE_COLOURS},
                span=12,
            )
        )
        .with_panel(
            p.sql_table(
                "Jobs that need attention",
                "Which jobs failed in the range, or are stalled or overdue now, and why? "
                "The job id opens its log.",
                ATTENTION_JOBS,
                columns=[
                    "tenant",
                    "job_id",
                    "job_type",
                    "problem",
                    "error_message",
                    "attempt",
                    "last_report_at",
                ],
                renames={"error_message": "error", "last_report_at": "last report"},
                colours={"problem": p.JOB_STATUS_COLOURS},
                links={"job_id": jobs_link},
                height=10,
            )
        )
    )
