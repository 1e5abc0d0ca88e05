"""API tokens for tests: made straight in the store, as an admin would with the CLI."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import psycopg_pool

from b2c_monitoring.auth import Role
from b2c_monitoring.storage.tokens import TokenStore

if TYPE_CHECKING:
    from b2c_monitoring.stack.local import LocalStack


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


def probe_auth(stack: LocalStack) -> dict[str, str]:
    """The header a raw OTLP/HTTP sender needs: the stack's probe token of every tenant."""
    return bearer(stack.probe_token)


def probe_metadata(stack: LocalStack) -> tuple[tuple[str, str], ...]:
    """The same for a raw OTLP/gRPC call (metadata keys are lower case)."""
    return (("authorization", f"Bearer {stack.probe_token}"),)
