"""Connection checks against real targets: a local HTTP server that can be slowed or
stopped, open and closed ports, a listener that never answers, the test stack's
Postgres."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from b2c_monitoring.checks import CheckResult, CheckSpec, run_check, server_address
from b2c_monitoring.stack.postgres import Postgres
from tests.http_stub import SilentListener, StubServer, closed_port


@pytest.fixture
def server() -> Iterator[StubServer]:
    with StubServer() as stub:
        yield stub


def timed(spec: CheckSpec) -> tuple[CheckResult, float]:
    started = time.monotonic()
    result = run_check(spec)
    return result, time.monotonic() - started


# http


def test_an_answering_http_service_is_up_with_its_latency(server: StubServer) -> None:
    result = run_check(CheckSpec("http", server.url))
    assert result.status == "up"
    assert result.error is None
    assert result.latency_s is not None
    assert 0 < result.latency_s < 1


@pytest.mark.parametrize(
    ("status", "expected"), [(200, "up"), (302, "up"), (404, "down"), (503, "down")]
)
def test_by_default_any_2xx_or_3xx_is_up_and_redirects_are_not_followed(
    server: StubServer, status: int, expected: str
) -> None:
    server.status = status
    result = run_check(CheckSpec("http", server.url))
    assert result.status == expected
    assert server.requests == 1
    if expected == "down":
        assert result.error == f"HTTP {status}, expected 2xx or 3xx"
        assert result.latency_s is not None  # it answered, just not as expected


def test_an_unexpected_status_is_down_and_the_expected_one_up(server: StubServer) -> None:
    server.status = 204
    assert run_check(CheckSpec("http", server.url, expect_status=204)).status == "up"
    result = run_check(CheckSpec("http", server.url, expect_status=200))
    assert (result.status, result.error) == ("down", "HTTP 204, expected 200")


def test_a_slow_answer_is_degraded(server: StubServer) -> None:
    server.delay_s = 0.3
    result = run_check(CheckSpec("http", server.url, degraded_after_s=0.1))
    assert result.status == "degraded"
    assert result.latency_s is not None
    assert result.latency_s >= 0.3
    assert result.error is None
    assert run_check(CheckSpec("http", server.url, degraded_after_s=2.0)).status == "up"


def test_no_answer_within_the_timeout_is_down_without_latency(server: StubServer) -> None:
    server.delay_s = 3.0
    result, took = timed(CheckSpec("http", server.url, timeout_s=0.3))
    assert result == CheckResult("down", None, "no answer within 0.3 s")
    assert took < 1.5


def test_a_stopped_server_is_down(server: StubServer) -> None:
    assert run_check(CheckSpec("http", server.url)).status == "up"
    server.stop()
    result = run_check(CheckSpec("http", server.url, timeout_s=1))
    assert result.status == "down"
    assert result.latency_s is None
    assert result.error is not None
    assert "refused" in result.error.lower()


def test_credentials_in_the_target_never_reach_the_error() -> None:
    url = f"http://admin:hunter2@127.0.0.1:{closed_port()}/health?token=s3cr3t"
    result = run_check(CheckSpec("http", url, timeout_s=1))
    assert result.status == "down"
    assert result.error is not None
    assert "hunter2" not in result.error
    assert "s3cr3t" not in result.error
    assert server_address(CheckSpec("http", url)) == "127.0.0.1"


def test_a_target_that_is_not_an_http_url_is_down_not_an_exception() -> None:
    result = run_check(CheckSpec("http", "ftp://files.example/x"))
    assert result.status == "down"
    assert result.error == "not an http(s) URL: ftp://files.example/x"


# tcp


def test_tcp_connect_to_a_listening_port_is_up_and_to_a_closed_one_down(
    server: StubServer,
) -> None:
    up = run_check(CheckSpec("tcp", f"127.0.0.1:{server.port}"))
    assert up.status == "up"
    assert up.latency_s is not None
    port = closed_port()
    down = run_check(CheckSpec("tcp", f"127.0.0.1:{port}", timeout_s=1))
    assert down == CheckResult("down", None, f"127.0.0.1:{port}: Connection refused")


@pytest.mark.parametrize("target", ["no-port", "host:notaport", ":5432"])
def test_a_malformed_tcp_target_is_down_not_an_exception(target: str) -> None:
    result = run_check(CheckSpec("tcp", target))
    assert result.status == "down"
    assert result.error is not None


def test_tcp_targets_name_their_host() -> None:
    assert server_address(CheckSpec("tcp", "erp.internal:8443")) == "erp.internal"
    assert server_address(CheckSpec("tcp", "[::1]:5432")) == "::1"


# postgres


@pytest.mark.integration
def test_postgres_select_1_is_up(postgres: Postgres) -> None:
    result = run_check(CheckSpec("postgres", postgres.url))
    assert result.status == "up"
    assert result.latency_s is not None
    assert result.error is None


@pytest.mark.integration
def test_postgres_key_value_conninfo_works_too(postgres: Postgres) -> None:
    password = postgres.secrets.password("b2c")
    conninfo = f"host=127.0.0.1 port={postgres.port} user=b2c password={password} dbname=b2c"
    assert run_check(CheckSpec("postgres", conninfo)).status == "up"
    assert server_address(CheckSpec("postgres", conninfo)) == "127.0.0.1"


@pytest.mark.integration
def test_a_missing_database_is_down_with_the_servers_reason(postgres: Postgres) -> None:
    url = postgres.url_for("b2c", "no_such_database")
    result = run_check(CheckSpec("postgres", url))
    assert result.status == "down"
    assert result.error is not None
    assert 'database "no_such_database" does not exist' in result.error


def test_postgres_on_a_closed_port_is_down_and_the_password_stays_secret() -> None:
    url = f"postgresql://b2c:hunter2@127.0.0.1:{closed_port()}/b2c"
    result, took = timed(CheckSpec("postgres", url, timeout_s=1))
    assert result.status == "down"
    assert result.latency_s is None
    assert result.error is not None
    assert "hunter2" not in result.error
    assert took < 1.5


def test_a_frozen_postgres_is_down_within_the_timeout() -> None:
    """libpq waits 2 s at least; the check answers after its own timeout."""
    with SilentListener() as frozen:
        spec = CheckSpec("postgres", f"postgresql://b2c@127.0.0.1:{frozen.port}/b2c", timeout_s=0.4)
        result, took = timed(spec)
    assert result == CheckResult("down", None, "no answer within 0.4 s")
    assert took < 1.0


def test_a_frozen_tcp_server_still_accepts_so_tcp_is_up_but_http_times_out() -> None:
    with SilentListener() as frozen:
        assert run_check(CheckSpec("tcp", f"127.0.0.1:{frozen.port}")).status == "up"
        result, took = timed(CheckSpec("http", f"http://127.0.0.1:{frozen.port}/", timeout_s=0.3))
    assert result == CheckResult("down", None, "no answer within 0.3 s")
    assert took < 1.0


# the spec itself


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "ftp", "target": "x"},
        {"kind": "http", "target": " "},
        {"kind": "http", "target": "http://x", "timeout_s": 0},
        {"kind": "http", "target": "http://x", "expect_status": 42},
        {"kind": "http", "target": "http://x", "degraded_after_s": -1},
    ],
)
def test_a_spec_that_cannot_work_is_refused_at_once(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case names a different field
        CheckSpec(**kwargs)  # type: ignore[arg-type]
