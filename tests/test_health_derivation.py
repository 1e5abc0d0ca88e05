"""Component health: reports, staleness and the overall status, pinned without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from b2c_monitoring.processors.health import (
    HealthReport,
    HealthStatus,
    derive,
    derive_all,
    effective_status,
    expire,
    overall,
)

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=3)
HEALTHY, DEGRADED, UNHEALTHY, UNKNOWN = (
    HealthStatus.HEALTHY,
    HealthStatus.DEGRADED,
    HealthStatus.UNHEALTHY,
    HealthStatus.UNKNOWN,
)


def report(second: int, status: HealthStatus, description: str | None = None) -> HealthReport:
    return HealthReport("t1", "catalog", status, T0 + timedelta(seconds=second), description)


def test_a_component_takes_the_status_it_reports() -> None:
    now = T0 + timedelta(seconds=5)
    component, changes = derive(None, report(0, DEGRADED, "slow index"), WINDOW, now)
    assert (component.status, component.description) == (DEGRADED, "slow index")
    assert [(c.previous, c.status, c.at) for c in changes] == [(UNKNOWN, DEGRADED, T0)]


def test_a_component_that_goes_silent_turns_unknown() -> None:
    component, _ = derive(None, report(0, HEALTHY), WINDOW, T0)
    assert effective_status(component, WINDOW, T0 + WINDOW) is HEALTHY
    assert effective_status(component, WINDOW, T0 + WINDOW + timedelta(seconds=1)) is UNKNOWN

    later = T0 + timedelta(minutes=10)
    expired, changes = expire(component, WINDOW, later)
    assert expired.status is UNKNOWN
    assert [(c.previous, c.status, c.at) for c in changes] == [(HEALTHY, UNKNOWN, T0 + WINDOW)]
    # once recorded, not again
    assert expire(expired, WINDOW, later + WINDOW) == (expired, [])


def test_a_silent_component_that_reports_again_comes_back() -> None:
    component, _ = derive(None, report(0, HEALTHY), WINDOW, T0)
    component, _ = expire(component, WINDOW, T0 + timedelta(minutes=10))
    back, changes = derive(component, report(600, HEALTHY), WINDOW, T0 + timedelta(minutes=10))
    assert back.status is HEALTHY
    assert [(c.previous, c.status) for c in changes] == [(UNKNOWN, HEALTHY)]


def test_a_gap_inside_one_batch_is_recorded_as_a_silence() -> None:
    now = T0 + timedelta(minutes=20)
    component, changes = derive_all(
        None, [report(0, HEALTHY), report(600, HEALTHY), report(1200, HEALTHY)], WINDOW, now
    )
    assert component is not None
    assert component.status is HEALTHY
    assert [(c.status, c.at) for c in changes] == [
        (HEALTHY, T0),
        (UNKNOWN, T0 + WINDOW),
        (HEALTHY, T0 + timedelta(seconds=600)),
        (UNKNOWN, T0 + timedelta(seconds=600) + WINDOW),
        (HEALTHY, T0 + timedelta(seconds=1200)),
    ]


def test_a_report_that_arrives_already_stale_leaves_the_component_unknown() -> None:
    component, changes = derive(None, report(0, UNHEALTHY), WINDOW, T0 + timedelta(hours=1))
    assert component.status is UNKNOWN
    assert [c.status for c in changes] == [UNHEALTHY, UNKNOWN]


def test_older_and_duplicate_reports_change_nothing() -> None:
    component, _ = derive(None, report(60, HEALTHY), WINDOW, T0 + timedelta(seconds=60))
    for old in (report(0, UNHEALTHY), report(60, UNHEALTHY)):
        assert derive(component, old, WINDOW, T0 + timedelta(seconds=61)) == (component, [])


def test_the_overall_status_is_the_worst_component() -> None:
    assert overall([HEALTHY, HEALTHY]) is HEALTHY
    assert overall([HEALTHY, DEGRADED, HEALTHY]) is DEGRADED
    assert overall([DEGRADED, UNHEALTHY, HEALTHY]) is UNHEALTHY
    assert overall([UNKNOWN, UNHEALTHY]) is UNHEALTHY


def test_an_unknown_component_counts_as_degraded_and_nothing_known_is_unknown() -> None:
    assert overall([HEALTHY, UNKNOWN]) is DEGRADED
    assert overall([UNKNOWN, UNKNOWN]) is UNKNOWN
    assert overall([]) is UNKNOWN
