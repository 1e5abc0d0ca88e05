"""Connected-service status, damping and uptime, pinned without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from b2c_monitoring.processors.services import (
    CheckReport,
    DampingPolicy,
    DeclaredCheck,
    Service,
    ServiceStatus,
    ServiceType,
    StatusChange,
    derive,
    derive_all,
    new_service,
    uptime_percent,
    uptimes,
)

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)
POLICY = DampingPolicy(down_after=3, up_after=2, latency_after=2, degraded_after_s=1.0)
UP, DEGRADED, DOWN, UNKNOWN = (
    ServiceStatus.UP,
    ServiceStatus.DEGRADED,
    ServiceStatus.DOWN,
    ServiceStatus.UNKNOWN,
)


def check(second: int, up: bool | None, latency: float | None = 0.05, **kw: object) -> CheckReport:
    return CheckReport(
        tenant_id="t1",
        service_name="enventa-erp",
        at=T0 + timedelta(seconds=second),
        up=up,
        latency_s=latency if up is not False else None,
        **kw,  # type: ignore[arg-type]
    )


def statuses(reports: list[CheckReport], service: Service | None = None) -> list[ServiceStatus]:
    seen = []
    for report in reports:
        service, _ = derive(service, report, POLICY, NOW)
        seen.append(service.status)
    return seen


def test_a_service_is_known_from_its_first_report_with_its_status() -> None:
    service, changes = derive(
        None,
        check(0, True, 0.2, service_type=ServiceType.ERP, address="erp.local"),
        POLICY,
        NOW,
    )
    assert (service.status, service.service_type, service.endpoint) == (
        UP,
        ServiceType.ERP,
        "erp.local",
    )
    assert service.last_checked == service.last_successful == T0
    assert changes == [StatusChange("t1", "enventa-erp", UNKNOWN, UP, T0, "answering")]


def test_a_service_turns_down_only_after_the_damping_threshold_of_failures() -> None:
    reports = [check(0, True), check(10, False), check(20, False), check(30, False)]
    assert statuses(reports) == [UP, UP, UP, DOWN]


def test_one_success_between_failures_resets_the_count() -> None:
    reports = [check(0, True), check(10, False), check(20, False), check(30, True)]
    reports += [check(40, False), check(50, False)]
    assert statuses(reports) == [UP] * 6


def test_a_down_service_comes_back_up_after_consecutive_successes() -> None:
    reports = [check(0, False), check(10, True), check(20, False), check(30, True)]
    reports += [check(40, True)]
    assert statuses(reports) == [DOWN, DOWN, DOWN, DOWN, UP]


def test_a_service_turns_degraded_when_slow_for_consecutive_checks_and_recovers() -> None:
    reports = [check(0, True, 0.1), check(10, True, 1.5), check(20, True, 0.1)]
    reports += [check(30, True, 1.5), check(40, True, 2.0), check(50, True, 0.2)]
    reports += [check(60, True, 0.2)]
    assert statuses(reports) == [UP, UP, UP, UP, DEGRADED, DEGRADED, UP]


def test_a_declared_threshold_beats_the_default() -> None:
    declared = new_service(
        "t1",
        "enventa-erp",
        T0,
        declared=True,
        check=DeclaredCheck("http", "http://erp", degraded_after_s=5.0),
    )
    assert statuses([check(0, True, 1.5)], declared) == [UP]
    assert statuses([check(0, True, 5.5)], declared) == [DEGRADED]


def test_leaving_down_lands_on_what_the_last_answering_check_observed() -> None:
    service, _ = derive_all(None, [check(0, False)], POLICY, NOW)
    service, changes = derive_all(
        service, [check(10, True, 3.0), check(20, True, 3.0)], POLICY, NOW
    )
    assert service is not None
    assert service.status is DEGRADED
    assert [(c.previous, c.status) for c in changes] == [(DOWN, DEGRADED)]


def test_late_and_duplicate_checks_change_nothing() -> None:
    service, _ = derive_all(None, [check(0, True), check(30, True)], POLICY, NOW)
    assert service is not None
    for late in (check(10, False), check(30, False)):
        after, changes = derive(service, late, POLICY, NOW)
        assert after == service
        assert changes == []


def test_a_batch_is_folded_in_time_order() -> None:
    shuffled = [check(30, False), check(0, True), check(20, False), check(10, False)]
    service, changes = derive_all(None, shuffled, POLICY, NOW)
    assert service is not None
    assert service.status is DOWN
    assert [(c.status, c.at) for c in changes] == [
        (UP, T0),
        (DOWN, T0 + timedelta(seconds=30)),
    ]


def test_last_successful_and_the_error_of_a_failed_check() -> None:
    service, _ = derive_all(
        None, [check(0, True), check(10, False, error="connection refused")], POLICY, NOW
    )
    assert service is not None
    assert service.last_checked == T0 + timedelta(seconds=10)
    assert service.last_successful == T0
    assert service.last_error == "connection refused"


def test_average_latency_is_over_the_latest_answering_checks() -> None:
    policy = DampingPolicy(latency_window=3)
    reports = [check(i, True, lat) for i, lat in enumerate([9.0, 0.1, 0.2, 0.3])]
    reports.append(check(10, False))
    service, _ = derive_all(None, reports, policy, NOW)
    assert service is not None
    assert service.average_latency_s == pytest.approx(0.2)


def test_a_latency_without_up_down_feeds_the_latency_but_not_the_status() -> None:
    service, _ = derive_all(None, [check(0, False), check(10, None, 0.4)], POLICY, NOW)
    assert service is not None
    assert service.status is DOWN
    assert service.recent_latencies == (0.4,)


# uptime


def change(previous: ServiceStatus, status: ServiceStatus, at: datetime) -> StatusChange:
    return StatusChange("t1", "enventa-erp", previous, status, at)


DAY = timedelta(days=1)
END = datetime(2026, 12, 31, 0, 0, tzinfo=UTC)


def test_uptime_over_a_window_with_known_outages_is_exact() -> None:
    history = [
        change(UNKNOWN, UP, END - 40 * DAY),
        # 2 h down ten days ago, 30 min down yesterday, 1 h degraded (counts as up)
        change(UP, DOWN, END - 10 * DAY),
        change(DOWN, UP, END - 10 * DAY + timedelta(hours=2)),
        change(UP, DOWN, END - timedelta(hours=20)),
        change(DOWN, UP, END - timedelta(hours=19, minutes=30)),
        change(UP, DEGRADED, END - timedelta(hours=3)),
        change(DEGRADED, UP, END - timedelta(hours=2)),
    ]
    result = uptimes(history, UP, END)
    assert result["last24h"] == pytest.approx(100 * (1 - 0.5 / 24))
    assert result["last7d"] == pytest.approx(100 * (1 - 0.5 / (7 * 24)))
    assert result["last30d"] == pytest.approx(100 * (1 - 2.5 / (30 * 24)))


def test_time_before_the_first_check_does_not_count() -> None:
    history = [
        change(UNKNOWN, UP, END - 6 * timedelta(hours=1)),
        change(UP, DOWN, END - 3 * timedelta(hours=1)),
    ]
    assert uptime_percent(history, DOWN, END - DAY, END) == pytest.approx(50.0)


def test_a_service_down_the_whole_window_has_zero_and_a_new_one_none() -> None:
    history = [change(UNKNOWN, UP, END - 20 * DAY), change(UP, DOWN, END - 10 * DAY)]
    assert uptime_percent(history, DOWN, END - DAY, END) == 0.0
    assert uptime_percent([], UNKNOWN, END - DAY, END) is None


def test_uptime_needs_only_the_changes_inside_the_window() -> None:
    """The status at the window's start is the previous status of the first later change."""
    full = [
        change(UNKNOWN, UP, END - 60 * DAY),
        change(UP, DOWN, END - 50 * DAY),
        change(DOWN, UP, END - 12 * timedelta(hours=1)),
    ]
    assert uptime_percent(full[2:], UP, END - DAY, END) == pytest.approx(50.0)
    assert uptime_percent(full, UP, END - DAY, END) == pytest.approx(50.0)
