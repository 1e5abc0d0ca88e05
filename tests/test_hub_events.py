"""Hub events from derived changes (pure): one per job or component per batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from b2c_monitoring.contract import JobState
from b2c_monitoring.live_events import (
    HubEvent,
    health_status_changed,
    job_status_changed,
    resource_metrics_updated,
)
from b2c_monitoring.processors.health import HealthChange, HealthStatus
from b2c_monitoring.processors.jobs import JobChange
from b2c_monitoring.processors.resources import ResourceMetrics

AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _job(job_id: str, status: JobState, progress: int) -> JobChange:
    return JobChange("t", job_id, status, progress, AT, None)


def test_a_job_that_changed_several_times_in_a_batch_is_announced_once_in_its_last_state() -> None:
    changes = [
        _job("a", JobState.PENDING, 0),
        _job("b", JobState.RUNNING, 10),
        _job("a", JobState.RUNNING, 40),
        _job("a", JobState.SUCCEEDED, 100),
    ]
    assert job_status_changed(changes, {("t", "a"): "ERP_SYNC"}) == [
        HubEvent("t", "JobStatusChanged", ("a", "succeeded", 100), job_id="a", job_type="ERP_SYNC"),
        HubEvent("t", "JobStatusChanged", ("b", "running", 10), job_id="b"),
    ]


def test_a_component_is_announced_with_its_last_status() -> None:
    changes = [
        HealthChange("t", "db", HealthStatus.HEALTHY, HealthStatus.DEGRADED, AT),
        HealthChange("t", "db", HealthStatus.DEGRADED, HealthStatus.UNHEALTHY, AT),
    ]
    assert health_status_changed(changes) == [
        HubEvent("t", "HealthStatusChanged", ("db", "unhealthy"))
    ]


def test_the_overall_status_is_announced_when_a_change_moves_it() -> None:
    worse = [HealthChange("t", "db", HealthStatus.HEALTHY, HealthStatus.UNHEALTHY, AT)]
    after = {"t": {"db": HealthStatus.UNHEALTHY, "queue": HealthStatus.HEALTHY}}
    assert health_status_changed(worse, after)[1:] == [
        HubEvent("t", "HealthStatusChanged", ("overall", "unhealthy"))
    ]
    # queue is still unhealthy: db's recovery leaves the overall status where it was
    better = [HealthChange("t", "db", HealthStatus.UNHEALTHY, HealthStatus.HEALTHY, AT)]
    after = {"t": {"db": HealthStatus.HEALTHY, "queue": HealthStatus.UNHEALTHY}}
    assert health_status_changed(better, after)[1:] == []


def test_resource_metrics_go_out_in_the_adrs_camel_case_shape() -> None:
    metrics = ResourceMetrics(
        cpu_percent=12.5,
        cpu_average=10.0,
        cpu_peak=30.0,
        memory_used_bytes=100,
        memory_total_bytes=1000,
        memory_percent=10.0,
        memory_peak_bytes=200,
        connection_pool_active=3,
        connection_pool_total=10,
        thread_count=7,
        queue_depth=None,
        timestamp=AT,
        window=timedelta(hours=1),
    )
    [event] = resource_metrics_updated([("t", "svc-1", metrics)])
    assert event.service_id == "svc-1"
    assert event.arguments == (
        "svc-1",
        {
            "cpuPercent": 12.5,
            "cpuAverage": 10.0,
            "cpuPeak": 30.0,
            "memoryUsedBytes": 100,
            "memoryTotalBytes": 1000,
            "memoryPercent": 10.0,
            "memoryPeakBytes": 200,
            "connectionPoolActive": 3,
            "connectionPoolTotal": 10,
            "threadCount": 7,
            "queueDepth": None,
            "timestamp": "2026-11-28T12:00:00Z",
            "windowSeconds": 3600,
        },
    )
