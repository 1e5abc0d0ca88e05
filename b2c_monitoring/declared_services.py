"""Services declared in configuration (``B2C_SERVICES_FILE``), TOML or JSON.

TOML::

    [[service]]
    name = "enventa-erp"
    tenant = "acme"                 # optional: the default tenant
    type = "ERP"                    # ERP PIM CRM Database Other
    endpoint = "https://erp.acme.example"
    [service.check]
    kind = "http"                   # http tcp postgres
    target = "https://erp.acme.example/health"
    timeout_s = 5
    expect_status = 200
    degraded_after_s = 1.5

JSON: ``{"service": [{...the same keys...}]}``. A file that does not parse or breaks a
rule is a ``ConfigError`` at start, naming the service.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from b2c_monitoring.checks import CheckSpec
from b2c_monitoring.errors import ConfigError
from b2c_monitoring.processors.services import DeclaredCheck, ServiceType

_TYPES = {t.value: t for t in ServiceType}


@dataclass(frozen=True)
class DeclaredService:
    tenant_id: str
    name: str
    service_type: ServiceType
    endpoint: str | None
    check: DeclaredCheck | None


def _check(raw: Any, where: str) -> DeclaredCheck | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: check must be a table")
    try:
        spec = CheckSpec(**raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: invalid check: {exc}") from exc
    return DeclaredCheck(
        kind=spec.kind,
        target=spec.target,
        timeout_s=spec.timeout_s,
        expect_status=spec.expect_status,
        degraded_after_s=spec.degraded_after_s,
    )


def parse(data: dict[str, Any], default_tenant: str) -> list[DeclaredService]:
    entries = data.get("service", [])
    if not isinstance(entries, list):
        raise ConfigError("'service' must be a list of tables")
    found: list[DeclaredService] = []
    seen: set[tuple[str, str]] = set()
    for index, entry in enumerate(entries):
        where = f"service #{index + 1}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a table")
        name = entry.get("name")
        if not isinstance(name, str) or not 1 <= len(name.strip()) <= 128:
            raise ConfigError(f"{where}: name must be 1 to 128 characters")
        where = f"service {name!r}"
        tenant = entry.get("tenant", default_tenant)
        raw_type = entry.get("type", "Other")
        service_type = _TYPES.get(raw_type)
        if service_type is None:
            raise ConfigError(f"{where}: type {raw_type!r} is not one of {', '.join(_TYPES)}")
        endpoint = entry.get("endpoint")
        if endpoint is not None and not isinstance(endpoint, str):
            raise ConfigError(f"{where}: endpoint must be a string")
        if (tenant, name) in seen:
            raise ConfigError(f"{where} is declared twice in tenant {tenant!r}")
        seen.add((tenant, name))
        unknown = set(entry) - {"name", "tenant", "type", "endpoint", "check"}
        if unknown:
            raise ConfigError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
        found.append(
            DeclaredService(tenant, name, service_type, endpoint, _check(entry.get("check"), where))
        )
    return found


def load(path: Path, default_tenant: str) -> list[DeclaredService]:
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise ConfigError(f"cannot read the declared services in {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table with a 'service' list")
    return parse(data, default_tenant)
