"""The admin API fuzzed from its own OpenAPI document (Schemathesis), against a real API
process on the test stack, with an admin and a viewer token of a tenant of this
module's own.

Every operation of ``/openapi.json`` gets ``B2C_FUZZ_EXAMPLES`` generated requests
(default 5: about 2.5 minutes on two shared cores), valid and invalid ones, each sent once with each token. A response must
not be a 5xx, its status code must be one the document lists for the operation, its
content type and body must match the document, and a request the document calls valid
must not be refused as invalid (400/422). Destructive operations act within the fuzz's
own tenant only (its tokens see nothing else); revoking the fuzz's own tokens is the
one thing it is kept from doing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg_pool
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi import checks as openapi_checks

from b2c_monitoring.api.app import create_app
from b2c_monitoring.auth import Role
from b2c_monitoring.settings import load_settings
from b2c_monitoring.storage.tokens import TokenStore
from tests.tokens import bearer

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("B2C_FUZZ_EXAMPLES", "5"))

CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
]


class FuzzTokens:
    def __init__(self, pool: psycopg_pool.ConnectionPool, tenant: str) -> None:
        store = TokenStore(pool)
        from datetime import UTC, datetime

        now = datetime.now(UTC)
        self.ids: set[str] = set()
        self.secrets: dict[str, str] = {}
        for role in (Role.ADMIN, Role.VIEWER):
            record, secret = store.create(f"fuzz-{role.value}", role, [tenant], now)
            self.ids.add(record.id)
            self.secrets[role.value] = secret


@pytest.fixture(scope="module")
def fuzz_tenant() -> str:
    return f"t-fuzz-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def fuzz_tokens(pool: psycopg_pool.ConnectionPool, fuzz_tenant: str) -> FuzzTokens:
    return FuzzTokens(pool, fuzz_tenant)


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def _document() -> dict[str, Any]:
    """The document of the checkout's API, built in process: the operations must be known
    when pytest collects, before the stack runs. ``test_the_api_serves_this_document``
    holds it to what the running API serves."""
    app = create_app(load_settings())
    return app.openapi()


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_the_api_serves_this_document(api_url: str, session: requests.Session) -> None:
    served = session.get(f"{api_url}/openapi.json", timeout=30)
    assert served.status_code == 200
    assert served.json() == DOCUMENT


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_operation_answers_as_documented(
    case: schemathesis.Case[Any],
    api_url: str,
    fuzz_tokens: FuzzTokens,
    session: requests.Session,
) -> None:
    own_token = str((case.path_parameters or {}).get("token_id")) in fuzz_tokens.ids
    if case.method == "DELETE" and case.path == "/api/admin/tokens/{token_id}" and own_token:
        return
    for secret in fuzz_tokens.secrets.values():
        case.call_and_validate(
            base_url=api_url,
            session=session,
            headers=bearer(secret),
            checks=CHECKS,
            timeout=30,
        )
