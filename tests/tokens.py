"""API tokens for tests: made straight in the store, as an admin would with the CLI."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg_pool

from b2c_monitoring.auth import Role
from b2c_monitoring.storage.tokens import TokenStore


def token(
    pool: psycopg_pool.ConnectionPool,
    role: Role,
    tenants: list[str] | None,
    name: str | None = None,
) -> str:
    """The secret of a new token; its name defaults to ``<role>-<random>``."""
    name = name or f"{role.value}-{uuid.uuid4().hex[:6]}"
    _, secret = TokenStore(pool).create(name, role, tenants, datetime.now(UTC))
    return secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}
