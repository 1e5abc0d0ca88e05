"""Admin API tokens. The secret is shown once at creation; only its SHA-256 is stored.

A token may end (``expires_at``): past it, it is refused exactly like a revoked one,
by ``authenticate`` and so by the API, the hub and the probe endpoints. A probe
token may be bound to services (``services``): ``Principal.require_service``.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
import psycopg_pool
from psycopg.rows import dict_row

from b2c_monitoring.auth import Principal, Role, TokenState, check_usable, token_state
from b2c_monitoring.errors import NotFound, Unauthenticated
from b2c_monitoring.storage import audit
from b2c_monitoring.storage.db import translate_errors

LAST_USED_PRECISION = timedelta(minutes=1)
TOKEN_PREFIX = "b2c_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True)
class TokenRecord:
    id: str
    name: str
    role: Role
    tenants: tuple[str, ...] | None
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    expires_at: datetime | None = None
    services: tuple[str, ...] | None = None  # None: any service

    def state(self, now: datetime) -> TokenState:
        return token_state(self.revoked_at, self.expires_at, now)


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _record(row: dict[str, Any]) -> TokenRecord:
    return TokenRecord(
        id=str(row["id"]),
        name=row["name"],
        role=Role(row["role"]),
        tenants=tuple(row["tenants"]) if row["tenants"] is not None else None,
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
        expires_at=row["expires_at"],
        services=tuple(row["services"]) if row["services"] is not None else None,
    )


def _within(tenants: Sequence[str] | None) -> tuple[str, tuple[object, ...]]:
    if tenants is None:
        return "TRUE", ()
    return "tenants IS NOT NULL AND tenants <@ %s::text[]", (list(tenants),)


class TokenStore:
    def __init__(self, pool: psycopg_pool.ConnectionPool) -> None:
        self._pool = pool

    def create(
        self,
        name: str,
        role: Role,
        tenants: Sequence[str] | None,
        now: datetime,
        *,
        actor: Principal | None = None,
        expires_at: datetime | None = None,
        services: Sequence[str] | None = None,
    ) -> tuple[TokenRecord, str]:
        """A new token and its secret; ``actor``: the admin who asked, audited in the
        same transaction (``None``: the stack's own bootstrap, not an operator action).
        ``expires_at`` must lie after ``now``; ``services`` only for a probe token (the
        table refuses both otherwise)."""
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with (
            translate_errors(),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            cur.execute(
                "INSERT INTO api_tokens "
                "(id, name, token_hash, role, tenants, created_at, expires_at, services) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
                (
                    uuid.uuid4(),
                    name,
                    _hash(secret),
                    role.value,
                    # an empty list must not widen to every tenant: the table refuses it
                    list(tenants) if tenants is not None else None,
                    now,
                    expires_at,
                    list(services) if services is not None else None,
                ),
            )
            row = cur.fetchone()
            assert row is not None
            created = _record(row)
            if actor is not None:
                _audit(conn, actor, "token.create", created, now)
        return created, secret

    def authenticate(self, secret: str, now: datetime) -> Principal:
        with (
            translate_errors(),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            cur.execute(
                "SELECT id, name, role, tenants, services, expires_at, last_used_at "
                "FROM api_tokens WHERE token_hash = %s AND revoked_at IS NULL",
                (_hash(secret),),
            )
            row = cur.fetchone()
            if row is None:
                raise Unauthenticated("the token is unknown or revoked")
            check_usable(row["name"], None, row["expires_at"], now)
            # a write per request would cost every request a commit; a minute is precise
            # enough for "when was this token last used"
            if row["last_used_at"] is None or now - row["last_used_at"] >= LAST_USED_PRECISION:
                cur.execute(
                    "UPDATE api_tokens SET last_used_at = %s WHERE id = %s", (now, row["id"])
                )
        return Principal(
            token_id=str(row["id"]),
            name=row["name"],
            role=Role(row["role"]),
            tenants=tuple(row["tenants"]) if row["tenants"] is not None else None,
            services=tuple(row["services"]) if row["services"] is not None else None,
            expires_at=row["expires_at"],
        )

    def list(
        self, within: Sequence[str] | None = None, *, include_revoked: bool = True
    ) -> list[TokenRecord]:
        """Tokens oldest first; ``within``: only tokens scoped to some of these tenants
        (a token of every tenant is within no list)."""
        where, params = _within(within)
        if not include_revoked:
            where += " AND revoked_at IS NULL"
        with (
            translate_errors(),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            cur.execute(f"SELECT * FROM api_tokens WHERE {where} ORDER BY created_at, name", params)
            return [_record(row) for row in cur.fetchall()]

    def revoke(
        self,
        token_id: str,
        now: datetime,
        within: Sequence[str] | None = None,
        *,
        actor: Principal | None = None,
    ) -> TokenRecord:
        """Revoke a token (again: no change); one outside ``within`` is NotFound."""
        try:
            key = uuid.UUID(token_id)
        except ValueError as exc:
            raise NotFound(f"no token {token_id!r}") from exc
        where, params = _within(within)
        with (
            translate_errors(),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            cur.execute(
                "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, %s) "
                f"WHERE id = %s AND {where} RETURNING *",
                (now, key, *params),
            )
            row = cur.fetchone()
            if row is None:
                raise NotFound(f"no token {token_id!r}")
            revoked = _record(row)
            if actor is not None:
                _audit(conn, actor, "token.revoke", revoked, now)
        return revoked


def _audit(
    conn: psycopg.Connection[Any], actor: Principal, action: str, token: TokenRecord, now: datetime
) -> None:
    only_tenant = (
        token.tenants[0] if token.tenants is not None and len(token.tenants) == 1 else None
    )
    details: dict[str, audit.JsonScalar] = {
        "name": token.name,
        "role": token.role.value,
        "tenants": "*" if token.tenants is None else ",".join(token.tenants),
    }
    # only when set, so the entries of tokens that neither end nor bind keep their shape
    if token.services is not None:
        details["services"] = ",".join(token.services)
    if token.expires_at is not None:
        details["expiresAt"] = token.expires_at.isoformat()
    audit.record(
        conn,
        audit.AuditEntry.by(
            actor,
            action,
            token.id,
            at=now,
            tenant_id=only_tenant,
            details=details,
        ),
    )
