"""GET /api/admin/jobs over 1,000,000 jobs: latency at page 1 and deep pages.

Creates a database of its own (``b2c_bench_jobs_list``) in the Postgres of a running
local stack, migrates it, fills it in SQL (``INSERT ... SELECT generate_series``,
in creation order, as jobs arrive), starts an admin API process of its own on it,
and times real HTTP requests with several filters: page 1, and page ``--page``
reached by walking the cursor. The database is dropped at the end (``--keep`` keeps
it, and a later run with ``--keep`` reuses it without filling again).

    uv run b2c stack up
    uv run python bench/jobs_list.py [--jobs 1000000] [--requests 200] [--page 1000]

The data: tenant ``bench-big`` has half of the jobs, ``bench-00`` .. ``bench-19``
the rest; 88 % succeeded, 9.5 % failed (five kinds of error message), 2 % cancelled
over 90 days, 0.3 % running and 0.2 % pending in the last 2 hours (many of them
stalled or overdue; past 1,000,000 jobs still about 5,000 of them: the rest of that
0.5 % succeeded); types ERP_SYNC (half), PIM_IMPORT, CRM_EXPORT.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

from b2c_monitoring.auth import Role
from b2c_monitoring.stack.local import LocalStack, default_layout
from b2c_monitoring.stack.postgres import ROLE
from b2c_monitoring.storage.db import make_pool
from b2c_monitoring.storage.migrations import migrate
from b2c_monitoring.storage.tokens import TokenStore

DATABASE = "b2c_bench_jobs_list"

FILL = """
INSERT INTO jobs (tenant_id, job_id, job_type, status, progress_percent, created_at, started_at,
                  completed_at, error_message, metadata, attempt, service_name, last_report_at,
                  updated_at)
SELECT tenant_id, 'bench-' || g, job_type, status,
       CASE status WHEN 'succeeded' THEN 100 WHEN 'pending' THEN 0 ELSE (r3 * 99)::int END,
       created_at,
       CASE WHEN status <> 'pending' THEN created_at + interval '5 s' END,
       CASE WHEN status IN ('succeeded', 'failed', 'cancelled')
            THEN created_at + interval '5 min' END,
       CASE status WHEN 'failed' THEN
            (ARRAY['ERP timeout after 30 s', 'PIM rejected the import file', 'CRM quota exceeded',
                   'connection reset by peer', 'deadlock detected'])[1 + g %% 5]
            || ' (order ' || g || ')' END,
       jsonb_build_object('rows', g %% 5000, 'source', 'erp-' || g %% 7, 'batch', 'b-' || g %% 1000),
       1, 'bench',
       CASE WHEN status IN ('succeeded', 'failed', 'cancelled') THEN created_at + interval '5 min'
            ELSE created_at + r3 * interval '20 min' END,
       now()
FROM (
    SELECT g, r3,
           CASE WHEN r1 < 0.5 THEN 'bench-big'
                ELSE 'bench-' || lpad(floor((r1 - 0.5) * 40)::int::text, 2, '0') END AS tenant_id,
           (ARRAY['ERP_SYNC', 'ERP_SYNC', 'PIM_IMPORT', 'CRM_EXPORT'])[1 + (r3 * 1000)::int %% 4]
               AS job_type,
           CASE WHEN r2 < 0.88 THEN 'succeeded' WHEN r2 < 0.975 THEN 'failed'
                WHEN r2 < 0.995 THEN 'cancelled' WHEN NOT live THEN 'succeeded'
                WHEN r2 < 0.998 THEN 'running' ELSE 'pending' END AS status,
           -- the finished ones evenly over 90 days in g's order (each in its own slot,
           -- jittered): rows made in creation order with no sort of the whole set
           CASE WHEN r2 < 0.995 OR NOT live
                THEN now() - (1 - (g - r4) / %(jobs)s) * interval '90 days'
                ELSE now() - r4 * interval '2 hours' END AS created_at
    FROM (SELECT g, random() AS r1, random() AS r2, random() AS r3, random() AS r4,
                 -- about 5,000 running and pending at any size, as a system runs a
                 -- bounded number at once: at 10M, 0.5 %% made the newest 50,000 jobs
                 -- of the list unfinished ones, and q= walked past them
                 g %% greatest(1, ceil(%(jobs)s / 1e6))::int = 0 AS live
          FROM generate_series(1, %(jobs)s) AS g) AS r
) AS s
"""


@dataclass(frozen=True)
class Scenario:
    name: str
    token: str  # key of the tokens made in main()
    params: dict[str, Any]
    deep: bool = True  # also measure the deep page


def scenarios(now: datetime) -> list[Scenario]:
    since = (now - timedelta(days=60)).isoformat()
    return [
        Scenario("all tenants, no filter", "admin", {}),
        Scenario("tenant=bench-big", "admin", {"tenant": "bench-big"}),
        Scenario(
            "tenant + status + jobType + since",
            "admin",
            {"tenant": "bench-big", "status": "succeeded", "jobType": "ERP_SYNC", "since": since},
        ),
        Scenario("status=failed, all tenants", "admin", {"status": "failed"}),
        Scenario(
            "viewer of 3 tenants, 2 statuses, since",
            "viewer3",
            {"status": ["succeeded", "failed"], "since": since},
        ),
        Scenario("flag=stalled, all tenants", "admin", {"flag": "stalled"}, deep=False),
        Scenario("q=deadlock, tenant=bench-big", "admin", {"tenant": "bench-big", "q": "deadlock"}),
        Scenario("q=order 4242 (rare), all tenants", "admin", {"q": "(order 4242"}, deep=False),
    ]


def fresh_database(admin_url: str, url: str, database: str, jobs: int, keep: bool) -> bool:
    """Creates ``database`` anew and migrates it; False when ``keep`` and it already
    holds ``jobs`` jobs (a fill of millions takes minutes): then only the migrations
    it lacks are applied."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if exists and keep:
            with psycopg.connect(url) as db:
                row = db.execute("SELECT count(*) FROM jobs").fetchone()
            if row is not None and row[0] == jobs:
                print(f"reusing {database} with {jobs:,} jobs", flush=True)
                migrate(url)
                return False
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{database}" OWNER b2c')
    migrate(url)
    return True


def prepare(admin_url: str, url: str, jobs: int, keep: bool) -> None:
    if not fresh_database(admin_url, url, DATABASE, jobs, keep):
        return
    print(f"filling {DATABASE} with {jobs:,} jobs ...", flush=True)
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET work_mem = '256MB'")
        conn.execute(FILL, {"jobs": jobs})
        filled = time.monotonic() - started
        conn.execute("VACUUM ANALYZE jobs")
        size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('jobs'))").fetchone()
    print(
        f"filled in {filled:.0f}s, vacuumed and analysed in {time.monotonic() - started - filled:.0f}s; "
        f"table with indexes: {size[0] if size else '?'}",
        flush=True,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def api_process(url: str, log: Path, elasticsearch_url: str | None = None) -> Iterator[str]:
    """An admin API of this bench's own, on the bench database."""
    base = f"http://127.0.0.1:{_free_port()}"
    env = {**os.environ, "B2C_DATABASE_URL": url, "B2C_API_URL": base}
    if elasticsearch_url is not None:
        env["B2C_ELASTICSEARCH_URL"] = elasticsearch_url
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "b2c_monitoring", "serve", "api"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the API did not start; see {log}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


def get(client: httpx.Client, params: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    response = client.get("/api/admin/jobs", params=params)
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return elapsed, body


def cursor_at(client: httpx.Client, params: dict[str, Any], page: int) -> tuple[str | None, int]:
    """The cursor of page ``page``, walked to from page 1; and the page reached."""
    cursor: str | None = None
    for reached in range(1, page):
        _, body = get(client, {**params, **({"cursor": cursor} if cursor else {})})
        if body["nextCursor"] is None:
            return cursor, reached
        cursor = body["nextCursor"]
    return cursor, page


def percentiles(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return f"p50 {q[49]:6.1f}  p95 {q[94]:6.1f}  p99 {q[98]:6.1f}  max {max(samples):6.1f} ms"


def measure(client: httpx.Client, params: dict[str, Any], requests: int) -> tuple[list[float], int]:
    """Milliseconds of each of ``requests`` requests of one page, and its jobs."""
    for _ in range(5):  # warm the connection and the plan cache
        get(client, params)
    samples = []
    items = 0
    for _ in range(requests):
        elapsed, body = get(client, params)
        samples.append(elapsed)
        items = len(body["items"])
    return samples, items


def stack_with_postgres(home: Path | None, port_offset: int | None) -> LocalStack:
    """The local stack of ``home``; its Postgres must be running (the benches that fill
    a database of their own need nothing else)."""
    stack = LocalStack(default_layout(home, port_offset))
    if not stack.postgres.healthy():
        raise SystemExit("the stack's Postgres is not running: 'uv run b2c stack up'")
    return stack


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per figure")
    parser.add_argument("--page", type=int, default=1000, help="the deep page")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="keep (and reuse) the database")
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--port-offset", type=int, default=None)
    args = parser.parse_args()

    stack = stack_with_postgres(args.home, args.port_offset)
    url = stack.postgres.url_for(ROLE, DATABASE)
    prepare(stack.postgres.admin_url(), url, args.jobs, args.keep)
    try:
        pool = make_pool(url, max_size=1, name="bench-tokens")
        pool.open(wait=True)
        now = datetime.now(UTC)
        tokens = TokenStore(pool)
        secrets = {
            "admin": tokens.create("bench-admin", Role.ADMIN, None, now)[1],
            "viewer3": tokens.create(
                "bench-viewer3", Role.VIEWER, ["bench-big", "bench-03", "bench-07"], now
            )[1],
        }
        pool.close()

        log = stack.layout.home / "logs" / "bench-jobs-list-api.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with api_process(url, log) as base:
            print(
                f"\nGET /api/admin/jobs, limit {args.limit}, {args.requests} sequential requests "
                f"per figure, over {args.jobs:,} jobs"
            )
            for scenario in scenarios(now):
                headers = {"Authorization": f"Bearer {secrets[scenario.token]}"}
                params = {**scenario.params, "limit": args.limit}
                with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
                    first, items = measure(client, params, args.requests)
                    print(f"\n{scenario.name}: {params}")
                    print(f"  page 1     ({items:3d} jobs): {percentiles(first)}")
                    if not scenario.deep:
                        continue
                    walk_started = time.monotonic()
                    cursor, reached = cursor_at(client, params, args.page)
                    walk = time.monotonic() - walk_started
                    if cursor is None:
                        print("  (a single page)")
                        continue
                    deep, items = measure(client, {**params, "cursor": cursor}, args.requests)
                    print(
                        f"  page {reached:<5d} ({items:3d} jobs): {percentiles(deep)}   "
                        f"(walked there in {walk:.1f}s, {1000 * walk / max(reached - 1, 1):.1f} ms/page)"
                    )
    finally:
        if not args.keep:
            with psycopg.connect(stack.postgres.admin_url(), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
            print(f"\ndropped {DATABASE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
