"""Resource windows: current, average and peak, pinned without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from b2c_monitoring.processors.resources import (
    ResourceSample,
    derive,
    derive_all,
    summarize,
)

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
GIB = 1024**3


def sample(minute: float, **values: float) -> ResourceSample:
    return ResourceSample("t1", "crm-db", T0 + timedelta(minutes=minute), **values)


def test_current_average_and_peak_over_the_window() -> None:
    now = T0 + timedelta(minutes=30)
    samples = [
        sample(0, cpu_ratio=0.10, memory_used=1 * GIB, memory_limit=4 * GIB),
        sample(10, cpu_ratio=0.90, memory_used=3 * GIB),
        sample(20, cpu_ratio=0.20, memory_used=2 * GIB, threads=42, queue_depth=7),
        sample(20.5, pool_used=4, pool_idle=6),
    ]
    window = derive_all(None, samples, now)
    assert window is not None
    metrics = summarize(window, now)
    assert metrics.cpu_percent == pytest.approx(20.0)
    assert metrics.cpu_average == pytest.approx(40.0)
    assert metrics.cpu_peak == pytest.approx(90.0)
    assert metrics.memory_used_bytes == 2 * GIB
    assert metrics.memory_total_bytes == 4 * GIB
    assert metrics.memory_percent == pytest.approx(50.0)
    assert metrics.memory_peak_bytes == 3 * GIB
    assert (metrics.thread_count, metrics.queue_depth) == (42, 7)
    assert (metrics.connection_pool_active, metrics.connection_pool_total) == (4, 10)
    assert metrics.timestamp == T0 + timedelta(minutes=20.5)


def test_the_pool_maximum_is_the_total_when_reported() -> None:
    window = derive(None, sample(0, pool_used=3, pool_idle=1, pool_max=20), T0)
    assert summarize(window, T0).connection_pool_total == 20


def test_samples_leave_the_average_and_peak_when_they_leave_the_window() -> None:
    window = derive_all(None, [sample(0, cpu_ratio=0.9), sample(50, cpu_ratio=0.1)], T0)
    assert window is not None
    short = summarize(window, T0 + timedelta(minutes=55), timedelta(minutes=10))
    assert short.cpu_average == pytest.approx(10.0)
    assert short.cpu_peak == pytest.approx(10.0)
    later = derive(window, sample(120, memory_used=1), T0 + timedelta(minutes=120))
    assert summarize(later, T0 + timedelta(minutes=120)).cpu_average is None
    # the latest value stays current, however old
    assert summarize(later, T0 + timedelta(minutes=120)).cpu_percent == pytest.approx(10.0)


def test_a_late_sample_does_not_replace_a_newer_current_value() -> None:
    window = derive_all(
        None, [sample(10, threads=50), sample(5, threads=10)], T0 + timedelta(minutes=10)
    )
    assert window is not None
    assert summarize(window, T0 + timedelta(minutes=10)).thread_count == 50


def test_an_owner_without_figures_has_none_not_zero() -> None:
    window = derive(None, sample(0, queue_depth=3), T0)
    metrics = summarize(window, T0)
    assert metrics.cpu_percent is None
    assert metrics.cpu_average is None
    assert metrics.memory_percent is None
    assert metrics.connection_pool_total is None
