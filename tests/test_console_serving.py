"""The console is served by the API from its own origin: the app's files, the index for
any route of the app, never a file outside the build, and the caller's own identity."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import psycopg_pool
import pytest

from b2c_monitoring.api.routes.console import console_file
from b2c_monitoring.auth import Role
from b2c_monitoring.errors import NotFound
from tests.tokens import bearer, token


@pytest.fixture
def build(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<html></html>")
    (tmp_path / "assets" / "index-abc123.js").write_text("console.log(1)")
    (tmp_path / "favicon.svg").write_text("<svg/>")
    (tmp_path.parent / "secret.txt").write_text("not served")
    return tmp_path


def test_an_asset_is_served_as_immutable_and_a_route_of_the_app_gets_the_index(
    build: Path,
) -> None:
    assert console_file(build, "assets/index-abc123.js") == (
        build / "assets" / "index-abc123.js",
        True,
    )
    assert console_file(build, "favicon.svg") == (build / "favicon.svg", False)
    for route in ("", "jobs", "jobs/erp-42", "services/x/y", "assets/gone.js"):
        assert console_file(build, route) == (build / "index.html", False)


def test_no_path_reaches_outside_the_build(build: Path) -> None:
    for escape in ("../secret.txt", "assets/../../secret.txt", str(build.parent / "secret.txt")):
        assert console_file(build, escape) == (build / "index.html", False)


def test_an_unbuilt_console_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="b2c stack install"):
        console_file(tmp_path, "")


@pytest.mark.integration
def test_the_api_serves_the_built_console_with_its_policy_headers(api: httpx.Client) -> None:
    index = api.get("/console/")
    assert index.status_code == 200
    assert index.headers["content-type"].startswith("text/html")
    assert index.headers["cache-control"] == "no-cache"
    policy = index.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert index.headers["referrer-policy"] == "no-referrer"
    assert api.get("/console/jobs/some-job").text == index.text
    assert api.get("/console").status_code in (307, 308)
    script = re.search(r'src="(/console/assets/[^"]+\.js)"', index.text)
    assert script, index.text
    asset = api.get(script.group(1))
    assert asset.status_code == 200
    assert "immutable" in asset.headers["cache-control"]
    assert "javascript" in asset.headers["content-type"]


@pytest.mark.integration
def test_me_answers_the_callers_role_and_tenants_and_refuses_probe_tokens(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    secret = token(pool, Role.OPERATOR, [tenant], name="console-me")
    me = api.get("/api/admin/me", headers=bearer(secret))
    assert me.status_code == 200, me.text
    body = me.json()
    assert (body["name"], body["role"], body["tenants"]) == ("console-me", "operator", [tenant])
    assert body["tokenId"]
    assert api.get("/api/admin/me").status_code == 401
    probe = api.get("/api/admin/me", headers=bearer(token(pool, Role.PROBE, [tenant])))
    assert probe.status_code == 403
    assert probe.headers["content-type"].startswith("application/problem+json")


def test_the_api_log_never_holds_a_hub_token() -> None:
    import logging

    from b2c_monitoring.cli.serve import _RedactTokens

    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:1", "/hubs/job-status?id=abc&access_token=b2c_s3cret"),
        None,
    )
    assert _RedactTokens().filter(record)
    assert "b2c_s3cret" not in record.getMessage()
    assert "access_token=[REDACTED]" in record.getMessage()
