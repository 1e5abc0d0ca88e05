"""Grafana logins bound to tenants: the rows behind the row-level security of 0017.

A Grafana data source per tenant (or per group of tenants) logs in as a role of its
own, a member of ``b2c_grafana`` (so it has that role's SELECT grants and nothing
more), whose tenants are rows of ``grafana_tenants``. The policies read those rows by
the login's name (``session_user``), so no SQL a dashboard runs can widen them.

Making a role needs a connection that may create roles and write ``grafana_tenants``
(the local stack's superuser; on a server of its own, the owner with CREATEROLE).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import psycopg
from psycopg import sql

from b2c_monitoring.errors import ConfigError
from b2c_monitoring.storage.db import translate_errors

GRAFANA_ROLE = "b2c_grafana"
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def role_name_for(tenant: str) -> str:
    """The default login name for ``tenant``: ``b2c_grafana_<tenant>``, lower case,
    every character Postgres would make us quote replaced by ``_``."""
    return (GRAFANA_ROLE + "_" + re.sub(r"[^a-z0-9_]", "_", tenant.lower()))[:63]


def grant_tenants(conninfo: str, role: str, tenants: Sequence[str], password: str | None) -> bool:
    """Let the login ``role`` read exactly ``tenants``; made first (with ``password``)
    if it does not exist. True when it was made now. ``password`` None: an existing
    role keeps its password (the stack's own ``b2c_grafana``)."""
    if not _NAME.match(role):
        raise ConfigError(f"{role!r} is not a role name: lower-case letters, digits and _ only")
    if not tenants:
        raise ConfigError("a Grafana role needs one tenant at least")
    with translate_errors(), psycopg.connect(conninfo) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if exists is None:
            if password is None:
                raise ConfigError(f"role {role} does not exist; a new one needs a password")
            conn.execute(
                # INHERIT: the member uses b2c_grafana's grants without SET ROLE
                sql.SQL("CREATE ROLE {} LOGIN INHERIT PASSWORD {} IN ROLE {}").format(
                    sql.Identifier(role), sql.Literal(password), sql.Identifier(GRAFANA_ROLE)
                )
            )
            conn.execute(
                sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(
                    sql.Identifier(role)
                )
            )
        elif role != GRAFANA_ROLE:
            member = conn.execute(
                "SELECT pg_has_role(%s, %s, 'MEMBER')", (role, GRAFANA_ROLE)
            ).fetchone()
            if not (member and member[0]):
                raise ConfigError(f"role {role} exists and is not a member of {GRAFANA_ROLE}")
        conn.execute("DELETE FROM grafana_tenants WHERE role_name = %s", (role,))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO grafana_tenants (role_name, tenant_id) VALUES (%s, %s)",
                [(role, t) for t in sorted(set(tenants))],
            )
    return exists is None


def tenants_of(conninfo: str) -> dict[str, list[str]]:
    """Every Grafana login and the tenants it reads."""
    with translate_errors(), psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT role_name, array_agg(tenant_id ORDER BY tenant_id) FROM grafana_tenants "
            "GROUP BY role_name ORDER BY role_name"
        ).fetchall()
    return {str(name): list(tenants) for name, tenants in rows}
