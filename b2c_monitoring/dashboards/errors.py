"""Communication errors: which connected services fail to answer, and how (by pattern).

The records are the ``connected_service.communication_error`` log records of the
telemetry contract; ``error.pattern`` is the message with ids, numbers, times and URLs
masked, set by the collector at ingestion (``b2c_monitoring/error_patterns.py``).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from b2c_monitoring import contract as c
from b2c_monitoring.dashboards import panels as p
from b2c_monitoring.dashboards.common import LUCENE_TENANT, dashboard
from b2c_monitoring.error_patterns import ERROR_SEVERITY, PATTERN_ATTR

UID = "b2c-communication-errors"

SERVICE = f"Attributes.{c.CONNECTED_SERVICE_NAME}"
PATTERN = f"Attributes.{PATTERN_ATTR}"
EMITTER = f"Resource.{c.SERVICE_NAME}"

COMMUNICATION_ERRORS = (
    f'Attributes.{c.EVENT_NAME}:"{c.COMMUNICATION_ERROR_EVENT}" AND {LUCENE_TENANT}'
)
ERRORS = (
    f"(SeverityNumber:>={ERROR_SEVERITY} OR "
    f'Attributes.{c.EVENT_NAME}:"{c.COMMUNICATION_ERROR_EVENT}") AND {LUCENE_TENANT}'
)


def build() -> db.Dashboard:
    return (
        dashboard(
            UID,
            "b2c: Communication errors",
            "Failed calls to connected services, by service and by error pattern.",
        )
        .with_panel(
            p.es_timeseries(
                "Communication errors per service",
                "How many calls to each connected service failed per interval?",
                COMMUNICATION_ERRORS,
                split_by=SERVICE,
                span=16,
            )
        )
        .with_panel(
            p.es_terms_table(
                "Per service",
                "Which connected services had the most failed calls in the range?",
                COMMUNICATION_ERRORS,
                group_by=[SERVICE],
                renames={SERVICE: "service", "Count": "failed calls"},
                span=8,
                height=8,
            )
        )
        .with_panel(
            p.es_terms_table(
                "Patterns per service",
                "Which kinds of failure (error patterns) hit which service, and how often?",
                COMMUNICATION_ERRORS,
                group_by=[SERVICE, PATTERN],
                renames={SERVICE: "service", PATTERN: "pattern", "Count": "occurrences"},
                span=14,
            )
        )
        .with_panel(
            p.es_terms_table(
                "Errors per emitting service",
                "Which of our own services logged errors (level ERROR or above, and "
                "communication errors) most in the range, and with which pattern?",
                ERRORS,
                group_by=[EMITTER, PATTERN],
                renames={EMITTER: "emitted by", PATTERN: "pattern", "Count": "errors"},
                span=10,
            )
        )
        .with_panel(
            p.es_documents_table(
                "Recent communication errors",
                "What exactly failed most recently: which service, which endpoint, which message?",
                COMMUNICATION_ERRORS,
                columns=["@timestamp", SERVICE, f"Attributes.{c.URL_FULL}", PATTERN, "Body"],
                renames={
                    "@timestamp": "time",
                    SERVICE: "service",
                    f"Attributes.{c.URL_FULL}": "url",
                    PATTERN: "pattern",
                    "Body": "message",
                },
            )
        )
    )
