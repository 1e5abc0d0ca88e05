"""Stalled and overdue jobs, pinned without a database (processors/job_flags.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from b2c_monitoring.contract import JobState
from b2c_monitoring.processors.job_flags import (
    JobFlag,
    JobWindows,
    TypeWindows,
    WindowPolicy,
    job_flags,
)
from b2c_monitoring.processors.jobs import Job, JobReport, derive

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
WINDOWS = JobWindows(heartbeat=timedelta(minutes=10), start=timedelta(minutes=15))


def job(
    state: JobState, created: timedelta = timedelta(), reported: timedelta = timedelta()
) -> Job:
    first, _ = derive(None, JobReport("t1", "j1", state, T0 + created, job_type="ERP_SYNC"), T0)
    return replace(first, last_report_at=T0 + reported)


def at(delta: timedelta) -> datetime:
    return T0 + delta


def test_a_running_job_silent_for_longer_than_its_heartbeat_window_is_stalled() -> None:
    running = job(JobState.RUNNING)
    assert job_flags(running, WINDOWS, at(timedelta(minutes=10))) == frozenset()
    assert job_flags(running, WINDOWS, at(timedelta(minutes=10, seconds=1))) == {JobFlag.STALLED}


def test_the_stalled_flag_clears_when_the_job_reports_again() -> None:
    now = at(timedelta(minutes=30))
    stalled = job(JobState.RUNNING)
    assert job_flags(stalled, WINDOWS, now) == {JobFlag.STALLED}
    report = JobReport("t1", "j1", JobState.RUNNING, at(timedelta(minutes=29)), progress=50)
    reported, _ = derive(stalled, report, now)
    assert job_flags(reported, WINDOWS, now) == frozenset()


def test_a_pending_job_not_started_within_its_start_window_is_overdue() -> None:
    pending = job(JobState.PENDING)
    assert job_flags(pending, WINDOWS, at(timedelta(minutes=15))) == frozenset()
    assert job_flags(pending, WINDOWS, at(timedelta(minutes=16))) == {JobFlag.OVERDUE}


def test_overdue_counts_from_creation_not_from_the_last_pending_report() -> None:
    pending = job(JobState.PENDING, reported=timedelta(minutes=14))
    assert job_flags(pending, WINDOWS, at(timedelta(minutes=16))) == {JobFlag.OVERDUE}


def test_the_overdue_flag_clears_when_the_job_starts() -> None:
    now = at(timedelta(hours=1))
    overdue = job(JobState.PENDING)
    started, _ = derive(
        overdue, JobReport("t1", "j1", JobState.RUNNING, at(timedelta(minutes=59))), now
    )
    assert job_flags(overdue, WINDOWS, now) == {JobFlag.OVERDUE}
    assert job_flags(started, WINDOWS, now) == frozenset()


@pytest.mark.parametrize("state", [JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED])
def test_a_finished_job_is_never_flagged_however_old(state: JobState) -> None:
    assert job_flags(job(state), WINDOWS, at(timedelta(days=365))) == frozenset()


def test_a_type_may_override_one_window_and_keep_the_default_of_the_other() -> None:
    policy = WindowPolicy(
        WINDOWS, {"ERP_SYNC": TypeWindows("ERP_SYNC", heartbeat=timedelta(hours=2))}
    )
    assert policy.for_type("ERP_SYNC") == JobWindows(timedelta(hours=2), timedelta(minutes=15))
    assert policy.for_type("PIM_IMPORT") == WINDOWS
    assert policy.for_type(None) == WINDOWS
    running = job(JobState.RUNNING)
    later = at(timedelta(hours=1))
    assert job_flags(running, policy.for_type("ERP_SYNC"), later) == frozenset()
    assert job_flags(running, policy.for_type("PIM_IMPORT"), later) == {JobFlag.STALLED}


def test_each_flag_belongs_to_one_status() -> None:
    assert JobFlag.STALLED.status is JobState.RUNNING
    assert JobFlag.OVERDUE.status is JobState.PENDING
