"""The job state machine, pinned without a database (contract: derivation rules)."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from b2c_monitoring.contract import JobState
from b2c_monitoring.processors.jobs import Job, JobReport, derive, derive_all

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)


def report(state: JobState, seconds: int, **kw: object) -> JobReport:
    return JobReport(
        tenant_id="t1",
        job_id="j1",
        state=state,
        at=T0 + timedelta(seconds=seconds),
        **kw,  # type: ignore[arg-type]
    )


def fold(reports: list[JobReport]) -> Job:
    job, _ = derive_all(None, reports, NOW)
    assert job is not None
    return job


def test_a_normal_run_has_its_timestamps_and_full_progress() -> None:
    job = fold(
        [
            report(JobState.PENDING, 0, job_type="ERP_SYNC"),
            report(JobState.RUNNING, 5, progress=10),
            report(JobState.RUNNING, 9, progress=60),
            report(JobState.SUCCEEDED, 20),
        ]
    )
    assert job.status is JobState.SUCCEEDED
    assert job.progress_percent == 100
    assert job.created_at == T0
    assert job.started_at == T0 + timedelta(seconds=5)
    assert job.completed_at == T0 + timedelta(seconds=20)
    assert job.job_type == "ERP_SYNC"
    assert job.error_message is None


def test_terminal_state_is_never_left() -> None:
    job = fold([report(JobState.FAILED, 10, error_message="boom"), report(JobState.RUNNING, 30)])
    assert job.status is JobState.FAILED
    assert job.error_message == "boom"
    assert job.completed_at == T0 + timedelta(seconds=10)


def test_the_earliest_terminal_report_wins_whatever_arrives_first() -> None:
    early_fail = report(JobState.FAILED, 10, error_message="timeout")
    late_success = report(JobState.SUCCEEDED, 12)
    assert fold([late_success, early_fail]).status is JobState.FAILED
    assert fold([early_fail, late_success]).status is JobState.FAILED


def test_progress_never_goes_down() -> None:
    job = fold([report(JobState.RUNNING, 1, progress=70), report(JobState.RUNNING, 2, progress=30)])
    assert job.progress_percent == 70


def test_a_duplicate_report_changes_nothing_and_is_not_a_change() -> None:
    first, _ = derive(None, report(JobState.RUNNING, 1, progress=5), NOW)
    again, changes = derive(
        first, report(JobState.RUNNING, 1, progress=5), NOW + timedelta(hours=1)
    )
    assert again is first
    assert changes == []


def test_changes_record_each_status_or_progress_step() -> None:
    _, changes = derive_all(
        None,
        [
            report(JobState.RUNNING, 1, progress=5),
            report(JobState.RUNNING, 2, progress=5, metadata={"rows": 10}),
            report(JobState.RUNNING, 3, progress=50),
            report(JobState.FAILED, 4, error_message="ERP answered 503"),
        ],
        NOW,
    )
    assert [(c.status, c.progress_percent, c.error_message) for c in changes] == [
        (JobState.RUNNING, 5, None),
        (JobState.RUNNING, 50, None),
        (JobState.FAILED, 50, "ERP answered 503"),
    ]


def test_metadata_takes_the_latest_value_per_key() -> None:
    job = fold(
        [
            report(JobState.RUNNING, 5, metadata={"rows": 50, "source": "erp"}),
            report(JobState.RUNNING, 1, metadata={"rows": 10, "batch": "b1"}),
        ]
    )
    assert job.metadata == {"rows": 50, "source": "erp", "batch": "b1"}


# Property: any order, any duplication of the same reports, the same job.

states = st.sampled_from(list(JobState))
reports_strategy = st.lists(
    st.builds(
        lambda state, second, progress, jtype, attempt, meta, err: report(
            state,
            second,
            progress=progress,
            job_type=jtype,
            attempt=attempt,
            metadata=meta,
            error_message=err,
        ),
        states,
        st.integers(0, 20),
        st.none() | st.integers(0, 100),
        st.none() | st.sampled_from(["ERP_SYNC", "PIM_IMPORT"]),
        st.none() | st.integers(1, 3),
        st.dictionaries(
            st.sampled_from(["a", "b"]), st.integers(0, 3) | st.text(max_size=2), max_size=2
        ),
        st.none() | st.sampled_from(["x", "y"]),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=int(os.environ.get("B2C_PROPERTY_EXAMPLES", "400")), deadline=None)
@given(reports_strategy, st.data())
def test_any_order_and_any_duplication_give_the_same_job(
    reports: list[JobReport], data: st.DataObject
) -> None:
    expected = fold(reports)
    shuffled = data.draw(st.permutations(reports))
    dupes = data.draw(st.lists(st.sampled_from(reports), max_size=6))
    mixed = data.draw(st.permutations(list(shuffled) + dupes))
    # split across "export requests": the merge must also hold on a stored job
    cut = data.draw(st.integers(0, len(mixed)))
    stored, _ = derive_all(None, mixed[:cut], NOW)
    actual, _ = derive_all(stored, mixed[cut:], NOW)
    assert actual is not None
    assert replace(actual, updated_at=NOW) == replace(expected, updated_at=NOW)
    assert actual.progress_percent >= max(r.progress or 0 for r in reports)
    if actual.status is JobState.SUCCEEDED:
        assert actual.progress_percent == 100
