"""API tokens for tests: made straight in the store, as an admin would with the CLI."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import psycopg_pool

from b2c_monitoring.auth import Role
from b2c_monitoring.storage.tokens import TokenStore


def token(
    pool: psycopg_pool.ConnectionPool,
    role: Role,
    tenants: list[str] | None,
    name: str | None = None,
    *,
    expires_in: timedelta | None = None,
    services: Sequence[str] | None = None,
) -> str:
    """The secret of a new token; its name defaults to ``<role>-<random>``.
    ``expires_in`` may be negative: a token that has already expired (made as if an
    hour earlier, since a token cannot be created expired)."""
    name = name or f"{role.value}-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    created = (
        now - timedelta(hours=1) if expires_in is not None and expires_in <= timedelta(0) else now
    )
    _, secret = TokenStore(pool).create(
        name,
        role,
        tenants,
        created,
        expires_at=None if expires_in is None else now + expires_in,
        services=services,
    )
    return secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}
