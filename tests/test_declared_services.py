"""Services declared in configuration (B2C_SERVICES_FILE)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg_pool
import pytest

from b2c_monitoring.declared_services import load
from b2c_monitoring.errors import ConfigError
from b2c_monitoring.processor.process import declare_from_file
from b2c_monitoring.processors.services import DeclaredCheck, ServiceStatus, ServiceType
from b2c_monitoring.settings import load_settings
from b2c_monitoring.storage.db import make_pool
from b2c_monitoring.storage.metrics import policy_from
from b2c_monitoring.storage.services import ServiceQuery, ServiceStore

TOML = """
[[service]]
name = "enventa-erp"
tenant = "acme"
type = "ERP"
endpoint = "https://erp.acme.example"
[service.check]
kind = "http"
target = "https://erp.acme.example/health"
expect_status = 200
degraded_after_s = 1.5

[[service]]
name = "crm-db"
type = "Database"
[service.check]
kind = "postgres"
target = "postgresql://crm@db.local/crm"
"""


def test_a_toml_file_declares_services_with_their_checks(tmp_path: Path) -> None:
    path = tmp_path / "services.toml"
    path.write_text(TOML)
    erp, crm = load(path, "default")
    assert (erp.tenant_id, erp.name, erp.service_type, erp.endpoint) == (
        "acme",
        "enventa-erp",
        ServiceType.ERP,
        "https://erp.acme.example",
    )
    assert erp.check == DeclaredCheck("http", "https://erp.acme.example/health", 5.0, 200, 1.5)
    assert (crm.tenant_id, crm.service_type) == ("default", ServiceType.DATABASE)


def test_a_json_file_works_the_same(tmp_path: Path) -> None:
    path = tmp_path / "services.json"
    path.write_text(json.dumps({"service": [{"name": "pim", "type": "PIM"}]}))
    [pim] = load(path, "default")
    assert (pim.name, pim.service_type, pim.check) == ("pim", ServiceType.PIM, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[service]]\nname = "x"\ntype = "Mainframe"', "type 'Mainframe'"),
        ('[[service]]\nname = "x"\n[service.check]\nkind = "ftp"\ntarget = "x"', "invalid check"),
        ('[[service]]\nname = "x"\nport = 1', "unknown keys port"),
        ('[[service]]\nname = "x"\n[[service]]\nname = "x"', "declared twice"),
        ("[[service]]\ntype = 'ERP'", "name must be"),
        ("not toml at all [", "cannot read"),
    ],
)
def test_a_broken_file_fails_at_start_and_says_why(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "services.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load(path, "default")


@pytest.fixture
def pool(fresh_db: str) -> Iterator[psycopg_pool.ConnectionPool]:
    p = make_pool(fresh_db, max_size=2, name="test")
    p.open(wait=True)
    yield p
    p.close()


@pytest.mark.integration
def test_the_processor_declares_the_files_services_idempotently(
    tmp_path: Path, fresh_db: str, pool: psycopg_pool.ConnectionPool
) -> None:
    path = tmp_path / "services.toml"
    path.write_text(TOML)
    settings = load_settings(database_url=fresh_db, services_file=path)
    declare_from_file(settings, pool)
    declare_from_file(settings, pool)
    policy = policy_from(settings)
    store = ServiceStore(pool, policy.damping, policy.retention)
    [erp] = store.find("enventa-erp", ["acme"])
    assert (erp.declared, erp.status, erp.check is not None) == (True, ServiceStatus.UNKNOWN, True)
    assert [s.name for s in store.select(ServiceQuery())] == ["enventa-erp", "crm-db"]
