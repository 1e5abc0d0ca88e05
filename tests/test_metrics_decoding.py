"""OTLP metrics into checks, health reports and resource samples (contract), no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import NumberDataPoint

from b2c_monitoring.processors.health import HealthStatus
from b2c_monitoring.processors.services import ServiceType
from b2c_monitoring.receivers.metrics import decode_request
from tests.otlp_metric_builders import gauge, histogram, metrics_request, point, updown

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
NS = int(NOW.timestamp()) * 10**9
ERP = {"connected_service.name": "enventa-erp", "connected_service.type": "ERP"}


def test_up_and_duration_of_one_instant_make_one_check() -> None:
    request = metrics_request(
        [
            gauge(
                "connected_service.up", point(1, {**ERP, "server.address": "erp.local"}, at_ns=NS)
            ),
            gauge("connected_service.check.duration", point(0.25, ERP, at_ns=NS), unit="s"),
        ],
        resource={"service.name": "erp-connector", "tenant.id": "acme"},
    )
    batch = decode_request(request, "default", NOW)
    [check] = batch.checks
    assert (check.tenant_id, check.service_name, check.up, check.latency_s) == (
        "acme",
        "enventa-erp",
        True,
        0.25,
    )
    assert (check.service_type, check.address, check.at) == (ServiceType.ERP, "erp.local", NOW)
    assert (batch.received, batch.accepted, batch.rejected) == (2, 2, [])


def test_a_histogram_duration_is_the_mean_of_its_interval() -> None:
    request = metrics_request(
        [
            gauge("connected_service.up", point(0, ERP, at_ns=NS)),
            histogram("connected_service.check.duration", 3.0, 4, ERP, NS),
        ]
    )
    [check] = decode_request(request, "default", NOW).checks
    assert (check.up, check.latency_s) == (False, 0.75)


def test_the_data_points_tenant_wins_over_the_resources_and_the_default_applies() -> None:
    request = metrics_request(
        [
            gauge(
                "component.health.status",
                point(2, {"component.name": "catalog", "tenant.id": "point-tenant"}, at_ns=NS),
                point(1, {"component.name": "search"}, at_ns=NS),
            )
        ],
        resource={"service.name": "catalog", "tenant.id": "resource-tenant"},
    )
    reports = decode_request(request, "default", NOW).health
    assert [(r.component, r.tenant_id, r.status) for r in reports] == [
        ("catalog", "point-tenant", HealthStatus.HEALTHY),
        ("search", "resource-tenant", HealthStatus.DEGRADED),
    ]
    no_tenant = metrics_request(
        [gauge("component.health.status", point(0, {"component.name": "x"}, at_ns=NS))]
    )
    [report] = decode_request(no_tenant, "default", NOW).health
    assert (report.tenant_id, report.status) == ("default", HealthStatus.UNHEALTHY)


def test_bad_points_are_rejected_alone_and_counted_with_their_reason() -> None:
    request = metrics_request(
        [
            gauge(
                "connected_service.check.duration",
                point(-0.5, ERP, at_ns=NS),
                point(0.1, {**ERP, "connected_service.name": "ok-erp"}, at_ns=NS),
            ),
            gauge("process.cpu.utilization", point(7.0, at_ns=NS), point(0.5, at_ns=NS + 1)),
            gauge(
                "connected_service.up",
                point(1, {**ERP, "connected_service.type": "Mainframe"}, at_ns=NS),
            ),
            gauge("connected_service.up", point(2, ERP, at_ns=NS)),
            gauge("connected_service.up", point(1, {"connected_service.type": "ERP"}, at_ns=NS)),
            gauge("component.health.status", point(3, {"component.name": "catalog"}, at_ns=NS)),
            gauge(
                "component.health.status",
                point(2, {"component.name": "future"}, at_ns=NS + 2 * 3600 * 10**9),
            ),
            gauge("process.memory.usage", point(float("nan"), at_ns=NS)),
            gauge("http.server.duration", point(0.3, at_ns=NS)),
        ]
    )
    batch = decode_request(request, "default", NOW)
    reasons = sorted(r.reason for r in batch.rejected)
    assert reasons == [
        "future_time",
        "missing_attribute",
        "out_of_range",
        "out_of_range",
        "out_of_range",
        "out_of_range",
        "out_of_range",
        "unknown_type",
    ]
    assert [c.service_name for c in batch.checks] == ["ok-erp"]
    assert [s.cpu_ratio for s in batch.resources] == [0.5]
    assert (batch.received, batch.ignored, batch.accepted) == (11, 1, 2)


def test_resource_metrics_of_one_instant_make_one_sample_of_their_owner() -> None:
    request = metrics_request(
        [
            gauge("process.cpu.utilization", point(0.4, at_ns=NS)),
            gauge("system.cpu.utilization", point(0.9, at_ns=NS)),
            gauge("process.memory.usage", point(512, at_ns=NS), unit="By"),
            gauge("system.memory.limit", point(2048, at_ns=NS), unit="By"),
            updown("process.thread.count", point(12, at_ns=NS)),
            updown(
                "db.client.connection.count",
                point(
                    3,
                    {"db.client.connection.state": "used", "db.client.connection.pool.name": "a"},
                    at_ns=NS,
                ),
                point(
                    2,
                    {"db.client.connection.state": "idle", "db.client.connection.pool.name": "a"},
                    at_ns=NS,
                ),
                point(
                    1,
                    {"db.client.connection.state": "used", "db.client.connection.pool.name": "b"},
                    at_ns=NS,
                ),
            ),
            updown(
                "db.client.connection.max",
                point(10, {"db.client.connection.pool.name": "a"}, at_ns=NS),
            ),
            gauge("scheduler.queue.depth", point(17, at_ns=NS)),
        ],
        resource={"service.name": "crm-connector", "connected_service.name": "crm-db"},
    )
    [sample] = decode_request(request, "default", NOW).resources
    assert sample.owner == "crm-db"
    assert sample.cpu_ratio == 0.4  # the owner's own process beats the host
    assert (sample.memory_used, sample.memory_limit, sample.threads) == (512, 2048, 12)
    assert (sample.pool_used, sample.pool_idle, sample.pool_max) == (4, 2, 10)
    assert sample.queue_depth == 17


def test_the_owner_is_the_emitting_service_without_a_connected_service_name() -> None:
    request = metrics_request(
        [gauge("process.thread.count", point(5, at_ns=NS))], {"service.name": "catalog"}
    )
    [sample] = decode_request(request, "default", NOW).resources
    assert sample.owner == "catalog"


def test_cpu_by_mode_and_logical_cpu_is_the_busy_share_and_memory_only_used() -> None:
    def cpu(mode: str, number: int, value: float) -> NumberDataPoint:
        return point(value, {"cpu.mode": mode, "cpu.logical_number": number}, at_ns=NS)

    request = metrics_request(
        [
            gauge(
                "system.cpu.utilization",
                cpu("user", 0, 0.5),
                cpu("system", 0, 0.1),
                cpu("idle", 0, 0.4),
                cpu("user", 1, 0.2),
                cpu("idle", 1, 0.8),
            ),
            updown(
                "system.memory.usage",
                point(100, {"system.memory.state": "used"}, at_ns=NS),
                point(900, {"system.memory.state": "free"}, at_ns=NS),
            ),
        ],
        {"service.name": "search"},
    )
    batch = decode_request(request, "default", NOW)
    [sample] = batch.resources
    assert sample.cpu_ratio == pytest.approx(0.4)
    assert sample.memory_used == 100
    assert batch.rejected == []


def test_other_metrics_are_ignored() -> None:
    request = metrics_request([gauge("http.server.active_requests", point(3, at_ns=NS))])
    batch = decode_request(request, "default", NOW)
    assert (batch.received, batch.ignored, batch.checks, batch.health, batch.resources) == (
        1,
        1,
        [],
        [],
        [],
    )


def test_points_of_several_instants_are_several_checks() -> None:
    later = NS + 30 * 10**9
    request = metrics_request(
        [gauge("connected_service.up", point(1, ERP, at_ns=NS), point(0, ERP, at_ns=later))]
    )
    checks = decode_request(request, "default", NOW).checks
    assert [(c.at, c.up) for c in checks] == [(NOW, True), (NOW + timedelta(seconds=30), False)]
