"""Shared fixtures. Integration tests run against the real local stack.

The test stack lives in its own home (``B2C_TEST_HOME``, default ``.b2c-test`` in the
checkout) with every port shifted by ``B2C_TEST_PORT_OFFSET`` (default 1000), so it
runs beside a demo stack. It is started once per session if it is not running, and
stopped at the end only if this session started it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import psycopg
import psycopg_pool
import pytest

from b2c_monitoring.stack.base import Ports, StackLayout, repo_root
from b2c_monitoring.stack.postgres import ROLE, Postgres
from b2c_monitoring.stack.supervisor import Supervisor
from b2c_monitoring.storage.db import make_pool
from b2c_monitoring.storage.migrations import migrate

if TYPE_CHECKING:
    from b2c_monitoring.stack.local import LocalStack


def _say(line: str) -> None:
    print(f"[stack] {line}", flush=True)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read the developer's own settings or tokens."""
    for key in list(os.environ):
        # B2C_SCREENSHOTS_DIR is where the browser tests save theirs, not a setting
        kept = ("B2C_TEST_", "B2C_CACHE_DIR", "B2C_SCREENSHOTS_DIR")
        if key.startswith(("B2C_", "OTEL_")) and not key.startswith(kept):
            monkeypatch.delenv(key, raising=False)


def _test_layout() -> StackLayout:
    home = Path(os.environ.get("B2C_TEST_HOME") or repo_root() / ".b2c-test").resolve()
    return StackLayout(home=home, ports=Ports(int(os.environ.get("B2C_TEST_PORT_OFFSET", "1000"))))


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """Only Postgres of the test stack, for storage tests that need nothing else."""
    layout = _test_layout()
    pg = Postgres(layout, fast_unsafe=True)
    supervisor = Supervisor(layout, [pg])
    started_here = supervisor.pid(pg) is None
    supervisor.start(pg, _say)
    pg.ensure_setup(_say)  # roles and passwords, also when it was running already
    yield pg
    if started_here and os.environ.get("B2C_TEST_KEEP_STACK") != "1":
        supervisor.stop(pg, _say)


@pytest.fixture(scope="session")
def stack(postgres: Postgres) -> Iterator[LocalStack]:
    from b2c_monitoring.stack.local import LocalStack

    local = LocalStack(_test_layout(), fast_unsafe=True)
    started_here = not all(s.healthy for s in local.supervisor.status())
    local.up(_say)
    yield local
    if started_here and os.environ.get("B2C_TEST_KEEP_STACK") != "1":
        local.down(_say)


@pytest.fixture(scope="session")
def template_db(postgres: Postgres) -> str:
    """A migrated database that each storage test copies (CREATE DATABASE ... TEMPLATE)."""
    name = "b2c_test_template"
    with psycopg.connect(postgres.admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}" OWNER b2c')
    migrate(_url(postgres, name))
    return name


def _url(postgres: Postgres, database: str) -> str:
    return postgres.url_for(ROLE, database)


@pytest.fixture
def fresh_db(postgres: Postgres, template_db: str) -> Iterator[str]:
    """A database of this test's own, migrated, dropped afterwards: per-test isolation."""
    name = f"b2c_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres.admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}" OWNER b2c')
    try:
        yield _url(postgres, name)
    finally:
        with psycopg.connect(postgres.admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def tenant() -> str:
    """A tenant of this test's own: end-to-end tests share the stack's database."""
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def pool(
    stack: LocalStack, request: pytest.FixtureRequest
) -> Iterator[psycopg_pool.ConnectionPool]:
    """A small pool on the stack's database, named after the test module. Storage tests
    override it with one on their ``fresh_db``."""
    p = make_pool(stack.postgres.url, max_size=2, name=request.module.__name__.split(".")[-1])
    p.open(wait=True)
    yield p
    p.close()


@pytest.fixture(scope="module")
def api_url(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An API process of the test module's own, from the checkout (``tests/api_process.py``
    says why). A module that tests the stack's own API overrides it with that URL."""
    from tests.api_process import api_process

    with api_process(stack, tmp_path_factory.mktemp("api") / "api.log") as url:
        yield url


@pytest.fixture
def api(api_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_url, timeout=30) as client:
        yield client
