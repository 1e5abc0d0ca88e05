"""Least-privilege stores: passwords only, a role per process, tenants enforced in
Postgres for Grafana, and Elasticsearch users that may do only their part."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import errors as pg

from b2c_monitoring.errors import StorageRejected
from b2c_monitoring.stack.base import Ports, StackLayout, repo_root
from b2c_monitoring.stack.local import LocalStack
from b2c_monitoring.stack.postgres import (
    APP_ROLES,
    DATABASE,
    ROLE,
    SYSTEM_USER,
    Postgres,
    _bin_dir,
)
from b2c_monitoring.stack.supervisor import Supervisor
from b2c_monitoring.stack.system import grant_search_path
from b2c_monitoring.storage import grafana_roles
from b2c_monitoring.storage.migrations import migrate

pytestmark = pytest.mark.integration


def _no_password(pg_part: Postgres, role: str) -> str:
    return f"postgresql://{role}@127.0.0.1:{pg_part.port}/{DATABASE}"


def _insert_job(conn: psycopg.Connection[object], tenant: str, job_id: str) -> None:
    now = datetime.now(UTC)
    conn.execute(
        "INSERT INTO jobs (tenant_id, job_id, job_type, status, progress_percent, created_at,"
        " last_report_at, updated_at) VALUES (%s, %s, 'stores-test', 'running', 0, %s, %s, %s)",
        (tenant, job_id, now, now, now),
    )


@pytest.fixture
def two_tenants(stack: LocalStack) -> Iterator[tuple[str, str]]:
    """A job each of two tenants of this test's own, written as the owner."""
    a, b = f"t-{uuid.uuid4().hex[:10]}", f"t-{uuid.uuid4().hex[:10]}"
    with psycopg.connect(stack.postgres.url) as conn:
        _insert_job(conn, a, "job-a")
        _insert_job(conn, b, "job-b")
    yield a, b
    with psycopg.connect(stack.postgres.url) as conn:
        conn.execute("DELETE FROM jobs WHERE tenant_id = ANY(%s)", ([a, b],))


@pytest.fixture
def grafana_of(stack: LocalStack, two_tenants: tuple[str, str]) -> Iterator[str]:
    """The DSN of a Grafana login that may read the first tenant only."""
    role = grafana_roles.role_name_for(two_tenants[0])
    password = uuid.uuid4().hex
    admin = stack.postgres.url_for(SYSTEM_USER, DATABASE)
    assert grafana_roles.grant_tenants(admin, role, [two_tenants[0]], password)
    yield f"postgresql://{role}:{password}@127.0.0.1:{stack.postgres.port}/{DATABASE}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("DELETE FROM grafana_tenants WHERE role_name = %s", (role,))
        conn.execute(f'DROP ROLE "{role}"')


def test_a_connection_without_a_password_is_refused(stack: LocalStack) -> None:
    for role in (SYSTEM_USER, ROLE, *APP_ROLES):
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(_no_password(stack.postgres, role), connect_timeout=5).close()
    wrong = f"postgresql://{ROLE}:wrong@127.0.0.1:{stack.postgres.port}/{DATABASE}"
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=5).close()


def test_a_query_without_a_tenant_filter_returns_only_the_logins_tenants(
    grafana_of: str, two_tenants: tuple[str, str]
) -> None:
    a, b = two_tenants
    with psycopg.connect(grafana_of) as conn:
        rows = conn.execute(
            "SELECT tenant_id, job_id FROM jobs WHERE job_type = 'stores-test'"
        ).fetchall()
        assert rows == [(a, "job-a")]
        # a dashboard's raw SQL may set any setting: it does not widen the rows
        conn.execute("SELECT set_config('b2c.tenant_ids', %s, false)", (b,))
        conn.execute("RESET ROLE")
        assert conn.execute("SELECT count(*) FROM jobs WHERE tenant_id = %s", (b,)).fetchone() == (
            0,
        )


def test_the_grafana_role_without_tenants_reads_no_rows(
    stack: LocalStack, two_tenants: tuple[str, str]
) -> None:
    with psycopg.connect(stack.postgres.grafana_url) as conn:
        count = conn.execute(
            "SELECT count(*) FROM jobs WHERE tenant_id = ANY(%s)", (list(two_tenants),)
        ).fetchone()
    assert count == (0,)


def test_the_grafana_role_cannot_write_even_in_a_read_write_transaction(grafana_of: str) -> None:
    statements = [
        "INSERT INTO jobs (tenant_id, job_id, job_type, status, progress_percent, created_at,"
        " last_report_at, updated_at) VALUES ('x', 'x', 'x', 'running', 0, now(), now(), now())",
        "UPDATE jobs SET progress_percent = 50",
        "DELETE FROM jobs",
        "TRUNCATE jobs",
        "CREATE TABLE grafana_was_here (id int)",
        "DELETE FROM grafana_tenants",
    ]
    with psycopg.connect(grafana_of, autocommit=True) as conn:
        with pytest.raises(pg.ReadOnlySqlTransaction):
            conn.execute("DELETE FROM jobs")
        # the read-only default is only the first fence (a session may lift it): the
        # grants are the second
        conn.execute("SET default_transaction_read_only = off")
        for statement in statements:
            with pytest.raises(pg.InsufficientPrivilege):
                conn.execute(statement)


def test_a_partition_is_not_readable_by_grafana_only_its_parent(
    stack: LocalStack, grafana_of: str
) -> None:
    with psycopg.connect(stack.postgres.url) as conn:
        row = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'service_status_changes' "
            "LIMIT 1"
        ).fetchone()
    assert row is not None
    with psycopg.connect(grafana_of) as conn:
        conn.execute("SELECT count(*) FROM service_status_changes")
        with pytest.raises(pg.InsufficientPrivilege):
            conn.execute(f'SELECT count(*) FROM "{row[0]}"')


def test_the_ingest_auth_role_reads_the_token_columns_and_nothing_else(stack: LocalStack) -> None:
    with psycopg.connect(stack.postgres.ingest_auth_dsn, autocommit=True) as conn:
        conn.execute("SELECT id, name, token_hash, tenants, role, revoked_at FROM api_tokens")
        for statement in (
            "SELECT * FROM api_tokens",
            "SELECT count(*) FROM jobs",
            "UPDATE api_tokens SET revoked_at = NULL",
        ):
            with pytest.raises(pg.InsufficientPrivilege):
                conn.execute(statement)


def test_the_processor_and_the_api_write_rows_but_not_the_schema(stack: LocalStack) -> None:
    for url in (stack.postgres.processor_url, stack.postgres.api_url):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT count(*) FROM jobs")
            for statement in (
                "CREATE TABLE intruder (id int)",
                "DROP TABLE jobs",
                "ALTER TABLE jobs DISABLE ROW LEVEL SECURITY",
                "TRUNCATE jobs",
            ):
                with pytest.raises(pg.InsufficientPrivilege):
                    conn.execute(statement)
    with (
        psycopg.connect(stack.postgres.processor_url, autocommit=True) as conn,
        pytest.raises(pg.InsufficientPrivilege),
    ):
        conn.execute("DELETE FROM api_tokens WHERE false")


def test_granting_tenants_to_a_role_outside_grafana_is_refused(stack: LocalStack) -> None:
    admin = stack.postgres.url_for(SYSTEM_USER, DATABASE)
    with pytest.raises(Exception, match="not a member of b2c_grafana"):
        grafana_roles.grant_tenants(admin, "b2c_api", ["t"], None)
    with pytest.raises(StorageRejected):
        grafana_roles.grant_tenants(stack.postgres.url, "b2c_grafana_nobody", ["t"], "pw")


def _test_home() -> Path:
    return Path(os.environ.get("B2C_TEST_HOME") or repo_root() / ".b2c-test").resolve()


def test_a_home_made_with_trust_is_upgraded_at_its_next_start() -> None:
    offset = int(os.environ.get("B2C_TEST_PORT_OFFSET", "1000")) + 377
    # beside the test stack's home: postgres cannot pass pytest's 0700 tmp folders
    home = _test_home().parent / f".b2c-old-home-{uuid.uuid4().hex[:8]}"
    layout = StackLayout(home=home, ports=Ports(offset))
    data = layout.data("postgres")
    data.mkdir(parents=True)
    grant_search_path(data, SYSTEM_USER, lambda _line: None)
    shutil.chown(data, SYSTEM_USER, SYSTEM_USER)
    data.chmod(0o700)
    # what the stack did before passwords
    subprocess.run(
        [
            *(str(_bin_dir() / "initdb"), "-D", str(data), "-U", SYSTEM_USER, "--auth=trust"),
            *("--encoding=UTF8", "--locale=C.UTF-8"),
        ],
        check=True,
        capture_output=True,
        user=SYSTEM_USER,
        cwd="/",
    )
    part = Postgres(layout, fast_unsafe=True)
    supervisor = Supervisor(layout, [part])
    try:
        supervisor.start(part, lambda _line: None)
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(_no_password(part, SYSTEM_USER), connect_timeout=5).close()
        migrate(part.url)
        with psycopg.connect(part.processor_url) as conn:
            assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (0,)
        assert (layout.data("stores") / "passwords.json").stat().st_mode & 0o777 == 0o600
    finally:
        supervisor.stop(part, lambda _line: None)
        shutil.rmtree(home, ignore_errors=True)


# --------------------------------------------------------------------------------------
# Elasticsearch


def test_elasticsearch_without_credentials_answers_401(stack: LocalStack) -> None:
    for path in ("/", "/_cluster/health", "/b2c-logs*/_search"):
        assert httpx.get(f"{stack.elasticsearch.url}{path}").status_code == 401


def test_the_readers_cannot_write_and_the_writer_cannot_read(stack: LocalStack) -> None:
    es = stack.elasticsearch
    index = f"b2c-logs-stores-{uuid.uuid4().hex[:8]}"
    doc = {"@timestamp": "2026-01-15T10:30:00Z", "Body": "x", "Attributes.tenant.id": "t"}
    user, password = es.collector_credentials
    writer = httpx.Client(auth=(user, password))
    try:
        created = writer.post(f"{es.url}/{index}/_create/1", json=doc)
        assert created.status_code == 201, created.text
        assert writer.get(f"{es.url}/{index}/_search").status_code == 403
        assert writer.put(f"{es.url}/{index}/_doc/1", json=doc).status_code == 403
        assert writer.delete(f"{es.url}/{index}").status_code == 403
        for url in (es.api_url, es.grafana_url):
            assert httpx.post(f"{url}/{index}/_doc", json=doc).status_code == 403
            assert httpx.delete(f"{url}/{index}/_doc/1").status_code == 403
            assert httpx.delete(f"{url}/{index}").status_code == 403
            assert httpx.get(f"{url}/{index}/_search").status_code == 200
    finally:
        writer.close()
        httpx.delete(f"{es.admin_url}/{index}")
