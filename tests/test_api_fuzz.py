"""The admin API fuzzed from its own OpenAPI document (Schemathesis), against a real API
process on the test stack, with an admin and a viewer token of a tenant of this
module's own.

Every operation of ``/openapi.json`` gets ``B2C_FUZZ_EXAMPLES`` generated requests
(default 5), valid and invalid ones, each sent once with each token, and once more with
the path's ids replaced by records that exist (a job, a service, an alert, a rule, ...
of the fuzz's tenant), so the answers of a found record (409, 202, 204) are reached
too. A response must not be a 5xx, its status code must be one the document lists for
the operation, its content type and body must match the document, and a request the
document calls valid must not be refused as invalid (400/422). Destructive operations
act within the fuzz's own tenant only (its tokens see nothing else); revoking the
fuzz's own tokens is the one thing it is kept from doing.

What the document says only in words (JSON Schema has no way to relate two parameters
or a value to the clock) the fuzz makes true of a valid request before it is sent:
``since`` before ``until``, an expiry or a window's end in the future, a cursor only as
a previous page handed it out (an opaque string; the fuzz has none, so it sends none).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg_pool
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi import checks as openapi_checks

from b2c_monitoring.api.app import create_app
from b2c_monitoring.auth import Role
from b2c_monitoring.contract import JobState
from b2c_monitoring.processors.jobs import JobReport
from b2c_monitoring.settings import load_settings
from b2c_monitoring.storage.jobs import JobStore
from b2c_monitoring.storage.tokens import TokenStore
from tests.firing_alerts import open_service_down
from tests.tokens import bearer

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("B2C_FUZZ_EXAMPLES", "5"))

CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.positive_data_acceptance,
]


class FuzzTokens:
    def __init__(self, pool: psycopg_pool.ConnectionPool, tenant: str) -> None:
        store = TokenStore(pool)
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


JOB_TYPE = "FUZZ_SYNC"


@pytest.fixture(scope="module")
def existing(
    api_url: str,
    pool: psycopg_pool.ConnectionPool,
    fuzz_tenant: str,
    fuzz_tokens: FuzzTokens,
    session: requests.Session,
) -> dict[str, str]:
    """A record of the fuzz's tenant for every path parameter, by the parameter's name."""
    now = datetime.now(UTC)
    admin = bearer(fuzz_tokens.secrets[Role.ADMIN.value])
    service = "fuzz-erp"

    def made(method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = session.request(method, f"{api_url}{path}", json=body, headers=admin)
        assert response.status_code in (200, 201, 202), response.text
        answer: dict[str, Any] = response.json()
        return answer

    made("PUT", f"/api/admin/services/{service}", {"type": "ERP", "tenantId": fuzz_tenant})
    job_id = f"j-fuzz-{uuid.uuid4().hex[:8]}"
    JobStore(pool).apply(
        [JobReport(fuzz_tenant, job_id, JobState.RUNNING, now, JOB_TYPE, service_name=service)],
        now,
    )
    command = made("POST", f"/api/admin/jobs/{job_id}/cancel", {})
    rule = made(
        "POST",
        "/api/admin/alert-rules",
        {"name": "fuzz", "tenantId": fuzz_tenant, "condition": {"kind": "job_failed"}},
    )
    channel = made(
        "POST",
        "/api/admin/notification-channels",
        {
            "name": "fuzz",
            "tenantId": fuzz_tenant,
            "kind": "webhook",
            "url": "http://127.0.0.1:9/hook",
        },
    )
    window = made(
        "POST",
        "/api/admin/maintenance-windows",
        {
            "tenantId": fuzz_tenant,
            "serviceName": service,
            "endsAt": (now + timedelta(days=1)).isoformat(),
        },
    )
    made(
        "PUT",
        f"/api/admin/job-schedules/{JOB_TYPE}",
        {"tenantId": fuzz_tenant, "cron": "0 2 * * *"},
    )
    alert = open_service_down(pool, fuzz_tenant, service, now)
    token, _secret = TokenStore(pool).create("fuzz-other", Role.VIEWER, [fuzz_tenant], now)
    return {
        "id": service,
        "name": service,
        "job_id": job_id,
        "job_type": JOB_TYPE,
        "command_id": str(command["id"]),
        "rule_id": str(rule["id"]),
        "channel_id": str(channel["id"]),
        "window_id": str(window["id"]),
        "alert_id": alert.id,
        "token_id": token.id,
    }


def _iso(text: object) -> datetime | None:
    try:
        at = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def _as_the_document_says(case: schemathesis.Case[Any], now: datetime) -> None:
    """Make a case true to what the document says in words (module docstring).

    Every case, not only the valid ones: a case's validity is judged again after the
    path's ids are replaced, and nothing here makes an invalid value valid."""
    query = case.query or {}
    query.pop("cursor", None)
    since, until = _iso(query.get("since")), _iso(query.get("until"))
    if since is not None and since >= (until or now):
        if until is not None and until < since:
            query["since"], query["until"] = query["until"], query["since"]
        else:
            del query["since"]
    body = case.body
    if isinstance(body, dict):
        later = (now + timedelta(days=1)).isoformat()
        if (expires := _iso(body.get("expiresAt"))) is not None and expires <= now:
            body["expiresAt"] = later
        if "endsAt" in body:
            starts = _iso(body.get("startsAt"))
            ends = _iso(body.get("endsAt"))
            if starts is not None and starts >= now + timedelta(days=365):
                body["startsAt"] = None
                starts = None
            if ends is None or ends <= max(starts or now, now):
                body["endsAt"] = (max(starts or now, now) + timedelta(days=1)).isoformat()


def _document() -> dict[str, Any]:
    """The document of the checkout's API, built in process: the operations must be known
    when pytest collects, before the stack runs. ``test_the_api_serves_this_document``
    holds it to what the running API serves."""
    app = create_app(load_settings())
    return app.openapi()


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)
# A NUL in any string is refused at the edge (api/storable_text.py, a 422 the document
# lists on every operation, pinned by test_api_edge.py); the document says so in its
# description rather than in a pattern on each of its hundreds of strings
schema.config.generation.update(allow_x00=False)


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
    existing: dict[str, str],
    session: requests.Session,
) -> None:
    own_token = str((case.path_parameters or {}).get("token_id")) in fuzz_tokens.ids
    if case.method == "DELETE" and case.path == "/api/admin/tokens/{token_id}" and own_token:
        return
    generated = dict(case.path_parameters or {})
    found = {name: existing.get(name, value) for name, value in generated.items()}
    for path_parameters in [generated] + ([found] if found != generated else []):
        # an invalid id made valid makes the whole case valid: set the ids first
        case.path_parameters = path_parameters
        _as_the_document_says(case, datetime.now(UTC))
        for secret in fuzz_tokens.secrets.values():
            case.call_and_validate(
                base_url=api_url,
                session=session,
                headers=bearer(secret),
                checks=CHECKS,
                timeout=30,
            )
