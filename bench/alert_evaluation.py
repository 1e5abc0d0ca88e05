"""One evaluation round of alert rules: how long it takes with many tenants, services and jobs.

Creates a database of its own (``b2c_bench_alerts``) in the Postgres of a running local
stack, fills it (per tenant: services of which some are down or slow, failed, stalled
and succeeded jobs, components, five rules), and times ``Evaluator.run_once`` against
it, with the stack's Elasticsearch for communication errors: the first round (every
alert fires) and steady rounds (every alert deduplicated). Dropped at the end.

    uv run b2c stack up
    uv run python bench/alert_evaluation.py [--tenants 20] [--services 50] [--jobs 200]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from pydantic import TypeAdapter

from b2c_monitoring.alerting.rules import Condition, Rule, Severity
from b2c_monitoring.alerting.service import Evaluator
from b2c_monitoring.auth import Principal, Role
from b2c_monitoring.processors.job_flags import JobWindows
from b2c_monitoring.stack.local import LocalStack, default_layout
from b2c_monitoring.stack.postgres import ROLE
from b2c_monitoring.storage.alert_config import AlertConfigStore
from b2c_monitoring.storage.alert_facts import CommunicationErrors
from b2c_monitoring.storage.db import make_pool
from b2c_monitoring.storage.logs import make_client
from b2c_monitoring.storage.migrations import migrate

DATABASE = "b2c_bench_alerts"
RULES = [
    {"kind": "service_down", "checks": 3},
    {"kind": "latency_above", "thresholdMs": 500},
    {"kind": "job_failed", "groupingDelayS": 0},
    {"kind": "job_stalled"},
    {"kind": "component_unhealthy"},
]


def fill(url: str, tenants: int, services: int, jobs: int, now: datetime) -> int:
    adapter = TypeAdapter[Condition](Condition)
    pool = make_pool(url, max_size=2, name="bench-fill")
    pool.open(wait=True)
    config = AlertConfigStore(pool)
    with psycopg.connect(url, autocommit=True) as conn:
        for t in range(tenants):
            tenant = f"bench-{t:03d}"
            principal = Principal("bench", "bench", Role.ADMIN, (tenant,))
            for n, cond in enumerate(RULES):
                config.create_rule(
                    Rule(
                        str(uuid.uuid4()),
                        tenant,
                        f"rule-{n}",
                        Severity.WARNING,
                        adapter.validate_python(cond),
                        timedelta(minutes=5),
                    ),
                    principal,
                    now,
                )
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO services (tenant_id, name, service_type, status, first_seen, "
                    "last_checked, last_observed, streak, last_latency_s, updated_at) "
                    "VALUES (%s, %s, 'ERP', %s, %s, %s, %s, %s, %s, %s)",
                    [
                        (
                            tenant,
                            f"svc-{s:03d}",
                            "down" if s % 10 == 0 else "up",
                            now,
                            now,
                            "down" if s % 10 == 0 else "up",
                            5,
                            0.9 if s % 7 == 0 else 0.05,
                            now,
                        )
                        for s in range(services)
                    ],
                )
                cur.executemany(
                    "INSERT INTO jobs (tenant_id, job_id, job_type, status, progress_percent, "
                    "created_at, completed_at, error_message, last_report_at, updated_at) "
                    "VALUES (%s, %s, %s, %s, 0, %s, %s, %s, %s, %s)",
                    [
                        (
                            tenant,
                            f"job-{j:05d}",
                            f"TYPE_{j % 5}",
                            ("failed", "running", "succeeded")[j % 3],
                            now - timedelta(minutes=30 + j % 60),
                            None if j % 3 == 1 else now - timedelta(minutes=30 + j % 60),
                            "boom" if j % 3 == 0 else None,
                            now - timedelta(minutes=30 + j % 60),
                            now,
                        )
                        for j in range(jobs)
                    ],
                )
                cur.executemany(
                    "INSERT INTO components (tenant_id, name, status, reported_status, "
                    "last_report_at, first_seen, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    [
                        (
                            tenant,
                            f"comp-{c}",
                            "unhealthy" if c == 0 else "healthy",
                            "unhealthy" if c == 0 else "healthy",
                            now,
                            now,
                            now,
                        )
                        for c in range(5)
                    ],
                )
    pool.close()
    return tenants * len(RULES)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--port-offset", type=int, default=None)
    args = parser.parse_args()
    stack = LocalStack(default_layout(args.home, args.port_offset))
    admin = stack.postgres.admin_url()
    url = stack.postgres.url_for(ROLE, DATABASE)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}" OWNER b2c')
    try:
        migrate(url)
        now = datetime.now(UTC)
        rules = fill(url, args.tenants, args.services, args.jobs, now)
        pool = make_pool(url, max_size=4, name="bench-alerts")
        pool.open(wait=True)
        es = make_client(stack.elasticsearch.admin_url)
        evaluator = Evaluator(
            pool,
            CommunicationErrors(es, "b2c-logs*", "default"),
            JobWindows(timedelta(minutes=10), timedelta(minutes=15)),
        )
        started = time.perf_counter()
        first = evaluator.run_once(now)
        first_s = time.perf_counter() - started
        steady: list[float] = []
        for n in range(args.rounds):
            started = time.perf_counter()
            report = evaluator.run_once(now + timedelta(seconds=15 * (n + 1)))
            steady.append(time.perf_counter() - started)
            assert report.changes == 0, report
        with pool.connection() as conn:
            row = conn.execute("SELECT count(*) FROM alerts").fetchone()
        alerts = row[0] if row else 0
        print(
            f"{args.tenants} tenants, {rules} rules, {args.tenants * args.services} services, "
            f"{args.tenants * args.jobs} jobs -> {alerts} alerts"
        )
        print(f"first round (every alert fires): {first_s * 1000:.0f} ms, {first.changes} changes")
        print(
            f"steady rounds (deduplicated): median {statistics.median(steady) * 1000:.0f} ms, "
            f"max {max(steady) * 1000:.0f} ms over {len(steady)}"
        )
        pool.close()
        es.close()
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


if __name__ == "__main__":
    main()
