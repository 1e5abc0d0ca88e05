"""Connection checks of connected services: HTTP(S), TCP connect, PostgreSQL ``SELECT 1``.

Shared by the probes (``Probes.watch_service``, on a schedule inside a service) and by
the monitoring service's central connection test. ``run_check`` never raises for a
failing target: a target that refuses, times out or answers wrongly is a ``down``
result with the reason in ``error``, secrets redacted.

``latency_s`` is the time until the target answered (HTTP: the response headers; TCP:
the connection; PostgreSQL: connect and ``SELECT 1``). A target that never answered
has no latency: counting a timeout as a latency would make a dead service look slow
in the averages.
"""

from __future__ import annotations

import math
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import urlsplit

import httpx

from b2c_monitoring.redaction import redact

CheckKind = Literal["http", "tcp", "postgres"]
CheckStatus = Literal["up", "degraded", "down"]

_KINDS: Final = frozenset({"http", "tcp", "postgres"})
# an error message is a diagnosis, not a dump: enough for a stack trace's last line
MAX_ERROR_CHARS: Final = 1024
_APPLICATION_NAME: Final = "b2c-monitoring-check"
POSTGRES_EXTRA: Final = "b2c-monitoring[postgres]"


@dataclass(frozen=True)
class CheckSpec:
    """What to check and how long to wait: ``target`` is a URL for ``http``,
    ``host:port`` for ``tcp``, a libpq conninfo (URL or ``key=value``) for ``postgres``."""

    kind: CheckKind
    target: str
    timeout_s: float = 5.0
    expect_status: int | None = None  # http: the expected status (default: any 2xx/3xx)
    degraded_after_s: float | None = None  # up but slower than this: degraded

    def __post_init__(self) -> None:
        # argument errors are the caller's bug: surface them here, not as a "down" later
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {sorted(_KINDS)}, got {self.kind!r}")
        if not isinstance(self.target, str) or not self.target.strip():
            raise ValueError("target is empty")
        if not (self.timeout_s > 0 and math.isfinite(self.timeout_s)):
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s!r}")
        if self.degraded_after_s is not None and not self.degraded_after_s >= 0:
            raise ValueError(f"degraded_after_s must be >= 0, got {self.degraded_after_s!r}")
        if self.expect_status is not None and not 100 <= self.expect_status <= 599:
            raise ValueError(f"expect_status must be an HTTP status, got {self.expect_status!r}")


@dataclass(frozen=True)
class CheckResult:
    status: CheckStatus
    latency_s: float | None
    error: str | None  # what went wrong, secrets redacted

    @property
    def up(self) -> bool:
        """Up or degraded: the target answered as expected."""
        return self.status != "down"


def answered(latency_s: float, degraded_after_s: float | None) -> CheckResult:
    """The result of a target that answered as expected within ``latency_s``."""
    slow = degraded_after_s is not None and latency_s > degraded_after_s
    return CheckResult(status="degraded" if slow else "up", latency_s=latency_s, error=None)


def failed(error: str, latency_s: float | None = None) -> CheckResult:
    text = redact(error.strip() or "check failed")
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 1] + "…"
    return CheckResult(status="down", latency_s=latency_s, error=text)


def describe_error(exc: BaseException) -> str:
    """A short, stable text for what went wrong (without secrets once redacted)."""
    message = str(exc).strip()
    kind = type(exc).__name__
    return f"{kind}: {message}" if message else kind


def server_address(spec: CheckSpec) -> str | None:
    """The host a check talks to (``server.address``), without credentials or port."""
    try:
        if spec.kind == "http":
            return urlsplit(spec.target).hostname
        if spec.kind == "tcp":
            return _host_port(spec.target)[0]
        return _postgres_host(spec.target)
    except ValueError:
        return None


def _postgres_host(target: str) -> str | None:
    try:
        # psycopg only where Postgres is checked: the probes install without it
        import psycopg
    except ImportError:
        return urlsplit(target).hostname if "://" in target else None
    try:
        host = psycopg.conninfo.conninfo_to_dict(target).get("host")
    except psycopg.Error:
        return None
    return str(host) if host else None


def run_check(spec: CheckSpec) -> CheckResult:
    """Check ``spec``'s target once; never raises for a failing target."""
    try:
        return _RUNNERS[spec.kind](spec)
    except Exception as exc:
        # the edge of a check: whatever the target or a library did, it is a result
        return failed(describe_error(exc))


# http


_ssl_lock = threading.Lock()
_ssl_context: ssl.SSLContext | None = None


def _shared_ssl_context() -> ssl.SSLContext:
    """Loading the CA bundle costs tens of milliseconds: once per process, not per check."""
    global _ssl_context
    with _ssl_lock:
        if _ssl_context is None:
            _ssl_context = ssl.create_default_context()
        return _ssl_context


def _status_expected(status: int, expected: int | None) -> bool:
    return status == expected if expected is not None else 200 <= status < 400


def _check_http(spec: CheckSpec) -> CheckResult:
    parts = urlsplit(spec.target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return failed(f"not an http(s) URL: {spec.target}")
    # a fresh connection per check (no keep-alive): a reused connection would hide a
    # target that no longer accepts new ones; no redirects: a 3xx is an answer
    with httpx.Client(
        verify=_shared_ssl_context(),
        timeout=spec.timeout_s,
        follow_redirects=False,
        limits=httpx.Limits(max_keepalive_connections=0),
        headers={"User-Agent": _APPLICATION_NAME, "Connection": "close"},
    ) as client:
        started = time.perf_counter()
        try:
            with client.stream("GET", spec.target) as response:
                latency = time.perf_counter() - started
                status = response.status_code
        except httpx.TimeoutException:
            return failed(f"no answer within {spec.timeout_s:g} s")
        except httpx.HTTPError as exc:
            return failed(describe_error(exc))
    if not _status_expected(status, spec.expect_status):
        wanted = str(spec.expect_status) if spec.expect_status is not None else "2xx or 3xx"
        return failed(f"HTTP {status}, expected {wanted}", latency)
    return answered(latency, spec.degraded_after_s)


# tcp


def _host_port(target: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port``; ValueError for anything else."""
    parts = urlsplit("//" + target.strip())
    if not parts.hostname or parts.port is None:
        raise ValueError(f"not host:port: {target!r}")
    return parts.hostname, parts.port


def _check_tcp(spec: CheckSpec) -> CheckResult:
    try:
        host, port = _host_port(spec.target)
    except ValueError as exc:
        return failed(str(exc))
    started = time.perf_counter()
    try:
        with socket.create_connection((host, port), timeout=spec.timeout_s):
            latency = time.perf_counter() - started
    except TimeoutError:
        return failed(f"no answer within {spec.timeout_s:g} s")
    except OSError as exc:
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return failed(f"{where}: {exc.strerror or describe_error(exc)}")
    return answered(latency, spec.degraded_after_s)


# postgres


def _check_postgres(spec: CheckSpec) -> CheckResult:
    """Connect and ``SELECT 1`` within ``timeout_s``.

    libpq's ``connect_timeout`` is whole seconds and at least 2, and nothing bounds a
    query on a server that accepted the connection and then froze; so the check runs
    in a thread of its own and the caller waits ``timeout_s`` at most. A frozen
    server keeps that one thread until the connection times out; the result is
    ``down`` at once either way.
    """
    outcome: list[CheckResult] = []

    def attempt() -> None:
        try:
            outcome.append(_postgres_select_1(spec))
        except Exception as exc:
            # a thread of our own: its edge
            outcome.append(failed(describe_error(exc)))

    worker = threading.Thread(target=attempt, name="b2c-check-postgres", daemon=True)
    worker.start()
    worker.join(spec.timeout_s)
    if not outcome:
        return failed(f"no answer within {spec.timeout_s:g} s")
    return outcome[0]


def _postgres_select_1(spec: CheckSpec) -> CheckResult:
    try:
        import psycopg
    except ImportError:
        return failed(f"a postgres check needs psycopg: pip install '{POSTGRES_EXTRA}'")
    started = time.perf_counter()
    try:
        with psycopg.connect(
            spec.target,
            autocommit=True,
            connect_timeout=max(2, math.ceil(spec.timeout_s)),
            application_name=_APPLICATION_NAME,
        ) as conn:
            conn.execute("SELECT 1").fetchone()
            latency = time.perf_counter() - started
    except psycopg.OperationalError as exc:
        # libpq's message names the host and what failed, and never the password
        return failed(str(exc).strip().splitlines()[0] if str(exc).strip() else describe_error(exc))
    except psycopg.Error as exc:
        return failed(describe_error(exc))
    return answered(latency, spec.degraded_after_s)


_RUNNERS: Final[dict[str, Callable[[CheckSpec], CheckResult]]] = {
    "http": _check_http,
    "tcp": _check_tcp,
    "postgres": _check_postgres,
}
