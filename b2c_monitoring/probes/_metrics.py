"""The probes' metrics: contract points, the gauges they are set on, and export counts.

Every probe turns what it observed into ``Point`` values (pure functions in its own
module) and hands them to ``MetricSink``, which sets one synchronous gauge per
contract metric. Gauges are exported as deltas: a point is exported once, in the
collection after it was set, and never repeated. So one check is one data point; a
probe that stopped (a stuck host thread, a dead process) stops reporting, which is
what lets the monitor call it stale; and an attribute set that changed (a new health
description) does not keep reporting its old value next to the new one, as a
cumulative gauge would.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry.metrics import Meter
from opentelemetry.metrics import _Gauge as ApiGauge
from opentelemetry.sdk.metrics import _Gauge as SdkGauge
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)

from b2c_monitoring import contract as c
from b2c_monitoring.probes._export import Ledger

_log = logging.getLogger(__name__)

GAUGE_DELTA: Final[dict[type, AggregationTemporality]] = {SdkGauge: AggregationTemporality.DELTA}


@dataclass(frozen=True)
class Point:
    """One data point of a contract metric."""

    metric: str
    value: int | float
    attributes: Mapping[str, str]


@dataclass(frozen=True)
class _Instrument:
    unit: str
    description: str


# Units as the semantic conventions spell them. The two status gauges have none:
# "1" would make them ratios, and Prometheus would name them ..._ratio.
INSTRUMENTS: Final = {
    c.SERVICE_UP: _Instrument("", "1 when the connected service answered its check, else 0"),
    c.SERVICE_CHECK_DURATION: _Instrument("s", "Time until the connected service answered"),
    c.COMPONENT_HEALTH_STATUS: _Instrument("", "2 healthy, 1 degraded, 0 unhealthy"),
    c.PROCESS_CPU_UTILIZATION: _Instrument("1", "CPU time of the process over the interval"),
    c.PROCESS_MEMORY_USAGE: _Instrument("By", "Resident memory of the process"),
    c.SYSTEM_MEMORY_LIMIT: _Instrument("By", "Physical memory of the machine"),
    c.PROCESS_THREAD_COUNT: _Instrument("{thread}", "Threads of the process"),
    c.DB_CLIENT_CONNECTION_COUNT: _Instrument("{connection}", "Pool connections by state"),
    c.DB_CLIENT_CONNECTION_MAX: _Instrument("{connection}", "Most connections the pool opens"),
    c.SCHEDULER_QUEUE_DEPTH: _Instrument("{job}", "Jobs waiting in the queue"),
}


class MetricSink:
    """Sets points on the gauges of one meter; thread-safe, never raises."""

    def __init__(self, meter: Meter) -> None:
        self._gauges: dict[str, ApiGauge] = {
            name: meter.create_gauge(name, unit=spec.unit, description=spec.description)
            for name, spec in INSTRUMENTS.items()
        }
        self._lock = threading.Lock()
        self._open = True

    def emit(self, points: Iterable[Point]) -> None:
        with self._lock:
            if not self._open:
                return
            for point in points:
                try:
                    self._gauges[point.metric].set(point.value, dict(point.attributes))
                except Exception:
                    # a probe's thread is the host's: log, never raise into it
                    _log.exception("could not record %s", point.metric)

    def close(self) -> None:
        """Later points are ignored (the meter provider is being shut down)."""
        with self._lock:
            self._open = False


def count_points(data: MetricsData) -> int:
    return sum(
        len(metric.data.data_points)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    )


class LedgerMetricExporter(MetricExporter):
    """Counts exported and failed data points. Nothing queues in front of a metric
    exporter (the reader collects what the gauges hold), so nothing is dropped."""

    def __init__(self, inner: MetricExporter, ledger: Ledger) -> None:
        super().__init__(
            preferred_temporality=GAUGE_DELTA,
            preferred_aggregation=getattr(inner, "_preferred_aggregation", None),
        )
        self._inner = inner
        self._ledger = ledger

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        count = count_points(metrics_data)
        try:
            result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception:
            # the reader's thread is the edge: log, count, go on
            _log.exception("metric exporter raised; %d data points lost", count)
            result = MetricExportResult.FAILURE
        self._ledger.finished(count, result is MetricExportResult.SUCCESS)
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)
