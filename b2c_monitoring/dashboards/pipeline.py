"""The pipeline itself: collector, processor, API, and what each of them refuses or drops."""

# The SQL here is the text of Grafana panels, run by Grafana with its own variables
# and macros; nothing of ours formats user input into it.
# ruff: noqa: S608

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from b2c_monitoring.dashboards import panels as p
from b2c_monitoring.dashboards.common import LUCENE_TENANT, SQL_TENANT, dashboard

UID = "b2c-pipeline"

RI = "$__rate_interval"

RECEIVED = [
    (f"sum(rate(otelcol_receiver_accepted_spans[{RI}]))", "spans"),
    (f"sum(rate(otelcol_receiver_accepted_metric_points[{RI}]))", "metric points"),
    (f"sum(rate(otelcol_receiver_accepted_log_records[{RI}]))", "log records"),
]
EXPORTED = [
    (f"sum by (exporter) (rate(otelcol_exporter_sent_spans[{RI}]))", "{{exporter}} spans"),
    (
        f"sum by (exporter) (rate(otelcol_exporter_sent_metric_points[{RI}]))",
        "{{exporter}} metric points",
    ),
    (
        f"sum by (exporter) (rate(otelcol_exporter_sent_log_records[{RI}]))",
        "{{exporter}} log records",
    ),
]
QUEUES = [
    ("max by (exporter) (otelcol_exporter_queue_size)", "{{exporter}} size"),
    ("max by (exporter) (otelcol_exporter_queue_capacity)", "{{exporter}} capacity"),
]
# absent until the first refusal or failure: `or vector(0)` draws the zero line


def _sum_of(*metrics: str) -> str:
    """The summed rate of counters, each absent until its first count (then 0)."""
    return " + ".join(f"(sum(rate({m}[{RI}])) or vector(0))" for m in metrics)


_SIGNALS = ("spans", "metric_points", "log_records")
REFUSED_AND_DROPPED = [
    (
        _sum_of(*(f"otelcol_receiver_refused_{s}" for s in _SIGNALS)),
        "refused by the collector's receivers",
    ),
    (
        _sum_of(*(f"otelcol_exporter_send_failed_{s}" for s in _SIGNALS)),
        "failed to send by the collector's exporters",
    ),
    (
        _sum_of(*(f"otelcol_exporter_enqueue_failed_{s}" for s in _SIGNALS)),
        "dropped: the collector's queue was full",
    ),
    (_sum_of("b2c_processor_refused_batches_total"), "export requests refused by the processor"),
]
ELASTICSEARCH_DOCS = [
    (
        f"sum by (outcome) (rate(otelcol_elasticsearch_docs_processed[{RI}]))",
        "{{outcome}}",
    ),
]
PROCESSOR_ITEMS = [
    (f"sum by (signal) (rate(b2c_processor_received_items_total[{RI}]))", "received {{signal}}"),
    (f"sum by (signal) (rate(b2c_processor_stored_items_total[{RI}]))", "stored {{signal}}"),
]
REJECTED = [
    (
        f"sum by (signal, reason) (increase(b2c_processor_rejected_items_total[{RI}]))",
        "{{signal}}: {{reason}}",
    ),
]


def _p95(metric: str, by: str, selector: str = "") -> str:
    return f"histogram_quantile(0.95, sum by (le, {by}) (rate({metric}_bucket{selector}[{RI}])))"


BATCH_P95 = [(_p95("b2c_processor_batch_seconds", "signal"), "{{signal}}")]
STORE_P95 = [(_p95("b2c_processor_store_seconds", "signal"), "{{signal}}")]
API_P95 = [
    (
        _p95("b2c_api_request_seconds", "route", '{route!="unmatched"}'),
        "{{route}}",
    )
]
API_REQUESTS = [
    (f"sum by (status) (rate(b2c_api_request_seconds_count[{RI}]))", "{{status}}"),
]
HUB_AND_NOTIFICATIONS = [
    ("sum(b2c_hub_connections)", "hub connections"),
    (
        f'sum(rate(b2c_notifications_total{{outcome="sent"}}[{RI}])) or vector(0)',
        "notifications sent",
    ),
    (
        f'sum(rate(b2c_notifications_total{{outcome="failed"}}[{RI}])) or vector(0)',
        "notifications failed",
    ),
]

STORED_PER_TENANT = f"""\
SELECT $__timeGroupAlias(recorded_at, $__interval), tenant_id AS metric, count(*) AS changes
FROM job_changes
WHERE {SQL_TENANT} AND $__timeFilter(recorded_at)
GROUP BY 1, 2
ORDER BY 1"""

LOGS_PER_TENANT = f"_exists_:Body AND {LUCENE_TENANT}"


def build() -> db.Dashboard:
    return (
        dashboard(
            UID,
            "b2c: Pipeline",
            "The monitoring pipeline itself: collector receive and export rates, queues, "
            "refused and dropped data, processor throughput and latency, API latency. The "
            "tenant variable applies to the per-tenant panels at the bottom; the others "
            "are the pipeline's, shared by every tenant.",
        )
        .with_panel(
            p.prom_timeseries(
                "Collector: received",
                "How much telemetry per second does the collector accept, per signal?",
                RECEIVED,
                unit="cps",
                span=8,
            )
        )
        .with_panel(
            p.prom_timeseries(
                "Collector: exported",
                "How much does each exporter (processor, Elasticsearch, Prometheus) send on?",
                EXPORTED,
                unit="cps",
                span=8,
            )
        )
        .with_panel(
            p.prom_timeseries(
                "Collector: queues",
                "How full is each exporter's sending queue (items or batches, against its "
                "capacity)? A queue that keeps growing means its destination does not keep up.",
                QUEUES,
                span=8,
            )
        )
        .with_panel(
            p.prom_timeseries(
                "Refused and dropped",
                "Is data refused, failing to send or dropped anywhere along the pipeline?",
                REFUSED_AND_DROPPED,
                unit="cps",
                span=12,
            )
        )
        .with_panel(
            p.prom_timeseries(
                "Elasticsearch: documents indexed",
                "Does Elasticsearch accept the log documents, or reject some (outcome other "
                "than success)?",
                ELASTICSEARCH_DOCS,
                unit="cps",
                span=12,
            )
        )
        .with_panel(
            p.prom_timeseries(
                "Processor: throughput",
                "How many items per second does the processor receive and store, per signal?",
                PROCESSOR_ITEMS,
                unit="cps",
                span=8,
            )
        )
        .with_panel(
            p.prom_timeseries(
                "Processor: rejected by reason",
                "Which reports break the telemetry contract, and why (rejected items per "
                "interval)?",
                REJECTED,
                span=8,
            )
        )
        .with_panel(
            p.prom_timeseries(
                "Processor: batch latency p95",
                "How long does the processor take to decode, derive and store one export "
                "request (95th percentile)?",
                BATCH_P95,
                unit="s",
                span=8,
            )
        )
        .with_panel(
            p.prom_timeseries(
                "Processor: database latency p95",
                "How long does one export request's Postgres transaction take (95th percentile)?",
                STORE_P95,
                unit="s",
                span=8,
            )
        )
        .with_panel(
            p.prom_timeseries(
                "API: latency p95 per route",
                "How long does the admin API take to answer, per route (95th percentile)?",
                API_P95,
                unit="s",
                span=8,
            )
        )
        .with_panel(
            p.prom_timeseries(
                "API: requests per status",
                "How many API requests per second end in which status code?",
                API_REQUESTS,
                unit="reqps",
                span=8,
            )
        )
        .with_panel(
            p.prom_timeseries(
                "Hub connections and notifications",
                "How many live-update connections are open, and are alert notifications "
                "sent or failing?",
                HUB_AND_NOTIFICATIONS,
                span=8,
            )
        )
        .with_panel(
            p.sql_timeseries(
                "Job changes stored per tenant",
                "How many job status and progress changes did the processor store per "
                "tenant and interval?",
                STORED_PER_TENANT,
                bars=True,
                span=8,
            )
        )
        .with_panel(
            p.es_timeseries(
                "Log records indexed per service",
                "How many log records of the selected tenants reached Elasticsearch, per "
                "emitting service and interval?",
                LOGS_PER_TENANT,
                split_by="Resource.service.name",
                span=8,
            )
        )
    )
