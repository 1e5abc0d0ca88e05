"""The job writer alone: ``JobStore.apply`` on spread reports, in this process.

Where ``bench/job_spans.py --spread`` measures the whole pipeline, this isolates the
writer (no collector, no decoding, no gRPC): batches of reports built the way the
spread bench sends them (a request holds report ``s`` of the jobs ``s * lag``
requests older, so a job is inserted once and updated three times, each time in a
different batch), applied one after another on a database of its own. It prints
the writer's CPU and its Postgres backend's CPU per report, how many updates of
``jobs`` were HOT, and the size of ``jobs`` and its timeline per job.

    uv run python bench/job_updates.py --home .b2c-test --port-offset 1000 [--jobs 40000]

Run it in two checkouts (old and new) one after the other, alternating, and compare
ratios: the cores are shared. ``--into DATABASE`` writes into a database kept by
``bench/reads_at_scale.py --keep`` instead of a new one, for the cost with millions of
jobs stored (``bench/reads_growth.py`` does it at each size).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from b2c_monitoring.contract import JobState
from b2c_monitoring.processors.jobs import JobReport
from b2c_monitoring.stack.local import LocalStack, default_layout
from b2c_monitoring.stack.postgres import ROLE
from b2c_monitoring.storage.db import make_pool
from b2c_monitoring.storage.jobs import JobStore
from b2c_monitoring.storage.migrations import migrate

REPORTS = (
    (JobState.PENDING, None),
    (JobState.RUNNING, 30),
    (JobState.RUNNING, 70),
    (JobState.SUCCEEDED, None),
)
_TICK = os.sysconf("SC_CLK_TCK")


def batches(
    jobs: int, per_batch: int, lag: int, t0: datetime, run: str = "job"
) -> list[list[JobReport]]:
    """Report ``s`` of chunk ``k - s * lag`` in batch ``k``; job ids ``<run>-<n>``."""
    chunks = jobs // per_batch
    steps = len(REPORTS)
    built = []
    for k in range(chunks + (steps - 1) * lag):
        batch = []
        for s in range(steps):
            chunk = k - s * lag
            if not 0 <= chunk < chunks:
                continue
            state, progress = REPORTS[s]
            for n in range(chunk * per_batch, (chunk + 1) * per_batch):
                batch.append(
                    JobReport(
                        tenant_id=f"bench-{n % 20:02d}",
                        job_id=f"{run}-{n}",
                        state=state,
                        at=t0 + timedelta(milliseconds=n + s * 1000),
                        job_type=("ERP_SYNC", "PIM_IMPORT", "CRM_EXPORT")[n % 3],
                        progress=progress,
                        service_name="bench",
                        metadata={"rows": n % 5000, "source": f"erp-{n % 7}"},
                    )
                )
        built.append(batch)
    return built


def backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


@dataclass(frozen=True)
class Writer:
    """What the writer spent on the timed batches, per report (seconds)."""

    reports: int
    cpu: float
    postgres: float
    wall: float
    updates: int
    hot: int


def _update_counts(url: str) -> tuple[int, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'jobs'"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def measure(url: str, work: list[list[JobReport]], lag: int) -> Writer:
    """Apply ``work`` with one ``JobStore`` and time all but the first ``4 * lag``
    batches, which warm the connection, the plan cache and the staging tables."""
    pool = make_pool(url, max_size=1, name="bench-updates")
    pool.open(wait=True)
    try:
        store = JobStore(pool)
        with pool.connection() as conn:
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
            assert row is not None
            backend = int(row[0])
        warm = lag * len(REPORTS)
        for batch in work[:warm]:
            store.apply(batch, datetime.now(UTC))
        before = _update_counts(url)
        timed = work[warm:]
        pg_before, cpu_before, wall_before = (
            backend_cpu(backend),
            time.process_time(),
            time.monotonic(),
        )
        for batch in timed:
            store.apply(batch, datetime.now(UTC))
        wall = time.monotonic() - wall_before
        cpu = time.process_time() - cpu_before
        pg = backend_cpu(backend) - pg_before
    finally:
        pool.close()
    time.sleep(1)  # the statistics collector's flush
    after = _update_counts(url)
    reports = sum(len(b) for b in timed)
    return Writer(
        reports, cpu / reports, pg / reports, wall / reports,
        after[0] - before[0], after[1] - before[1],
    )  # fmt: skip


def remove(url: str, run: str) -> None:
    """Delete the jobs, timeline rows and hub events of ``run`` from a database kept
    for other benches (``--into``)."""
    pattern = run.replace("_", "\\_") + "-%"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM job_changes WHERE job_id LIKE %s", (pattern,))
        conn.execute("DELETE FROM hub_events WHERE job_id LIKE %s", (pattern,))
        conn.execute("DELETE FROM jobs WHERE job_id LIKE %s", (pattern,))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=40_000)
    parser.add_argument("--jobs-per-request", type=int, default=100)
    parser.add_argument("--lag", type=int, default=30, help="batches between a job's reports")
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--port-offset", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument(
        "--into",
        metavar="DATABASE",
        help="write into this existing database (one kept by bench/reads_at_scale.py: "
        "the cost with its jobs stored) and delete the bench's jobs afterwards",
    )
    parser.add_argument(
        "--sql",
        action="append",
        default=[],
        help="a statement run after the migrations (an option to measure: an index "
        "dropped, a fillfactor); repeatable",
    )
    args = parser.parse_args()

    stack = LocalStack(default_layout(args.home, args.port_offset))
    database = args.into or f"b2c_bench_updates_{uuid.uuid4().hex[:8]}"
    url = stack.postgres.url_for(ROLE, database)
    if args.into is None:
        with psycopg.connect(stack.postgres.admin_url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}" OWNER b2c')
    run = f"upd{uuid.uuid4().hex[:8]}"
    try:
        migrate(url)
        if args.sql:
            with psycopg.connect(url, autocommit=True) as conn:
                for statement in args.sql:
                    conn.execute(statement)
            print(f"after the migrations: {'; '.join(args.sql)}")
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM jobs").fetchone()
        assert row is not None
        stored_before = int(row[0])
        t0 = datetime.now(UTC) - timedelta(hours=1)
        work = batches(args.jobs, args.jobs_per_request, args.lag, t0, run)
        reports = sum(len(b) for b in work)
        writer = measure(url, work, args.lag)
        pattern = f"{run}-%"
        with psycopg.connect(url, autocommit=True) as conn:
            counts = conn.execute(
                "SELECT (SELECT count(*) FROM jobs WHERE job_id LIKE %(p)s), "
                "(SELECT count(*) FROM job_changes WHERE job_id LIKE %(p)s), "
                "(SELECT count(*) FROM jobs WHERE job_id LIKE %(p)s AND status = 'succeeded'), "
                "pg_total_relation_size('jobs'), pg_total_relation_size('job_changes'), "
                "(SELECT count(*) FROM jobs), "
                "(SELECT count(*) FROM pg_index WHERE indrelid = 'jobs'::regclass)",
                {"p": pattern},
            ).fetchone()
        assert counts is not None
        jobs, changes, done, jobs_bytes, changes_bytes, all_jobs, indexes = counts
        print(
            f"{reports:,} reports ({writer.reports:,} timed) of {jobs:,} jobs, "
            f"{args.jobs_per_request * len(REPORTS)} a batch, lag {args.lag}, into "
            f"{stored_before:,} jobs stored; machine load {os.getloadavg()[0]:.1f}"
        )
        print(
            f"  {1 / writer.wall:,.0f} reports/s in one writer; per report: "
            f"writer CPU {1e6 * writer.cpu:.1f} us, Postgres backend CPU "
            f"{1e6 * writer.postgres:.1f} us, wall {1e6 * writer.wall:.1f} us"
        )
        print(
            f"  updates of jobs: {writer.updates:,}, HOT {writer.hot:,} "
            f"({100 * writer.hot / max(writer.updates, 1):.0f} %); {indexes} indexes on jobs"
        )
        print(
            f"  stored: {done:,}/{jobs:,} jobs succeeded, {changes:,} timeline rows; "
            f"bytes per job: jobs {jobs_bytes / all_jobs:,.0f}, "
            f"timeline {changes_bytes / all_jobs:,.0f}"
        )
        ok = done == jobs == args.jobs and changes == reports
        if not ok:
            print("  MISMATCH: not every job succeeded or not every report is a timeline row")
        return 0 if ok else 1
    finally:
        if args.into is not None:
            remove(url, run)
        elif not args.keep:
            with psycopg.connect(stack.postgres.admin_url(), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
