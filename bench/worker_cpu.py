"""A derivation worker's CPU per job-state span, in this process: decode, derive, store.

Where ``bench/job_spans.py --spread`` measures the whole pipeline, this runs what one
processor worker runs (its initializer, then ``_handle`` on each export request's
bytes) on spread requests built as that bench builds them (a job's four reports in
four requests, ``--lag`` requests apart), on a database of its own. It prints the
worker's CPU and its Postgres backend's CPU per span, and with ``--profile`` the
functions that took the worker's time.

    uv run python bench/worker_cpu.py --home .b2c-test --port-offset 1000 [--jobs 40000]

Run it in two checkouts (old and new), alternating, and compare ratios: the cores are
shared. ``--rounds`` repeats the timed part on fresh jobs, for a spread of figures.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
import uuid
from pathlib import Path

import psycopg

from b2c_monitoring.processor import workers
from b2c_monitoring.settings import load_settings
from b2c_monitoring.stack.local import LocalStack, default_layout
from b2c_monitoring.stack.postgres import ROLE
from b2c_monitoring.storage.migrations import migrate

sys.path.insert(0, str(Path(__file__).parent))
import job_spans  # the spread requests, built as the pipeline bench builds them
from job_updates import backend_cpu  # a Postgres backend's CPU seconds, from /proc


def worker_backends(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'b2c-processor-worker' "
            "AND datname = current_database()"
        ).fetchall()
    return [int(r[0]) for r in rows]


def run_round(
    data: list[bytes], spans: int, url: str, profile: cProfile.Profile | None
) -> tuple[float, float, float]:
    """Worker CPU, Postgres CPU and wall seconds for ``data``, every request stored."""
    backends = worker_backends(url)
    pg_before = sum(backend_cpu(p) for p in backends)
    cpu_before, wall_before = time.process_time(), time.monotonic()
    if profile is not None:
        profile.enable()
    for request in data:
        outcome = workers._handle(request)
        if outcome.not_stored is not None or outcome.rejected:
            raise SystemExit(f"a request was not stored: {outcome}")
    if profile is not None:
        profile.disable()
    wall = time.monotonic() - wall_before
    cpu = time.process_time() - cpu_before
    pg = sum(backend_cpu(p) for p in backends) - pg_before
    return cpu / spans, pg / spans, wall / spans


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=40_000, help="jobs per round")
    parser.add_argument("--jobs-per-request", type=int, default=100)
    parser.add_argument("--lag", type=int, default=30, help="requests between a job's reports")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--port-offset", type=int, default=None)
    parser.add_argument("--profile", action="store_true", help="print the top functions")
    args = parser.parse_args()

    stack = LocalStack(default_layout(args.home, args.port_offset))
    database = f"b2c_bench_worker_{uuid.uuid4().hex[:8]}"
    url = stack.postgres.url_for(ROLE, database)
    with psycopg.connect(stack.postgres.admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}" OWNER b2c')
    try:
        migrate(url)
        workers._init_worker(load_settings(database_url=url))
        requests = args.jobs // args.jobs_per_request
        rounds = [
            job_spans.prebuild("bench", f"r{r}-{uuid.uuid4().hex[:6]}", 0, requests,
                               args.jobs_per_request, args.lag)
            for r in range(args.rounds + 1)
        ]  # fmt: skip
        # round 0 warms the pool, the plan cache and the staging tables
        run_round([p.data for p in rounds[0]], sum(p.spans for p in rounds[0]), url, None)
        profile = cProfile.Profile() if args.profile else None
        print(
            f"{args.jobs:,} jobs a round, 4 reports each, {args.jobs_per_request * 4} spans "
            f"a request, lag {args.lag}; machine load {os.getloadavg()[0]:.1f}; "
            f"code {Path(workers.__file__).parents[1]}"
        )
        for n, prepared in enumerate(rounds[1:], 1):
            spans = sum(p.spans for p in prepared)
            cpu, pg, wall = run_round([p.data for p in prepared], spans, url, profile)
            print(
                f"  round {n}: {1 / wall:,.0f} spans/s in one worker; per span: worker CPU "
                f"{1e6 * cpu:.1f} us, Postgres CPU {1e6 * pg:.1f} us, wall {1e6 * wall:.1f} us"
            )
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE status = 'succeeded') FROM jobs"
            ).fetchone()
        assert row is not None
        expected = args.jobs * (args.rounds + 1)
        if row != (expected, expected):
            print(f"  MISMATCH: {row[1]:,}/{row[0]:,} jobs succeeded, {expected:,} expected")
            return 1
        if profile is not None:
            pstats.Stats(profile).sort_stats("tottime").print_stats(25)
        return 0
    finally:
        with psycopg.connect(stack.postgres.admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
