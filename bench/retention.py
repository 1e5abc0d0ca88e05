"""Retention of 1,000,000 old jobs: how long the maintenance rounds take to delete them,
and what the deletes cost the job writers meanwhile.

Creates a database of its own (``b2c_bench_retention``) in the Postgres of a running
local stack, migrates it, and fills it in SQL (``INSERT ... SELECT generate_series``):
``--jobs`` finished jobs 40 to 100 days old with ``--changes`` timeline rows each
(past the 30 days of ``B2C_JOB_RETENTION_DAYS``), and 10,000 finished in the last 20
days and 1,000 still running since long ago, which must stay. Then, in one run:

1. a writer thread applies fresh reports (``JobStore.apply``, ``--reports`` a batch:
   new jobs that start, progress and finish over three batches) for ``--baseline``
   seconds with no deletes: the latency without;
2. the same writer goes on while ``maintain`` runs rounds back to back (the processor
   waits ``B2C_MAINTENANCE_INTERVAL_S`` between them) until none has old rows left:
   the latency during the deletes.

    uv run b2c stack up
    uv run python bench/retention.py [--jobs 1000000] [--changes 3] [--budget 10]

The figures: rows deleted (jobs, timeline rows), total time, rows per second, rounds,
the longest round and the longest single transaction, and p50/p99/max of the
writer's ``apply`` with and without deletes. The database is dropped at the end
(``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from b2c_monitoring.contract import JobState
from b2c_monitoring.processors.jobs import JobReport
from b2c_monitoring.stack.postgres import ROLE
from b2c_monitoring.storage.db import make_pool
from b2c_monitoring.storage.jobs import JobStore
from b2c_monitoring.storage.maintenance import maintain
from b2c_monitoring.storage.metrics import MetricsPolicy
from b2c_monitoring.storage.migrations import migrate
from b2c_monitoring.storage.partitions import Retention

sys.path.insert(0, str(Path(__file__).parent))
import jobs_list

DATABASE = "b2c_bench_retention"

# in creation order, as jobs arrive; updated_at is when the last report was stored
FILL_JOBS = """
INSERT INTO jobs (tenant_id, job_id, job_type, status, progress_percent, created_at, started_at,
                  completed_at, error_message, metadata, attempt, service_name, last_report_at,
                  updated_at)
SELECT 'bench-' || lpad((g %% 20)::text, 2, '0'), %(prefix)s || g, 'ERP_SYNC', status,
       CASE WHEN status = 'succeeded' THEN 100 ELSE 40 END,
       created_at, created_at + interval '5 s',
       CASE WHEN status <> 'running' THEN created_at + interval '5 min' END,
       CASE WHEN status = 'failed' THEN 'ERP timeout after 30 s (order ' || g || ')' END,
       jsonb_build_object('rows', g %% 5000, 'source', 'erp-' || g %% 7),
       1, 'bench', created_at + interval '5 min', created_at + interval '5 min'
FROM (SELECT g,
             CASE WHEN %(running)s THEN 'running'
                  WHEN g %% 50 = 0 THEN 'cancelled' WHEN g %% 12 = 0 THEN 'failed'
                  ELSE 'succeeded' END AS status,
             now() - %(newest)s::interval - random() * %(span)s::interval AS created_at
      FROM generate_series(1, %(jobs)s) AS g) AS s
ORDER BY created_at
"""

FILL_CHANGES = """
INSERT INTO job_changes (tenant_id, job_id, status, progress_percent, at, recorded_at)
SELECT j.tenant_id, j.job_id,
       CASE WHEN n = %(changes)s THEN j.status WHEN n = 1 THEN 'pending' ELSE 'running' END,
       CASE WHEN n = %(changes)s THEN j.progress_percent ELSE 0 END,
       j.created_at + n * interval '1 s', j.created_at + n * interval '1 s'
FROM jobs j, generate_series(1, %(changes)s) AS n
ORDER BY j.created_at
"""


def prepare(admin_url: str, url: str, jobs: int, changes: int) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}" OWNER b2c')
    migrate(url)
    print(f"filling {DATABASE}: {jobs:,} old jobs with {changes} changes each ...", flush=True)
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET work_mem = '256MB'")
        for prefix, count, running, newest, span in (
            ("old-", jobs, False, "40 days", "60 days"),
            ("recent-", 10_000, False, "1 hour", "20 days"),
            ("running-", 1_000, True, "40 days", "60 days"),
        ):
            conn.execute(
                FILL_JOBS,
                {"prefix": prefix, "jobs": count, "running": running, "newest": newest,
                 "span": span},
            )  # fmt: skip
        conn.execute(FILL_CHANGES, {"changes": changes})
        filled = time.monotonic() - started
        conn.execute("VACUUM ANALYZE jobs")
        conn.execute("VACUUM ANALYZE job_changes")
        row = conn.execute(
            "SELECT pg_size_pretty(pg_total_relation_size('jobs')),"
            " pg_size_pretty(pg_total_relation_size('job_changes'))"
        ).fetchone()
    assert row is not None
    print(
        f"filled in {filled:.0f} s, vacuumed in {time.monotonic() - started - filled:.0f} s; "
        f"jobs {row[0]}, job_changes {row[1]} (with indexes)",
        flush=True,
    )


class Writer(threading.Thread):
    """Applies batches of fresh reports back to back, timing each ``apply``."""

    def __init__(self, url: str, reports: int) -> None:
        super().__init__(name="bench-writer", daemon=True)
        self._pool = make_pool(url, max_size=1, name="bench-writer")
        self._reports = reports
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._samples: list[float] = []

    def take(self) -> list[float]:
        """The latencies (ms) since the last call."""
        with self._lock:
            taken, self._samples = self._samples, []
        return taken

    def stop(self) -> None:
        self._stopping.set()
        self.join()
        self._pool.close()

    def run(self) -> None:
        self._pool.open(wait=True)
        store = JobStore(self._pool)
        n = 0
        # each job: running 10 %, running 60 %, succeeded, over three batches
        steps = ((JobState.RUNNING, 10), (JobState.RUNNING, 60), (JobState.SUCCEEDED, None))
        while not self._stopping.is_set():
            now = datetime.now(UTC)
            batch = [
                JobReport(
                    "bench-live",
                    f"live-{(n - step) * self._reports + i}",
                    state,
                    now,
                    job_type="ERP_SYNC",
                    progress=progress,
                )
                for step, (state, progress) in enumerate(steps)
                if n - step >= 0
                for i in range(self._reports // 3)
            ]
            started = time.perf_counter()
            store.apply(batch, now)
            elapsed = (time.perf_counter() - started) * 1000
            with self._lock:
                self._samples.append(elapsed)
            n += 1
            self._stopping.wait(0.01)


def latency(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return (
        f"p50 {q[49]:6.1f}  p99 {q[98]:6.1f}  max {max(samples):6.1f} ms ({len(samples):,} batches)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--changes", type=int, default=3, help="timeline rows per job")
    parser.add_argument("--budget", type=float, default=10, help="B2C_RETENTION_BUDGET_S")
    parser.add_argument("--batch", type=int, default=Retention().delete_batch)
    parser.add_argument("--reports", type=int, default=60, help="reports per writer batch")
    parser.add_argument("--baseline", type=float, default=30, help="seconds without deletes")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--port-offset", type=int, default=None)
    args = parser.parse_args()
    stack = jobs_list.stack_with_postgres(args.home, args.port_offset)
    url = stack.postgres.url_for(ROLE, DATABASE)
    admin_url = stack.postgres.admin_url()
    policy = MetricsPolicy(
        retention=replace(
            Retention(), delete_batch=args.batch, delete_budget=timedelta(seconds=args.budget)
        )
    )
    pool = make_pool(url, max_size=2, name="bench-maintenance")
    try:
        prepare(admin_url, url, args.jobs, args.changes)
        pool.open(wait=True)
        # a first round that keeps every job: the partitions of today are created
        # outside the timed rounds, as the processor does before it listens
        keep_all = replace(policy.retention, jobs=timedelta(days=3650), audit=timedelta(days=3650))
        maintain(pool, replace(policy, retention=keep_all), datetime.now(UTC))
        writer = Writer(url, args.reports)
        writer.start()
        time.sleep(2)  # warm: the writer's first batches plan and cache
        writer.take()
        time.sleep(args.baseline)
        without = writer.take()

        rounds: list[tuple[float, float, dict[str, int]]] = []
        started = time.monotonic()
        while True:
            began = time.monotonic()
            report = maintain(pool, policy, datetime.now(UTC))
            rounds.append((time.monotonic() - began, report.longest_delete_s, report.deleted))
            print(
                f"  round {len(rounds):2d}: {time.monotonic() - began:5.1f} s, "
                f"deleted {report.deleted.get('jobs', 0):,} jobs and "
                f"{report.deleted.get('job_changes', 0):,} changes, longest transaction "
                f"{report.longest_delete_s * 1000:.0f} ms",
                flush=True,
            )
            if not report.deletes_left:
                break
        total = time.monotonic() - started
        during = writer.take()
        writer.stop()

        jobs = sum(r[2].get("jobs", 0) for r in rounds)
        changes = sum(r[2].get("job_changes", 0) for r in rounds)
        with psycopg.connect(url) as conn:
            kept = conn.execute(
                "SELECT count(*) FILTER (WHERE job_id LIKE 'recent-%%'),"
                " count(*) FILTER (WHERE job_id LIKE 'running-%%'),"
                " count(*) FILTER (WHERE job_id LIKE 'old-%%') FROM jobs"
            ).fetchone()
        assert kept is not None
        print(
            f"\nretention of {args.jobs:,} old jobs ({args.changes} changes each), "
            f"batch {args.batch:,}, budget {args.budget:g} s a round"
        )
        print(
            f"deleted:              {jobs:,} jobs + {changes:,} changes = {jobs + changes:,} rows"
        )
        print(f"total:                {total:.1f} s in {len(rounds)} rounds (back to back)")
        print(
            f"rate:                 {jobs / total:,.0f} jobs/s, {(jobs + changes) / total:,.0f} rows/s"
        )
        print(f"longest round:        {max(r[0] for r in rounds):.1f} s")
        print(f"longest transaction:  {max(r[1] for r in rounds) * 1000:.0f} ms")
        print(
            f"kept:                 {kept[0]:,} recent, {kept[1]:,} running, {kept[2]:,} old left"
        )
        print(f"writer ({args.reports} reports a batch, JobStore.apply):")
        print(f"  without deletes:    {latency(without)}")
        print(f"  during deletes:     {latency(during)}")
    finally:
        pool.close()
        if not args.keep:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
