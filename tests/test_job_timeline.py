"""A job's timeline in the real Postgres: one row per distinct report, whatever the
order and however often each arrived (telemetry contract, "The job timeline")."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from b2c_monitoring.contract import JobState
from b2c_monitoring.processors.jobs import Job, JobChange, JobReport, derive_all
from b2c_monitoring.stack.postgres import ROLE, Postgres
from b2c_monitoring.storage.db import make_pool
from b2c_monitoring.storage.jobs import JobStore

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def store(postgres: Postgres, template_db: str) -> Iterator[JobStore]:
    """One database for the module, like ``fresh_db`` (every example writes jobs of
    its own ids): a database per hypothesis example would cost a second each."""
    name = f"b2c_t_{uuid.uuid4().hex[:12]}"
    admin = postgres.admin_url()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}" OWNER b2c')
    pool = make_pool(postgres.url_for(ROLE, name), max_size=2, name="timeline-test")
    pool.open(wait=True)
    try:
        yield JobStore(pool)
    finally:
        pool.close()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def report(job_id: str, state: JobState, second: int, **kw: object) -> JobReport:
    return JobReport(
        tenant_id="t1",
        job_id=job_id,
        state=state,
        at=T0 + timedelta(seconds=second),
        **kw,  # type: ignore[arg-type]
    )


def entries(store: JobStore, job_id: str) -> list[tuple[JobState, int, datetime, str | None]]:
    return [
        (c.status, c.progress_percent, c.at, c.error_message) for c in store.timeline("t1", job_id)
    ]


def the_job(store: JobStore, job_id: str) -> Job:
    [job] = store.get(job_id, ["t1"])
    return replace(job, job_id="-", updated_at=NOW)


def test_a_report_redelivered_after_a_later_one_still_gets_its_row(store: JobStore) -> None:
    """The issue's case: the collector retried a batch the processor had not
    acknowledged, after the job's later reports were stored."""
    job = f"late-{uuid.uuid4()}"
    store.apply([report(job, JobState.PENDING, 0)], NOW)
    store.apply([report(job, JobState.SUCCEEDED, 3)], NOW)
    store.apply([report(job, JobState.RUNNING, 1, progress=30)], NOW)  # derives no change
    store.apply([report(job, JobState.RUNNING, 1, progress=30)], NOW)  # and again
    assert entries(store, job) == [
        (JobState.PENDING, 0, T0, None),
        (JobState.RUNNING, 30, T0 + timedelta(seconds=1), None),
        (JobState.SUCCEEDED, 100, T0 + timedelta(seconds=3), None),
    ]
    assert the_job(store, job).status is JobState.SUCCEEDED


def test_a_row_says_what_its_report_said(store: JobStore) -> None:
    job = f"own-{uuid.uuid4()}"
    store.apply(
        [
            report(job, JobState.RUNNING, 1, progress=60),
            report(job, JobState.RUNNING, 2, progress=20),  # lower than the job's progress
            report(job, JobState.FAILED, 3, error_message="ERP answered 503"),
        ],
        NOW,
    )
    assert entries(store, job) == [
        (JobState.RUNNING, 60, T0 + timedelta(seconds=1), None),
        (JobState.RUNNING, 20, T0 + timedelta(seconds=2), None),
        (JobState.FAILED, 0, T0 + timedelta(seconds=3), "ERP answered 503"),
    ]


# Property: any permutation and duplication of a job's reports, split over any number
# of export requests, gives the same job row and the same set of timeline rows.

reports_strategy = st.lists(
    st.tuples(
        st.sampled_from(list(JobState)),
        st.integers(0, 12),
        st.none() | st.integers(0, 100),
        st.none() | st.sampled_from(["ERP_SYNC", "PIM_IMPORT"]),
        st.none() | st.integers(1, 3),
        st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 3), max_size=2),
        st.none() | st.sampled_from(["x", "y"]),
    ),
    min_size=1,
    max_size=8,
)


Spec = tuple[JobState, int, int | None, str | None, int | None, dict[str, int], str | None]


def build(job_id: str, spec: Spec) -> JobReport:
    state, second, progress, job_type, attempt, metadata, error = spec
    return report(
        job_id,
        state,
        second,
        progress=progress,
        job_type=job_type,
        attempt=attempt,
        metadata=metadata,
        error_message=error,
    )


def as_set(changes: list[JobChange]) -> Counter[tuple[JobState, int, datetime, str | None]]:
    return Counter((c.status, c.progress_percent, c.at, c.error_message) for c in changes)


@settings(
    max_examples=int(os.environ.get("B2C_PROPERTY_EXAMPLES", "150")) // 2 or 1,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(reports_strategy, st.data())
def test_any_order_and_duplication_give_the_same_job_and_the_same_timeline(
    store: JobStore, specs: list[Spec], data: st.DataObject
) -> None:
    in_order, shuffled = f"ordered-{uuid.uuid4()}", f"mixed-{uuid.uuid4()}"
    store.apply([build(in_order, s) for s in specs], NOW)

    dupes = data.draw(st.lists(st.sampled_from(specs), max_size=6))
    mixed = data.draw(st.permutations(specs + dupes))
    # cut into export requests at any points: a report may come after a later one
    # was stored, or again in a later request
    cuts = sorted(data.draw(st.lists(st.integers(0, len(mixed)), max_size=4)))
    for start, end in zip([0, *cuts], [*cuts, len(mixed)], strict=True):
        store.apply([build(shuffled, s) for s in mixed[start:end]], NOW)

    assert the_job(store, shuffled) == the_job(store, in_order)
    expected, _ = derive_all(None, [build("-", s) for s in specs], NOW)
    assert expected is not None
    assert the_job(store, shuffled) == replace(expected, updated_at=NOW)

    rows = as_set(store.timeline("t1", shuffled))
    assert rows == as_set(store.timeline("t1", in_order))
    # every distinct report once
    assert set(rows.values()) == {1}
    distinct = {
        (state, 100 if state is JobState.SUCCEEDED else progress or 0, T0 + timedelta(seconds=second),
         error if state is JobState.FAILED else None)
        for state, second, progress, _, _, _, error in specs
    }  # fmt: skip
    assert set(rows) == distinct
