"""Services, health and resources in the real Postgres: batches, history, rollups, retention."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import psycopg_pool
import pytest

from b2c_monitoring.processors.health import HealthReport, HealthStatus
from b2c_monitoring.processors.resources import ResourceSample, summarize
from b2c_monitoring.processors.services import (
    CheckReport,
    DampingPolicy,
    DeclaredCheck,
    ServiceStatus,
    ServiceType,
    uptimes,
)
from b2c_monitoring.storage.db import make_pool
from b2c_monitoring.storage.health import HealthQuery, HealthStore
from b2c_monitoring.storage.maintenance import maintain
from b2c_monitoring.storage.metrics import MetricsPolicy, MetricsStore
from b2c_monitoring.storage.partitions import existing
from b2c_monitoring.storage.resources import ResourceStore
from b2c_monitoring.storage.services import ServiceQuery, ServiceStore

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
POLICY = MetricsPolicy(
    damping=DampingPolicy(down_after=3, up_after=2, degraded_after_s=1.0),
    stale_after=timedelta(minutes=3),
)


@pytest.fixture
def pool(fresh_db: str) -> Iterator[psycopg_pool.ConnectionPool]:
    p = make_pool(fresh_db, max_size=4, name="test")
    p.open(wait=True)
    yield p
    p.close()


@pytest.fixture
def store(pool: psycopg_pool.ConnectionPool) -> MetricsStore:
    maintain(pool, POLICY, NOW)
    return MetricsStore(pool, POLICY)


def services(pool: psycopg_pool.ConnectionPool) -> ServiceStore:
    return ServiceStore(pool, POLICY.damping, POLICY.retention)


def check(
    at: datetime, up: bool, latency: float | None = 0.1, name: str = "enventa-erp"
) -> CheckReport:
    return CheckReport("t1", name, at, up, latency if up else None, ServiceType.ERP, "erp.local")


def test_checks_are_derived_with_damping_and_their_changes_and_samples_stored(
    store: MetricsStore, pool: psycopg_pool.ConnectionPool
) -> None:
    t = NOW - timedelta(minutes=10)
    reports = [
        check(t + timedelta(seconds=10 * i), up) for i, up in enumerate([True, False, False])
    ]
    store.apply(reports, [], [], NOW)
    [service] = services(pool).find("enventa-erp", ["t1"])
    assert (service.status, service.streak, service.endpoint) == (ServiceStatus.UP, 2, "erp.local")

    applied = store.apply([check(t + timedelta(seconds=30), False)], [], [], NOW)
    assert [(c.previous, c.status) for c in applied.status_changes] == [
        (ServiceStatus.UP, ServiceStatus.DOWN)
    ]
    [service] = services(pool).find("enventa-erp", ["t1"])
    assert service.status is ServiceStatus.DOWN
    assert service.id is not None
    assert services(pool).find(service.id, ["t1"]) == [service]
    assert services(pool).find(service.id, ["other"]) == []
    history = services(pool).changes([service.id], NOW - timedelta(days=1))[service.id]
    assert [c.status for c in history] == [ServiceStatus.UP, ServiceStatus.DOWN]
    raw = services(pool).latency(service.id, NOW - timedelta(hours=1), NOW, "raw")
    assert [p.up_checks for p in raw] == [1, 0, 0, 0]


def test_the_same_request_twice_is_stored_once(
    store: MetricsStore, pool: psycopg_pool.ConnectionPool
) -> None:
    t = NOW - timedelta(minutes=1)
    request = (
        [check(t, True)],
        [HealthReport("t1", "catalog", HealthStatus.HEALTHY, t)],
        [ResourceSample("t1", "crm-db", t, cpu_ratio=0.5)],
    )
    first = store.apply(*request, NOW)
    again = store.apply(*request, NOW)
    assert (first.check_samples, first.resource_samples, len(first.status_changes)) == (1, 1, 1)
    assert (again.resource_samples, again.status_changes, again.health_changes) == (0, [], [])
    window = ResourceStore(pool).windows([("t1", "crm-db")])[("t1", "crm-db")]
    assert summarize(window, NOW).cpu_average == pytest.approx(50.0)


def test_uptime_through_the_store_is_exact(
    store: MetricsStore, pool: psycopg_pool.ConnectionPool
) -> None:
    strict = MetricsStore(pool, MetricsPolicy(damping=DampingPolicy(down_after=1, up_after=1)))
    start = NOW - timedelta(hours=12)
    # up for 12 h but for two outages: 1 h from -10 h, 30 min from -2 h
    timeline = [
        (start, True),
        (NOW - timedelta(hours=10), False),
        (NOW - timedelta(hours=9), True),
        (NOW - timedelta(hours=2), False),
        (NOW - timedelta(hours=1, minutes=30), True),
    ]
    strict.apply([check(at, up) for at, up in timeline], [], [], NOW)
    [service] = services(pool).find("enventa-erp", None)
    assert service.id is not None
    changes = services(pool).changes([service.id], NOW - timedelta(days=30))[service.id]
    result = uptimes(changes, service.status, NOW)
    # known for 12 h of each window: 1.5 h down
    assert result == {
        "last24h": pytest.approx(100 * 10.5 / 12),
        "last7d": pytest.approx(100 * 10.5 / 12),
        "last30d": pytest.approx(100 * 10.5 / 12),
    }


def test_history_beyond_24_hours_is_downsampled(
    store: MetricsStore, pool: psycopg_pool.ConnectionPool
) -> None:
    old = NOW - timedelta(hours=30)
    recent = NOW - timedelta(hours=1)
    reports = [check(old + timedelta(seconds=30 * i), True, 0.1 * (i + 1)) for i in range(4)]
    reports += [check(recent + timedelta(seconds=30 * i), True, 0.2) for i in range(3)]
    store.apply(reports, [], [], NOW)
    maintain(pool, POLICY, NOW)
    [service] = services(pool).find("enventa-erp", None)
    assert service.id is not None

    points = services(pool).latency_history(service.id, NOW - timedelta(days=7), NOW, NOW)
    assert [p.resolution for p in points] == ["5m", "raw", "raw", "raw"]
    five = points[0]
    assert (five.checks, five.latency_count) == (4, 4)
    assert five.average_s == pytest.approx(0.25)
    assert five.min_s == pytest.approx(0.1)
    assert five.max_s == pytest.approx(0.4)
    [hour] = services(pool).latency(
        service.id, old - timedelta(hours=1), old + timedelta(hours=1), "1h"
    )
    assert hour.checks == 4
    assert hour.average_s == pytest.approx(0.25)


def test_retention_drops_whole_partitions_and_keeps_the_rollups(
    store: MetricsStore, pool: psycopg_pool.ConnectionPool, fresh_db: str
) -> None:
    at = NOW - timedelta(minutes=30)
    store.apply([check(at, True)], [], [ResourceSample("t1", "crm-db", at, cpu_ratio=0.3)], NOW)
    maintain(pool, POLICY, NOW)
    day = f"{at:%Y%m%d}"
    with psycopg.connect(fresh_db) as conn:
        assert f"service_checks_p{day}" in existing(conn, "service_checks")

    later = NOW + timedelta(days=3)
    report = maintain(pool, POLICY, later)
    assert f"service_checks_p{day}" in report.dropped
    assert f"resource_samples_p{day}" in report.dropped
    with psycopg.connect(fresh_db) as conn:
        assert f"service_checks_p{day}" not in existing(conn, "service_checks")
        assert f"service_checks_5m_p{day}" in existing(conn, "service_checks_5m")
        assert conn.execute("SELECT count(*) FROM service_checks").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM service_checks_5m").fetchone() == (1,)
        assert f"service_checks_p{later:%Y%m%d}" in existing(conn, "service_checks")

    far = maintain(pool, POLICY, NOW + timedelta(days=200))
    assert f"service_checks_1h_p{at:%Y%m}" in far.dropped
    assert f"service_status_changes_p{at:%Y%m}" in far.dropped
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT count(*) FROM service_checks_1h").fetchone() == (0,)
    # the service itself stays, with its current status
    [service] = services(pool).find("enventa-erp", None)
    assert service.status is ServiceStatus.UP


def test_a_second_replica_skips_a_round_while_one_maintains(
    pool: psycopg_pool.ConnectionPool, fresh_db: str
) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (0x62326D70,))
        assert maintain(pool, POLICY, NOW).ran is False
        # explicitly: a closed session's locks go a moment after the client has left
        other.execute("SELECT pg_advisory_unlock(%s)", (0x62326D70,))
    assert maintain(pool, POLICY, NOW).ran is True


def test_a_silent_component_turns_unknown_once_in_maintenance(
    store: MetricsStore, pool: psycopg_pool.ConnectionPool
) -> None:
    t = NOW - timedelta(minutes=1)
    store.apply(
        [],
        [
            HealthReport("t1", "catalog", HealthStatus.HEALTHY, t),
            HealthReport("t1", "search", HealthStatus.DEGRADED, t, "slow"),
        ],
        [],
        NOW,
    )
    health = HealthStore(pool)
    assert [c.status for c in health.components(HealthQuery(["t1"]))] == [
        HealthStatus.HEALTHY,
        HealthStatus.DEGRADED,
    ]
    later = NOW + timedelta(minutes=10)
    store.apply([], [HealthReport("t1", "search", HealthStatus.HEALTHY, later)], [], later)
    assert maintain(pool, POLICY, later).expired_components == 1
    assert maintain(pool, POLICY, later).expired_components == 0
    components = {c.name: c.status for c in health.components(HealthQuery(["t1"]))}
    assert components == {"catalog": HealthStatus.UNKNOWN, "search": HealthStatus.HEALTHY}
    history = health.history(HealthQuery(["t1"], "catalog"), NOW - timedelta(hours=1), later)
    assert [(c.status, c.at) for c in history] == [
        (HealthStatus.HEALTHY, t),
        (HealthStatus.UNKNOWN, t + POLICY.stale_after),
    ]


def test_a_declared_service_keeps_its_check_and_takes_reports(
    store: MetricsStore, pool: psycopg_pool.ConnectionPool
) -> None:
    spec = DeclaredCheck("http", "http://user:pw@pim.local/health", degraded_after_s=0.5)
    declared, created = services(pool).declare(
        "t1", "pim", ServiceType.PIM, "https://pim.local", spec, NOW
    )
    assert created
    assert declared.status is ServiceStatus.UNKNOWN
    assert declared.id is not None
    store.apply([check(NOW, True, 0.7, name="pim")], [], [], NOW)
    [service] = services(pool).find("pim", ["t1"])
    # the declared threshold (0.5 s) decides degraded, the declared endpoint stays
    assert (service.status, service.endpoint, service.check) == (
        ServiceStatus.DEGRADED,
        "https://pim.local",
        spec,
    )
    again, created = services(pool).declare("t1", "pim", ServiceType.PIM, None, None, NOW)
    assert not created
    assert again.id == declared.id
    assert again.status is ServiceStatus.DEGRADED
    listed = services(pool).select(ServiceQuery(tenants=["t1"], statuses=[ServiceStatus.DEGRADED]))
    assert [s.name for s in listed] == ["pim"]


def test_a_report_far_in_the_past_gets_its_partition(
    store: MetricsStore, pool: psycopg_pool.ConnectionPool
) -> None:
    long_ago = NOW - timedelta(days=400)
    applied = store.apply([check(long_ago, True, name="old")], [], [], NOW)
    assert [c.at for c in applied.status_changes] == [long_ago]
    assert applied.check_samples == 0  # older than full resolution: not kept as a sample
