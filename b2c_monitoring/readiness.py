"""Readiness: whether a process can do its work now, and why not.

Liveness (``/healthz``: the process answers) and readiness (``/readyz``: it can reach
the stores its work needs) are separate, so that an orchestrator restarts a process
that hangs but only takes one out of service while its store is away. A check that is
not ``required`` (Elasticsearch for the API: only logs and errors need it) is reported
but does not make the process unready.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
import psycopg_pool
from elasticsearch import Elasticsearch

CHECK_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    reason: str | None = None
    required: bool = True


def postgres_pool(pool: psycopg_pool.ConnectionPool) -> Check:
    """A connection of ``pool`` answers a statement."""
    try:
        with pool.connection(timeout=CHECK_TIMEOUT_S) as conn:
            conn.execute("SELECT 1")
    except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
        return Check("postgres", False, f"Postgres cannot be reached: {_first_line(exc)}")
    return Check("postgres", True)


def postgres_url(conninfo: str) -> Check:
    """A new connection to ``conninfo`` answers a statement (no pool: the processor's
    front has none of the workers' role)."""
    try:
        with psycopg.connect(
            conninfo,
            connect_timeout=int(CHECK_TIMEOUT_S),
            application_name="b2c-readiness",
        ) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return Check("postgres", False, f"Postgres cannot be reached: {_first_line(exc)}")
    return Check("postgres", True)


def elasticsearch(client: Elasticsearch, index: str, *, required: bool) -> Check:
    """A search of ``index`` answers (not a ping: the API's login may read the logs
    indices only, and ``HEAD /`` needs the cluster's ``monitor`` privilege)."""
    try:
        client.options(request_timeout=CHECK_TIMEOUT_S).search(
            index=index, size=0, ignore_unavailable=True, allow_no_indices=True
        )
    except Exception as exc:  # a probe reports every failure as its reason
        reason = f"Elasticsearch cannot be searched: {_first_line(exc)}"
        return Check("elasticsearch", False, reason, required)
    return Check("elasticsearch", True, None, required)


def is_ready(checks: list[Check]) -> bool:
    return all(c.ok for c in checks if c.required)


def body(checks: list[Check]) -> dict[str, Any]:
    """The ``/readyz`` answer: ``status`` (``ready`` or ``notReady``), ``reason`` (the
    required checks that fail, in one line) and every check."""
    failing = [c.reason or c.name for c in checks if c.required and not c.ok]
    return {
        "status": "ready" if not failing else "notReady",
        "reason": "; ".join(failing) or None,
        "checks": [
            {"name": c.name, "ok": c.ok, "required": c.required, "reason": c.reason} for c in checks
        ],
    }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
