"""The audit log of operator actions (table ``audit_log``, 0005): append-only rows.

An action that changes something writes its audit row with ``record`` inside its
own transaction, so the change and the record of who made it commit together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
import psycopg_pool
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from b2c_monitoring.auth import Principal
from b2c_monitoring.storage.db import translate_errors

JsonScalar = str | int | float | bool | None


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor_name: str
    actor_token_id: str | None
    action: str  # e.g. job.cancel
    tenant_id: str | None  # None: not about one tenant
    target: str  # e.g. the job id
    details: Mapping[str, JsonScalar] = field(default_factory=dict)

    @classmethod
    def by(
        cls,
        principal: Principal,
        action: str,
        target: str,
        *,
        at: datetime,
        tenant_id: str | None,
        details: Mapping[str, JsonScalar] | None = None,
    ) -> AuditEntry:
        """What ``principal`` did to ``target``."""
        return cls(
            at=at,
            actor_name=principal.name,
            actor_token_id=principal.token_id,
            action=action,
            tenant_id=tenant_id,
            target=target,
            details=details or {},
        )


@dataclass(frozen=True)
class AuditRecord:
    seq: int  # the log's order: newest is highest
    entry: AuditEntry


@dataclass(frozen=True)
class AuditQuery:
    tenants: Sequence[str] | None = None  # None: every tenant, and entries of none
    actions: Sequence[str] = ()
    since: datetime | None = None  # at >= since
    before_seq: int | None = None  # the last entry of the previous page
    limit: int = 50


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditRecord]
    next_before: int | None  # None: this is the last page


_INSERT = (
    "INSERT INTO audit_log (at, actor_token_id, actor_name, action, tenant_id, target, details) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING seq"
)


def record(conn: psycopg.Connection[Any], entry: AuditEntry) -> int:
    """Append ``entry`` within the caller's transaction; its sequence number."""
    row = conn.execute(
        _INSERT,
        (
            entry.at,
            entry.actor_token_id,
            entry.actor_name,
            entry.action,
            entry.tenant_id,
            entry.target,
            Jsonb(dict(entry.details)),
        ),
    ).fetchone()
    assert row is not None
    seq: int = row[0]
    return seq


def _from_row(row: dict[str, Any]) -> AuditRecord:
    return AuditRecord(
        seq=row["seq"],
        entry=AuditEntry(
            at=row["at"],
            actor_name=row["actor_name"],
            actor_token_id=row["actor_token_id"],
            action=row["action"],
            tenant_id=row["tenant_id"],
            target=row["target"],
            details=row["details"],
        ),
    )


class AuditStore:
    def __init__(self, pool: psycopg_pool.ConnectionPool) -> None:
        self._pool = pool

    def record(self, entry: AuditEntry) -> int:
        """Append ``entry`` in a transaction of its own (an action that changed nothing)."""
        with translate_errors(), self._pool.connection() as conn:
            return record(conn, entry)

    def list(self, query: AuditQuery) -> AuditPage:
        """Newest first, a page of ``query.limit`` entries."""
        where: list[str] = []
        params: dict[str, Any] = {"limit": query.limit + 1}
        if query.tenants is not None:
            where.append("tenant_id = ANY(%(tenants)s)")
            params["tenants"] = list(query.tenants)
        if query.actions:
            where.append("action = ANY(%(actions)s)")
            params["actions"] = list(query.actions)
        if query.since is not None:
            where.append("at >= %(since)s")
            params["since"] = query.since
        if query.before_seq is not None:
            where.append("seq < %(before)s")
            params["before"] = query.before_seq
        sql = (
            "SELECT seq, at, actor_token_id, actor_name, action, tenant_id, target, details "
            f"FROM audit_log {'WHERE ' + ' AND '.join(where) if where else ''} "
            "ORDER BY seq DESC LIMIT %(limit)s"
        )
        with (
            translate_errors(),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            cur.execute(sql, params)
            entries = [_from_row(row) for row in cur.fetchall()]
        if len(entries) <= query.limit:
            return AuditPage(entries, None)
        entries = entries[: query.limit]
        return AuditPage(entries, entries[-1].seq)
