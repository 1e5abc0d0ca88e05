"""An admin API process of a test module's own, from the checkout, on a free port.

A test stack kept running between sessions (B2C_TEST_KEEP_STACK=1) may serve an API
of older code, so modules that test new routes start their own against the stack's
Postgres and Elasticsearch.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from b2c_monitoring.stack.local import LocalStack


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def api_process(
    stack: LocalStack, log: Path, *, port: int | None = None, **env: str
) -> Iterator[str]:
    """Run ``b2c serve api`` until the block ends; yields its base URL. ``env``
    overrides the stack's settings (e.g. ``B2C_ELASTICSEARCH_URL``); ``port`` lets a
    test start a stopped API again at the same address."""
    url = f"http://127.0.0.1:{port or free_port()}"
    full_env = {**os.environ, **stack.api.base_env(), "B2C_API_URL": url, **env}
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "b2c_monitoring", "serve", "api"],
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def cli(
    api_url: str, secret: str, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``b2c ARGS`` against ``api_url`` with ``secret``, without colour, wide."""
    return subprocess.run(
        [sys.executable, "-m", "b2c_monitoring", *args],
        env=cli_env(api_url, secret),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli_env(api_url: str, secret: str) -> dict[str, str]:
    return {
        **os.environ,
        "B2C_API_URL": api_url,
        "B2C_TOKEN": secret,
        "NO_COLOR": "1",
        "COLUMNS": "250",
    }
