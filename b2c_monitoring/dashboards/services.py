"""Connected services: status, latency, uptime and resources."""

# The SQL here is the text of Grafana panels, run by Grafana with its own variables
# and macros; nothing of ours formats user input into it.
# ruff: noqa: S608

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from b2c_monitoring.dashboards import panels as p
from b2c_monitoring.dashboards.common import PROM_TENANT, SQL_TENANT, dashboard

UID = "b2c-services"

STATUS = f"""\
SELECT tenant_id AS tenant, name AS service, service_type, status, endpoint,
       last_checked, last_successful, last_latency_s * 1000 AS last_latency_ms, last_error
FROM services
WHERE {SQL_TENANT}
ORDER BY CASE status WHEN 'down' THEN 0 WHEN 'degraded' THEN 1 WHEN 'unknown' THEN 2 ELSE 3 END,
         tenant_id, name"""

# a check "answers" when it observed up or degraded: the share of answering checks
UPTIME = f"""\
SELECT s.tenant_id AS tenant, s.name AS service,
       count(*) AS checks,
       avg(CASE WHEN COALESCE(c.observed, CASE WHEN c.up THEN 'up' ELSE 'down' END)
                     IN ('up', 'degraded') THEN 1.0 ELSE 0.0 END) AS uptime,
       avg(c.latency_s) * 1000 AS avg_latency_ms,
       max(c.latency_s) * 1000 AS max_latency_ms
FROM service_checks c JOIN services s ON s.id = c.service_id
WHERE s.{SQL_TENANT} AND $__timeFilter(c.at)
GROUP BY 1, 2
ORDER BY uptime, tenant, service"""

STATUS_CHANGES = f"""\
SELECT c.at, s.tenant_id AS tenant, s.name AS service, c.previous, c.status, c.reason
FROM service_status_changes c JOIN services s ON s.id = c.service_id
WHERE c.{SQL_TENANT} AND $__timeFilter(c.at)
ORDER BY c.at DESC
LIMIT 200"""

POOL_AND_QUEUE = f"""\
SELECT $__timeGroupAlias(at, $__interval), owner || ' ' || measure AS metric, max(value) AS value
FROM resource_samples
CROSS JOIN LATERAL (VALUES ('pool used', pool_used), ('queue depth', queue_depth)) AS m(measure, value)
WHERE {SQL_TENANT} AND $__timeFilter(at) AND value IS NOT NULL
GROUP BY 1, 2
ORDER BY 1"""

UP = f"min by (connected_service_name) (connected_service_up{{{PROM_TENANT}}})"
LATENCY = (
    f"max by (connected_service_name) (connected_service_check_duration_seconds{{{PROM_TENANT}}})"
)
# the contract allows either; a ratio's Prometheus name ends in _ratio
CPU = (
    "max by (service_name) ({__name__=~"
    '"process_cpu_utilization_ratio|system_cpu_utilization_ratio", '
    f"{PROM_TENANT}}})"
)
MEMORY = f"max by (service_name) (process_memory_usage_bytes{{{PROM_TENANT}}})"


def build() -> db.Dashboard:
    return (
        dashboard(
            UID,
            "b2c: Connected services",
            "Status, check latency, uptime and resources of the connected services.",
        )
        .with_panel(
            p.sql_table(
                "Status",
                "Which connected services are up, degraded, down or unknown now, when did they "
                "last answer, how fast, and with what error? Worst first.",
                STATUS,
                columns=[
                    "tenant",
                    "service",
                    "service_type",
                    "status",
                    "endpoint",
                    "last_checked",
                    "last_successful",
                    "last_latency_ms",
                    "last_error",
                ],
                renames={
                    "service_type": "type",
                    "last_checked": "last check",
                    "last_successful": "last success",
                    "last_latency_ms": "latency",
                    "last_error": "last error",
                },
                colours={"status": p.SERVICE_STATUS_COLOURS},
                units={"last_latency_ms": "ms"},
            )
        )
        .with_panel(
            p.prom_timeseries(
                "Up (1) or down (0)",
                "When was each connected service reachable, as its checks reported it?",
                [(UP, "{{connected_service_name}}")],
            )
        )
        .with_panel(
            p.prom_timeseries(
                "Check latency",
                "How long did each service take to answer its check?",
                [(LATENCY, "{{connected_service_name}}")],
                unit="s",
            )
        )
        .with_panel(
            p.sql_table(
                "Uptime in the range",
                "What share of each service's checks in the range answered (up or degraded), "
                "and how fast on average and at worst?",
                UPTIME,
                columns=[
                    "tenant",
                    "service",
                    "checks",
                    "uptime",
                    "avg_latency_ms",
                    "max_latency_ms",
                ],
                renames={"avg_latency_ms": "avg latency", "max_latency_ms": "max latency"},
                units={"uptime": "percentunit", "avg_latency_ms": "ms", "max_latency_ms": "ms"},
                span=12,
            )
        )
        .with_panel(
            p.sql_table(
                "Status changes",
                "When did which service change status, from what to what, and why?",
                STATUS_CHANGES,
                columns=["at", "tenant", "service", "previous", "status", "reason"],
                colours={"status": p.SERVICE_STATUS_COLOURS, "previous": p.SERVICE_STATUS_COLOURS},
                span=12,
            )
        )
        .with_panel(
            p.prom_timeseries(
                "CPU",
                "How busy is each reporting process (CPU share)?",
                [(CPU, "{{service_name}}")],
                unit="percentunit",
                span=8,
            )
        )
        .with_panel(
            p.prom_timeseries(
                "Memory",
                "How much memory does each reporting process use?",
                [(MEMORY, "{{service_name}}")],
                unit="bytes",
                span=8,
            )
        )
        .with_panel(
            p.sql_timeseries(
                "Connection pools and queues",
                "How full are the database connection pools and how deep the job queues of "
                "each owner?",
                POOL_AND_QUEUE,
                span=8,
            )
        )
    )
