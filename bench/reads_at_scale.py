"""The admin reads at 1,000,000 or 10,000,000 jobs with their timelines: latency and disk.

Creates a database of its own (``b2c_bench_reads``) in the Postgres of a running
local stack, migrates it, and fills it in SQL in minutes: the secondary indexes of
``jobs`` and ``job_changes`` are dropped, the jobs generated with
``generate_series`` (the spread of ``bench/jobs_list.py``: 21 tenants, three types,
88 % succeeded, 9.5 % failed, 2 % cancelled over 90 days, a few running and pending
in the last two hours), a four-row timeline per finished job (pending, running 30,
running 70, the end; two rows for a running job, one for a pending one), then the
indexes built again and the tables vacuumed. It adds ``--services`` services with a
day of checks (``bench/services_api.py``).

Then, against an admin API process of its own (real HTTP): ``GET /api/admin/jobs``
p99 at page 1 and page ``--page`` (walked to by the cursor) for each filter set of
``bench/jobs_list.py``, the job detail (``GET /api/admin/jobs/{id}``, random jobs),
the services list and the health summary; and the disk: Postgres bytes per job with
its timeline, and Elasticsearch bytes per log record of the stack's log indices.

    uv run python bench/reads_at_scale.py --home .b2c-test --port-offset 1000 \\
        [--jobs 10000000] [--keep]

``--keep`` keeps the database (a later run with the same ``--jobs`` reuses it); drop it
when done: at 10,000,000 jobs it is several GB.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from b2c_monitoring.auth import Role
from b2c_monitoring.stack.local import LocalStack
from b2c_monitoring.stack.postgres import ROLE
from b2c_monitoring.storage.db import make_pool
from b2c_monitoring.storage.tokens import TokenStore

sys.path.insert(0, str(Path(__file__).parent))
import jobs_list  # the filters, the API process and the timing of that bench
import services_api

DATABASE = "b2c_bench_reads"

# the timeline of each job, from its own row: what its reports said
TIMELINE = """
INSERT INTO job_changes (tenant_id, job_id, status, progress_percent, at, error_message,
                         recorded_at)
SELECT j.tenant_id, j.job_id, c.status, c.progress, c.at, c.error_message, c.at
FROM jobs j CROSS JOIN LATERAL (VALUES
    (1, 'pending', 0, j.created_at, NULL::text),
    (2, 'running', 30, j.created_at + interval '5 s', NULL),
    (3, 'running', 70, j.created_at + interval '150 s', NULL),
    (4, j.status, j.progress_percent, j.completed_at, j.error_message)
) AS c(step, status, progress, at, error_message)
WHERE c.step = 1
   OR (c.step IN (2, 3) AND j.status <> 'pending')
   OR (c.step = 4 AND j.completed_at IS NOT NULL)
"""


def _secondary_indexes(conn: psycopg.Connection[Any], table: str) -> list[tuple[str, str]]:
    """Each secondary index's name and the statements that make it again: its
    definition, then the statistics targets of its columns (0022), which the
    definition does not carry."""
    rows = conn.execute(
        "SELECT i.relname, pg_get_indexdef(x.indexrelid) || coalesce((SELECT string_agg("
        "format('; ALTER INDEX %%I ALTER COLUMN %%s SET STATISTICS %%s', i.relname, "
        "a.attnum, a.attstattarget), '') FROM pg_attribute a "
        "WHERE a.attrelid = x.indexrelid AND a.attstattarget > 0), '') "
        "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE x.indrelid = %s::regclass AND NOT x.indisprimary",
        (table,),
    ).fetchall()
    return [(str(name), str(definition)) for name, definition in rows]


def prepare(admin_url: str, url: str, database: str, jobs: int, services: int, keep: bool) -> None:
    if not jobs_list.fresh_database(admin_url, url, database, jobs, keep):
        return
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET work_mem = '256MB'")
        conn.execute("SET maintenance_work_mem = '1GB'")
        dropped = _secondary_indexes(conn, "jobs") + _secondary_indexes(conn, "job_changes")
        for name, _ in dropped:
            conn.execute(f'DROP INDEX "{name}"')  # names from the catalog
        conn.execute(jobs_list.FILL, {"jobs": jobs})
        filled = time.monotonic()
        print(f"  {jobs:,} jobs in {filled - started:.0f} s", flush=True)
        conn.execute(TIMELINE)
        timeline = time.monotonic()
        print(f"  their timelines in {timeline - filled:.0f} s", flush=True)
        for _, definition in dropped:
            conn.execute(definition)
        indexed = time.monotonic()
        print(f"  {len(dropped)} indexes built again in {indexed - timeline:.0f} s", flush=True)
        conn.execute("VACUUM ANALYZE jobs")
        conn.execute("VACUUM ANALYZE job_changes")
        print(f"  vacuumed in {time.monotonic() - indexed:.0f} s", flush=True)
    services_api.fill(url, services, datetime.now(UTC))
    print(f"filled in {time.monotonic() - started:.0f} s", flush=True)


def disk(url: str) -> None:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM job_changes), "
            "pg_relation_size('jobs'), pg_total_relation_size('jobs'), "
            "pg_relation_size('job_changes'), pg_total_relation_size('job_changes')"
        ).fetchone()
        assert row is not None
        jobs, changes, jobs_heap, jobs_total, changes_heap, changes_total = row
        print(
            f"\nPostgres: {jobs:,} jobs, {changes:,} timeline rows; bytes per job: "
            f"{(jobs_total + changes_total) / jobs:,.0f} with its timeline "
            f"(jobs {jobs_heap / jobs:,.0f} heap + {(jobs_total - jobs_heap) / jobs:,.0f} indexes; "
            f"timeline {changes_heap / jobs:,.0f} heap + "
            f"{(changes_total - changes_heap) / jobs:,.0f} indexes); "
            f"{(jobs_total + changes_total) / 1e9 * 1e6 / jobs:.2f} GB per million jobs"
        )
        for name, size in conn.execute(
            "SELECT i.relname, pg_relation_size(x.indexrelid) FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE x.indrelid IN ('jobs'::regclass, 'job_changes'::regclass) ORDER BY 2 DESC"
        ).fetchall():
            print(f"  {name:28s} {size / jobs:6.0f} bytes per job")


def elasticsearch_bytes(admin_url: str) -> None:
    try:
        body = httpx.get(f"{admin_url}/b2c-logs*/_stats/docs,store", timeout=30).json()
    except httpx.HTTPError as exc:
        print(f"\nElasticsearch: not reached ({exc})")
        return
    total = body["_all"]["primaries"]
    docs, size = total["docs"]["count"], total["store"]["size_in_bytes"]
    if docs:
        print(
            f"\nElasticsearch: {docs:,} log records, {size / docs:,.0f} bytes per record (primaries)"
        )
    else:
        print("\nElasticsearch: no log records in b2c-logs*")


def timed(client: httpx.Client, paths: list[str]) -> list[float]:
    """Milliseconds of each request of ``paths`` (after five of them unmeasured)."""
    for path in paths[:5]:
        client.get(path).raise_for_status()
    samples = []
    for path in paths:
        started = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return samples


def _tokens(url: str, now: datetime) -> dict[str, str]:
    pool = make_pool(url, max_size=1, name="bench-tokens")
    pool.open(wait=True)
    try:
        tokens = TokenStore(pool)
        return {
            "admin": tokens.create("bench-admin", Role.ADMIN, None, now)[1],
            "viewer3": tokens.create(
                "bench-viewer3", Role.VIEWER, ["bench-big", "bench-03", "bench-07"], now
            )[1],
        }
    finally:
        pool.close()


def reads(
    stack: LocalStack, url: str, jobs: int, requests: int, page: int, limit: int
) -> dict[str, list[float]]:
    """Every read of this bench through an API process of its own on ``url``, printed
    as it is measured: the milliseconds of each request, by read."""
    now = datetime.now(UTC)
    secrets = _tokens(url, now)
    with psycopg.connect(url) as conn:
        sample = conn.execute(
            "SELECT tenant_id, job_id FROM jobs TABLESAMPLE SYSTEM (1) LIMIT %s", (requests,)
        ).fetchall()
    random.Random(7).shuffle(sample)
    found: dict[str, list[float]] = {}
    log = stack.layout.home / "logs" / "bench-reads-api.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with jobs_list.api_process(url, log, stack.elasticsearch.admin_url) as base:
        print(
            f"\nGET /api/admin/jobs, limit {limit}, {requests} sequential requests "
            f"per figure, over {jobs:,} jobs"
        )
        for scenario in jobs_list.scenarios(now):
            headers = {"Authorization": f"Bearer {secrets[scenario.token]}"}
            params = {**scenario.params, "limit": limit}
            with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
                first, items = jobs_list.measure(client, params, requests)
                found[f"{scenario.name}, page 1"] = first
                print(f"\n{scenario.name}: {params}")
                print(f"  page 1     ({items:3d} jobs): {jobs_list.percentiles(first)}")
                if not scenario.deep:
                    continue
                walk_started = time.monotonic()
                cursor, reached = jobs_list.cursor_at(client, params, page)
                walk = time.monotonic() - walk_started
                if cursor is None:
                    print("  (a single page)")
                    continue
                deep, items = jobs_list.measure(client, {**params, "cursor": cursor}, requests)
                found[f"{scenario.name}, page {page}"] = deep
                print(
                    f"  page {reached:<5d} ({items:3d} jobs): {jobs_list.percentiles(deep)}   "
                    f"(walked there in {walk:.1f}s, {1000 * walk / max(reached - 1, 1):.1f} ms/page)"
                )
        headers = {"Authorization": f"Bearer {secrets['admin']}"}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            paths = {
                "GET /api/admin/jobs/{id}": [
                    f"/api/admin/jobs/{job}?tenant={tenant}" for tenant, job in sample
                ],
                "GET /api/admin/services": ["/api/admin/services"] * requests,
                "GET /api/admin/health/summary": ["/api/admin/health/summary"] * requests,
            }
            print()
            for name, batch in paths.items():
                found[name] = timed(client, batch)
                print(f"{name} ({len(batch)} requests): {jobs_list.percentiles(found[name])}")
    return found


def drop(stack: LocalStack, database: str) -> None:
    with psycopg.connect(stack.postgres.admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    print(f"\ndropped {database}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per figure")
    parser.add_argument("--page", type=int, default=1000, help="the deep page")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="keep (and reuse) the database")
    parser.add_argument("--database", default=DATABASE, help="the bench database's name")
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--port-offset", type=int, default=None)
    args = parser.parse_args()

    stack = jobs_list.stack_with_postgres(args.home, args.port_offset)
    url = stack.postgres.url_for(ROLE, args.database)
    print(f"filling {args.database} with {args.jobs:,} jobs ...", flush=True)
    prepare(stack.postgres.admin_url(), url, args.database, args.jobs, args.services, args.keep)
    try:
        disk(url)
        elasticsearch_bytes(stack.elasticsearch.admin_url)
        reads(stack, url, args.jobs, args.requests, args.page, args.limit)
    finally:
        if not args.keep:
            drop(stack, args.database)
    return 0


if __name__ == "__main__":
    sys.exit(main())
