"""What the CLI says when the admin API cannot be reached or something else answers:
every httpx error becomes a domain error that says what to do next, and a command
ends with a message, not a traceback. Real sockets on loopback, no API needed."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from types import TracebackType

import pytest

from b2c_monitoring.cli.client import ApiClient
from b2c_monitoring.errors import (
    ApiError,
    ApiGarbled,
    ApiTimeout,
    ApiUnreachable,
    ConfigError,
)
from tests.api_process import cli_env
from tests.http_stub import SilentListener, closed_port


class CannedServer:
    """Answers every connection with the same bytes, then closes it."""

    def __init__(self, answer: bytes) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._answer = answer
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    conn.sendall(self._answer)
                except OSError:
                    pass

    def __enter__(self) -> CannedServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._sock.close()


def http(status: str, content_type: str, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"Connection: close\r\n\r\n" + body


HTML = b"<html><body>the console</body></html>"


@pytest.fixture
def garbage() -> Iterator[CannedServer]:
    with CannedServer(b"\x00\x01 this is no HTTP at all \xff\r\n\r\n") as server:
        yield server


def test_a_closed_port_is_unreachable_and_says_how_to_check() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    with ApiClient(url, "t") as api, pytest.raises(ApiUnreachable) as caught:
        api.get_job("j-1")
    assert f"cannot reach the admin API at {url}" in caught.value.message
    assert "b2c stack status" in caught.value.message


def test_a_server_that_never_answers_is_a_timeout_naming_the_time() -> None:
    with SilentListener() as silent:
        api = ApiClient(f"http://127.0.0.1:{silent.port}", "t", timeout=0.5)
        with api, pytest.raises(ApiTimeout) as caught:
            api.get_job("j-1")
    assert "did not answer within 0.5 s" in caught.value.message
    assert "try again" in caught.value.message


def test_bytes_that_are_not_http_are_garbled_and_point_at_the_url(garbage: CannedServer) -> None:
    with ApiClient(garbage.url, "t") as api, pytest.raises(ApiGarbled) as caught:
        api.get_job("j-1")
    assert "does not speak the admin API's HTTP" in caught.value.message
    assert caught.value.hint is not None
    assert "B2C_API_URL" in caught.value.hint


def test_a_success_that_is_not_json_is_garbled_not_none() -> None:
    with (
        CannedServer(http("200 OK", "text/html", HTML)) as server,
        ApiClient(server.url, "t") as api,
        pytest.raises(ApiGarbled) as caught,
    ):
        api.list_jobs()
    assert "200 and text/html, not the admin API's JSON" in caught.value.message
    assert caught.value.status == 200


def test_an_error_that_is_no_problem_document_keeps_its_status_and_text() -> None:
    with (
        CannedServer(http("502 Bad Gateway", "text/html", b"upstream down")) as server,
        ApiClient(server.url, "t") as api,
        pytest.raises(ApiError) as caught,
    ):
        api.list_jobs()
    assert type(caught.value) is ApiError
    assert (caught.value.status, caught.value.message) == (502, "502 upstream down")


def test_a_download_from_a_garbling_server_is_garbled(garbage: CannedServer) -> None:
    out = io.BytesIO()
    with ApiClient(garbage.url, "t") as api, pytest.raises(ApiGarbled):
        api.download("/api/admin/services/s/support-bundle", {}, out)
    assert out.getvalue() == b""


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:21", "127.0.0.1:9000"])
def test_a_url_that_is_not_http_is_a_config_error(url: str) -> None:
    with ApiClient(url, "t") as api, pytest.raises(ConfigError) as caught:
        api.list_jobs()
    assert "B2C_API_URL" in caught.value.message


def test_the_command_ends_with_the_message_and_exit_1_not_a_traceback(
    garbage: CannedServer,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "b2c_monitoring", "jobs", "list"],
        env=cli_env(garbage.url, "t"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "does not speak the admin API's HTTP" in done.stderr
    assert "B2C_API_URL" in done.stderr


def test_an_unreachable_api_still_ends_with_exit_3() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "b2c_monitoring", "jobs", "list"],
        env=cli_env(f"http://127.0.0.1:{closed_port()}", "t"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3
    assert "cannot reach the admin API" in done.stderr
