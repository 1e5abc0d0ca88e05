"""The processor's own metrics, scraped by Prometheus (job ``b2c-processor``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECEIVED = Counter(
    "b2c_processor_received_items",
    "Telemetry items received from the collector, per signal (spans, data points, log records).",
    ["signal"],
)
STORED = Counter(
    "b2c_processor_stored_items",
    "Items whose derivation was stored in Postgres, per signal.",
    ["signal"],
)
REJECTED = Counter(
    "b2c_processor_rejected_items",
    "Items rejected as breaking the telemetry contract, per signal and reason (answered as partial success).",
    ["signal", "reason"],
)
IGNORED = Counter(
    "b2c_processor_ignored_items",
    "Items that carry nothing to derive (ordinary trace spans, signals not derived yet).",
    ["signal"],
)
REFUSED_BATCHES = Counter(
    "b2c_processor_refused_batches",
    "Export requests answered with an error status, per signal, gRPC code (UNAVAILABLE ones are "
    "kept and retried by the collector) and reason (store_unavailable, store_rejected, "
    "store_error, worker_died, bug, not_otlp).",
    ["signal", "code", "reason"],
)
RETRIED_BATCHES = Counter(
    "b2c_processor_retried_batches",
    "Export requests that came back after a retryable refusal (the collector's retry), per "
    "signal and outcome of the retry (stored, refused).",
    ["signal", "outcome"],
)
STORE_SECONDS = Histogram(
    "b2c_processor_store_seconds",
    "Time of one export request's Postgres transaction (with its conflict retries), per signal and outcome (stored, failed).",
    ["signal", "outcome"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BATCH_SECONDS = Histogram(
    "b2c_processor_batch_seconds",
    "Time to decode, derive and store one export request.",
    ["signal"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
JOB_CHANGES = Counter(
    "b2c_processor_job_changes",
    "Changes of job status or progress stored, per new status.",
    ["status"],
)
SERVICE_CHANGES = Counter(
    "b2c_processor_service_status_changes",
    "Changes of a connected service's status stored, per new status.",
    ["status"],
)
HEALTH_CHANGES = Counter(
    "b2c_processor_health_changes",
    "Changes of a component's health stored, per new status.",
    ["status"],
)


def observe_store(signal: str, seconds: float | None, stored: bool) -> None:
    """Record a store transaction's time; ``None`` when the request never reached the store."""
    if seconds is not None:
        STORE_SECONDS.labels(signal, "stored" if stored else "failed").observe(seconds)
