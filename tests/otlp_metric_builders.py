"""OTLP metric messages built by hand, as any SDK following the contract would send them."""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from tests.otlp_builders import kvs


def point(
    value: float, attrs: dict[str, Any] | None = None, *, at_ns: int | None = None
) -> NumberDataPoint:
    p = NumberDataPoint(attributes=kvs(attrs or {}), time_unix_nano=at_ns or time.time_ns())
    if isinstance(value, int) and not isinstance(value, bool):
        p.as_int = value
    else:
        p.as_double = float(value)
    return p


def gauge(name: str, *points: NumberDataPoint, unit: str = "") -> Metric:
    return Metric(name=name, unit=unit, gauge=Gauge(data_points=list(points)))


def updown(name: str, *points: NumberDataPoint) -> Metric:
    return Metric(
        name=name,
        sum=Sum(
            data_points=list(points),
            is_monotonic=False,
            aggregation_temporality=AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE,
        ),
    )


def histogram(name: str, total: float, count: int, attrs: dict[str, Any], at_ns: int) -> Metric:
    return Metric(
        name=name,
        unit="s",
        histogram=Histogram(
            data_points=[
                HistogramDataPoint(
                    attributes=kvs(attrs), time_unix_nano=at_ns, sum=total, count=count
                )
            ],
            aggregation_temporality=AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA,
        ),
    )


def metrics_request(
    metrics: list[Metric], resource: dict[str, Any] | None = None
) -> ExportMetricsServiceRequest:
    return ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(
                resource=Resource(attributes=kvs(resource or {"service.name": "erp-connector"})),
                scope_metrics=[ScopeMetrics(metrics=metrics)],
            )
        ]
    )
