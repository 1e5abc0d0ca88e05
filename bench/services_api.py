"""GET /api/admin/services and /api/admin/health/summary with 1,000 services: latency.

Creates a database of its own (``b2c_bench_services``) in the Postgres of a running
local stack, migrates it, fills it through the real store (``MetricsStore.apply``: a
day of status changes with outages, an hour of resource samples per service, and
components), starts an admin API process of its own on it, and times real HTTP
requests. The database is dropped at the end.

    uv run b2c stack up
    uv run python bench/services_api.py [--services 1000] [--requests 50]
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg

from b2c_monitoring.auth import Role
from b2c_monitoring.processors.health import HealthReport, HealthStatus
from b2c_monitoring.processors.resources import ResourceSample
from b2c_monitoring.processors.services import CheckReport, ServiceType
from b2c_monitoring.stack.local import LocalStack, default_layout
from b2c_monitoring.stack.postgres import ROLE
from b2c_monitoring.storage.db import make_pool
from b2c_monitoring.storage.maintenance import maintain
from b2c_monitoring.storage.metrics import MetricsPolicy, MetricsStore
from b2c_monitoring.storage.migrations import migrate
from b2c_monitoring.storage.tokens import TokenStore

DATABASE = "b2c_bench_services"
TYPES = list(ServiceType)


def fill(url: str, services: int, now: datetime) -> None:
    pool = make_pool(url, max_size=2, name="bench-fill")
    pool.open(wait=True)
    policy = MetricsPolicy()
    maintain(pool, policy, now)
    store = MetricsStore(pool, policy)
    rng = random.Random(7)
    for first in range(0, services, 50):
        checks: list[CheckReport] = []
        samples: list[ResourceSample] = []
        for n in range(first, min(first + 50, services)):
            tenant, name = f"bench-{n % 10:02d}", f"service-{n:04d}"
            kind = TYPES[n % len(TYPES)]
            # a check every 5 minutes over a day, with an outage now and then
            outage = rng.randrange(0, 288)
            for step in range(288):
                at = now - timedelta(minutes=5 * (288 - step))
                up = not outage <= step < outage + 6
                checks.append(
                    CheckReport(tenant, name, at, up, rng.uniform(0.02, 0.4) if up else None, kind)
                )
            for minute in range(60):
                samples.append(
                    ResourceSample(
                        tenant,
                        name,
                        now - timedelta(minutes=60 - minute),
                        cpu_ratio=rng.random(),
                        memory_used=rng.uniform(1, 2) * 2**30,
                        memory_limit=4 * 2**30,
                        threads=rng.randrange(10, 100),
                        pool_used=rng.randrange(0, 20),
                        pool_idle=5,
                        queue_depth=rng.randrange(0, 50),
                    )
                )
        store.apply(checks, [], samples, now)
    components = [
        HealthReport(f"bench-{t:02d}", name, rng.choice(list(HealthStatus)[:3]), now)
        for t in range(10)
        for name in ("catalog", "search", "orders", "pricing", "identity")
    ]
    store.apply([], components, [], now)
    pool.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed(client: httpx.Client, path: str, requests: int) -> list[float]:
    client.get(path).raise_for_status()  # warm
    seconds = []
    for _ in range(requests):
        started = time.perf_counter()
        client.get(path).raise_for_status()
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--port-offset", type=int, default=None)
    args = parser.parse_args()
    stack = LocalStack(default_layout(args.home, args.port_offset))
    admin = stack.postgres.admin_url()
    url = stack.postgres.url_for(ROLE, DATABASE)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}" OWNER b2c')
    api: subprocess.Popen[bytes] | None = None
    try:
        migrate(url)
        now = datetime.now(UTC)
        started = time.perf_counter()
        fill(url, args.services, now)
        print(f"filled {args.services} services in {time.perf_counter() - started:.0f} s")
        pool = make_pool(url, max_size=1, name="bench-token")
        pool.open(wait=True)
        _, secret = TokenStore(pool).create("bench", Role.ADMIN, None, now)
        pool.close()
        port = free_port()
        env = {**os.environ, "B2C_DATABASE_URL": url, "B2C_API_URL": f"http://127.0.0.1:{port}"}
        api = subprocess.Popen(
            [sys.executable, "-m", "b2c_monitoring", "serve", "api"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {secret}"}, timeout=60
        ) as client:
            for _ in range(100):
                try:
                    client.get("/healthz")
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            for path in ("/api/admin/services", "/api/admin/health/summary"):
                seconds = timed(client, path, args.requests)
                q = statistics.quantiles(seconds, n=20)
                print(
                    f"{path}: median {statistics.median(seconds) * 1000:.0f} ms, "
                    f"p95 {q[18] * 1000:.0f} ms over {args.requests} requests"
                )
    finally:
        if api is not None:
            api.terminate()
            api.wait(10)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


if __name__ == "__main__":
    main()
