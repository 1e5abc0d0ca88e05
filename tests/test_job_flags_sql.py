"""The stalled/overdue rule has one definition (``processors/job_flags.RULES``); its SQL
form (``storage/job_windows.flag_condition``) serves the job list's filter and the
alert facts. Against real Postgres: for any jobs, windows and ``now``, the list
filtered by a flag and the alert facts hold exactly the jobs ``job_flags`` flags."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg_pool
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from b2c_monitoring.alerting.rules import JobStalled, Rule, Severity
from b2c_monitoring.contract import JobState
from b2c_monitoring.processors.job_flags import (
    JobFlag,
    JobWindows,
    TypeWindows,
    WindowPolicy,
    job_flags,
)
from b2c_monitoring.processors.jobs import JobReport
from b2c_monitoring.storage.alert_facts import read_facts
from b2c_monitoring.storage.db import make_pool
from b2c_monitoring.storage.jobs import JobQuery, JobStore

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
DEFAULT = JobWindows(heartbeat=timedelta(minutes=10), start=timedelta(minutes=15))
TYPES = ("ERP_SYNC", "PIM_IMPORT", "CRM_EXPORT")

minutes = st.integers(min_value=0, max_value=40).map(lambda m: timedelta(minutes=m))
window = st.one_of(
    st.none(), st.integers(min_value=1, max_value=30).map(lambda m: timedelta(minutes=m))
)
a_job = st.tuples(
    st.sampled_from(list(JobState)),
    st.sampled_from(TYPES),
    minutes,  # created this long before now
    minutes,  # then reported again this much later (capped at now)
)


@pytest.fixture
def pool(fresh_db: str) -> Iterator[psycopg_pool.ConnectionPool]:
    p = make_pool(fresh_db, max_size=2, name="flags-test")
    p.open(wait=True)
    yield p
    p.close()


def _store_windows(pool: psycopg_pool.ConnectionPool, windows: dict[str, TypeWindows]) -> None:
    with pool.connection() as conn:
        conn.execute("DELETE FROM job_type_windows")
        for w in windows.values():
            conn.execute(
                "INSERT INTO job_type_windows (job_type, heartbeat_window, start_window) "
                "VALUES (%s, %s, %s)",
                (w.job_type, w.heartbeat, w.start),
            )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    jobs=st.lists(a_job, min_size=1, max_size=12),
    own=st.dictionaries(st.sampled_from(TYPES), st.tuples(window, window), max_size=3),
)
def test_the_list_filter_and_the_alert_facts_agree_with_job_flags(
    pool: psycopg_pool.ConnectionPool,
    jobs: list[tuple[JobState, str, timedelta, timedelta]],
    own: dict[str, tuple[timedelta | None, timedelta | None]],
) -> None:
    tenant = f"flags-{uuid.uuid4().hex[:8]}"
    per_type = {t: TypeWindows(t, hb, start) for t, (hb, start) in own.items()}
    _store_windows(pool, per_type)
    policy = WindowPolicy(DEFAULT, per_type)
    store = JobStore(pool)
    reports: list[JobReport] = []
    for i, (state, job_type, age, later) in enumerate(jobs):
        created = NOW - age
        reported = min(created + later, NOW)
        job_id = f"job-{i}"
        # a first report makes the job (created_at); a second of the same state moves
        # last_report_at alone
        reports.append(JobReport(tenant, job_id, state, created, job_type=job_type))
        reports.append(JobReport(tenant, job_id, state, reported, job_type=job_type))
    store.apply(reports, NOW)

    stored = store.list(JobQuery(tenants=[tenant], limit=100), DEFAULT, NOW).jobs
    assert len(stored) == len(jobs)
    expected = {
        flag: {j.job_id for j in stored if flag in job_flags(j, policy.for_type(j.job_type), NOW)}
        for flag in JobFlag
    }

    for flag in JobFlag:
        page = store.list(JobQuery(tenants=[tenant], flag=flag, limit=100), DEFAULT, NOW)
        assert {j.job_id for j in page.jobs} == expected[flag], flag

    rule = Rule("r1", tenant, "stalled", Severity.WARNING, JobStalled(), timedelta(minutes=5))
    with pool.connection() as conn:
        facts = read_facts(conn, None, tenant, [rule], [], policy, NOW)
    assert {(f.job_id, f.flag) for f in facts.flagged_jobs} == {
        (job_id, flag.value) for flag, ids in expected.items() for job_id in ids
    }


def test_the_windows_table_is_what_the_filter_reads(pool: psycopg_pool.ConnectionPool) -> None:
    """A type's own window in the table moves the flag; the default covers the rest."""
    tenant = f"flags-{uuid.uuid4().hex[:8]}"
    store = JobStore(pool)
    silent = NOW - timedelta(minutes=5)
    store.apply(
        [
            JobReport(tenant, "quick", JobState.RUNNING, silent, job_type="ERP_SYNC"),
            JobReport(tenant, "slow", JobState.RUNNING, silent, job_type="PIM_IMPORT"),
        ],
        NOW,
    )
    _store_windows(pool, {"ERP_SYNC": TypeWindows("ERP_SYNC", heartbeat=timedelta(minutes=2))})
    page = store.list(JobQuery(tenants=[tenant], flag=JobFlag.STALLED), DEFAULT, NOW)
    assert [j.job_id for j in page.jobs] == ["quick"]
