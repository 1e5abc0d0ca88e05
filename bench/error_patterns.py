"""GET /api/admin/services/{id}/error-patterns over 1,000,000 communication errors: latency.

Bulk-loads communication-error documents, shaped as the collector's elasticsearch
exporter writes them (with ``error.pattern`` and ``error.fingerprint`` as the
collector's transform computes them, here by the Python reference), into an index of
its own that matches the API's read pattern (``b2c-logs-bench-error-patterns``), in a
running local stack's Elasticsearch. 90 % of them are one service's of one tenant
(200 message templates with ids, numbers, timestamps and URLs that vary, 5,000 jobs,
over the last 24 hours), the rest another tenant's and another service's. Then it times
the error-patterns query in Elasticsearch (``took``) and end to end through an admin
API process of its own (p50 / p99), prints the index's disk use, and deletes the index.

    uv run b2c stack up
    uv run python bench/error_patterns.py [--errors 1000000] [--runs 30] [--home H --port-offset N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from b2c_monitoring import contract as c
from b2c_monitoring.auth import Role
from b2c_monitoring.error_patterns import fingerprint, pattern_of
from b2c_monitoring.processors.services import CheckReport
from b2c_monitoring.stack.local import LocalStack, default_layout
from b2c_monitoring.storage.communication_errors import ErrorQuery, patterns_search
from b2c_monitoring.storage.db import make_pool
from b2c_monitoring.storage.metrics import MetricsPolicy
from b2c_monitoring.storage.services import ServiceStore
from b2c_monitoring.storage.tokens import TokenStore

INDEX = "b2c-logs-bench-error-patterns"
SERVICE = "pim-system"
TEMPLATES = 200
JOBS = 5000
BATCH = 5000

_VERBS = ("GET", "POST", "PUT", "DELETE")
_SHAPES = (
    "{verb} https://pim-{h}.example/api/v{v}/items/{n}?page={m} returned {status}",
    "import {uuid} failed at {ts}: lock held by session {hex}",
    "product {n} not found in catalog {m}",
    "timeout after {f} s talking to 10.0.{h}.{m}:8443",
    "mail to buyer{n}@shop{h}.example bounced (queue id 0x{hex})",
)


def _message(template: int, rng: random.Random, at: datetime) -> str:
    shape = _SHAPES[template % len(_SHAPES)]
    text = shape.format(
        verb=_VERBS[template % len(_VERBS)],
        h=rng.randint(1, 9),
        v=rng.randint(1, 3),
        n=rng.randint(1, 10**7),
        m=rng.randint(1, 500),
        status=(500, 502, 503, 504)[template % 4],
        uuid=uuid.UUID(int=rng.getrandbits(128)),
        ts=at.isoformat(),
        hex=f"{rng.getrandbits(64) | 0xA << 60:016x}",
        f=f"{rng.uniform(1, 60):.1f}",
    )
    # the template's own words make 200 distinct patterns out of five shapes
    return f"[op{chr(97 + template % 26)}{chr(97 + template // 26)}] {text}"


def documents(
    count: int, tenant: str, other: str, now: datetime, rng: random.Random
) -> Iterator[dict[str, Any]]:
    patterns: dict[int, tuple[str, str]] = {}
    for i in range(count):
        template = min(int(rng.paretovariate(1.2)) - 1, TEMPLATES - 1)
        at = now - timedelta(seconds=rng.uniform(0, 86400))
        message = _message(template, rng, at)
        if template not in patterns:
            pattern = pattern_of(message)
            patterns[template] = (pattern, fingerprint(pattern))
        pattern, key = patterns[template]
        owner = i % 10
        yield {
            "@timestamp": at.isoformat(),
            "Body": f"{SERVICE}: call failed",
            "SeverityText": "ERROR",
            "SeverityNumber": 17,
            "Resource.service.name": "pim-connector",
            "Resource.tenant.id": other if owner == 9 else tenant,
            f"Attributes.{c.EVENT_NAME}": c.COMMUNICATION_ERROR_EVENT,
            f"Attributes.{c.CONNECTED_SERVICE_NAME}": "crm" if owner == 8 else SERVICE,
            f"Attributes.{c.EXCEPTION_MESSAGE}": message,
            f"Attributes.{c.ERROR_TYPE}": str(500 + template % 4),
            "Attributes.http.response.status_code": 500 + template % 4,
            f"Attributes.{c.URL_FULL}": f"https://pim.example/api/items/{i}",
            f"Attributes.{c.COMMUNICATION_DURATION}": rng.uniform(0.01, 30),
            f"Attributes.{c.JOB_ID}": f"job-{rng.randrange(JOBS):05d}",
            "Attributes.error.pattern": pattern,
            "Attributes.error.fingerprint": key,
        }


def load(es: httpx.Client, count: int, tenant: str, other: str, now: datetime) -> None:
    es.delete(f"/{INDEX}")
    es.put(f"/{INDEX}").raise_for_status()  # the b2c-logs template applies
    es.put(f"/{INDEX}/_settings", json={"index": {"refresh_interval": "-1"}}).raise_for_status()
    rng = random.Random(11)
    lines: list[bytes] = []
    action = json.dumps({"create": {}}).encode()
    for n, doc in enumerate(documents(count, tenant, other, now, rng), 1):
        lines += [action, json.dumps(doc).encode()]
        if n % BATCH == 0 or n == count:
            answer = es.post(
                f"/{INDEX}/_bulk",
                content=b"\n".join(lines) + b"\n",
                headers={"Content-Type": "application/x-ndjson"},
            )
            answer.raise_for_status()
            if answer.json().get("errors"):
                raise SystemExit(f"bulk errors: {answer.text[:500]}")
            lines = []
    es.put(f"/{INDEX}/_settings", json={"index": {"refresh_interval": "1s"}}).raise_for_status()
    es.post(f"/{INDEX}/_refresh").raise_for_status()
    # as a day's index looks once written: few segments
    es.post(f"/{INDEX}/_forcemerge", params={"max_num_segments": 1}, timeout=600)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def figures(name: str, seconds: list[float]) -> None:
    q = statistics.quantiles(seconds, n=100, method="inclusive")
    print(
        f"{name}: p50 {statistics.median(seconds) * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms, "
        f"max {max(seconds) * 1000:.0f} ms over {len(seconds)} runs"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--errors", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--port-offset", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="leave the index for another run")
    parser.add_argument("--reuse", action="store_true", help="time the index a --keep run left")
    args = parser.parse_args()
    stack = LocalStack(default_layout(args.home, args.port_offset))
    tenant, other = f"bench-{uuid.uuid4().hex[:6]}", f"bench-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    api: subprocess.Popen[bytes] | None = None
    with httpx.Client(base_url=stack.elasticsearch.admin_url, timeout=120) as es:
        try:
            started = time.perf_counter()
            if args.reuse:
                kept = es.post(
                    f"/{INDEX}/_search",
                    json={
                        "size": 0,
                        "aggs": {
                            "tenant": {"terms": {"field": "Resource.tenant.id", "size": 1}},
                            "last": {"max": {"field": "@timestamp"}},
                        },
                    },
                ).json()["aggregations"]
                tenant = kept["tenant"]["buckets"][0]["key"]  # the 90 % one
                now = datetime.fromisoformat(kept["last"]["value_as_string"])
            else:
                load(es, args.errors, tenant, other, now)
            loaded = time.perf_counter() - started
            stats = es.get(f"/{INDEX}/_stats/store,docs").json()["_all"]["primaries"]
            print(
                f"{'kept' if args.reuse else 'loaded'} {stats['docs']['count']:,} documents "
                f"in {loaded:.0f} s; "
                f"index on disk {stats['store']['size_in_bytes'] / 2**20:.0f} MiB "
                f"({stats['store']['size_in_bytes'] / max(1, stats['docs']['count']):.0f} B/doc)"
            )

            # the query alone, as the store sends it
            body = patterns_search(
                ErrorQuery(tenant_id=tenant, service_name=SERVICE),
                default_tenant="default",
                since=now - timedelta(hours=24),
                until=now + timedelta(minutes=1),
                limit=20,
            )
            took, wall = [], []
            for _ in range(args.runs + 1):
                t0 = time.perf_counter()
                answer = es.post(f"/{INDEX}/_search", json=body, params={"request_cache": "false"})
                wall.append(time.perf_counter() - t0)
                answer.raise_for_status()
                took.append(answer.json()["took"] / 1000)
            result = answer.json()
            print(
                f"matched {result['hits']['total']['value']:,} errors in "
                f"{result['aggregations']['pattern_count']['value']} patterns"
            )
            figures("elasticsearch took", took[1:])
            figures("elasticsearch round trip", wall[1:])

            # end to end: token check, the service in Postgres, the query, the JSON
            pool = make_pool(stack.postgres.url, max_size=1, name="bench-error-patterns")
            pool.open(wait=True)
            policy = MetricsPolicy()
            ServiceStore(pool, policy.damping, policy.retention).record(
                [CheckReport(tenant, SERVICE, now, False, error="refused")], now
            )
            _, secret = TokenStore(pool).create("bench", Role.VIEWER, [tenant], now)
            pool.close()
            port = free_port()
            env = {**os.environ, **stack.api.base_env(), "B2C_API_URL": f"http://127.0.0.1:{port}"}
            api = subprocess.Popen(
                [sys.executable, "-m", "b2c_monitoring", "serve", "api"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            with httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {secret}"},
                timeout=60,
            ) as client:
                for _ in range(150):
                    try:
                        client.get("/healthz")
                        break
                    except httpx.TransportError:
                        time.sleep(0.2)
                path = f"/api/admin/services/{SERVICE}/error-patterns"
                for query in ("", "?jobs=false"):
                    seconds = []
                    for _ in range(args.runs + 1):
                        t0 = time.perf_counter()
                        answer = client.get(path + query)
                        seconds.append(time.perf_counter() - t0)
                        answer.raise_for_status()
                    report = answer.json()
                    top = report["items"][0]
                    print(
                        f"API: {report['total']:,} errors, {report['patternCount']} patterns, "
                        f"top {top['count']:,} ({top['pattern'][:50]}), "
                        f"jobs affected {top['jobsAffected']}"
                    )
                    figures(f"GET {path}{query}", seconds[1:])
        finally:
            if api is not None:
                api.terminate()
                api.wait(10)
            if not args.keep:
                es.delete(f"/{INDEX}")


if __name__ == "__main__":
    main()
