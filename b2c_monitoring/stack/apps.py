"""The product's own processes in the local stack: the processor and the admin API.

The processor's gRPC server (collector -> processor) is plaintext on loopback; the
admin API serves https when the stack's TLS is on (``Api(tls=...)``).
"""

from __future__ import annotations

import json
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

from b2c_monitoring.errors import ConfigError
from b2c_monitoring.stack.base import Launch, Progress, StackLayout
from b2c_monitoring.stack.certificates import TlsFiles
from b2c_monitoring.stack.console import ensure_console_build
from b2c_monitoring.tls import client_context


def _get_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


def _readiness(url: str, context: ssl.SSLContext | None = None) -> str | None:
    """``None`` when ``url`` (a ``/readyz``) answers 200, else its reason."""
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as response:  # noqa: S310 - loopback
            return None if response.status == 200 else f"answered {response.status}"
    except urllib.error.HTTPError as exc:
        try:
            reason = json.loads(exc.read()).get("reason")
        except ValueError:
            reason = None
        return str(reason or f"{url} answered {exc.code}")
    except (OSError, ValueError) as exc:
        return f"{url} cannot be reached: {exc}"


class AppPart:
    """Environment shared by the product's processes: where the stores are.

    ``database_url`` and ``elasticsearch_url`` carry the process's own login
    (docs/security.md, "Stores"); ``migration_database_url``, the owner's, is given to
    the processor alone, which migrates and creates and drops partitions."""

    def __init__(
        self,
        layout: StackLayout,
        database_url: str,
        processor_token: str,
        *,
        tls: TlsFiles | None = None,
        elasticsearch_url: str | None = None,
        migration_database_url: str | None = None,
    ) -> None:
        self.layout = layout
        self.database_url = database_url
        self.processor_token = processor_token
        self.tls = tls
        self.elasticsearch_url = (
            elasticsearch_url or f"http://127.0.0.1:{layout.ports.elasticsearch}"
        )
        self.migration_database_url = migration_database_url

    @property
    def api_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.layout.ports.api}"

    def base_env(self) -> dict[str, str]:
        ports = self.layout.ports
        env = {
            "B2C_DATABASE_URL": self.database_url,
            "B2C_ELASTICSEARCH_URL": self.elasticsearch_url,
            "B2C_PROCESSOR_LISTEN": f"127.0.0.1:{ports.processor_grpc}",
            "B2C_PROCESSOR_METRICS_PORT": str(ports.processor_metrics),
            "B2C_PROCESSOR_TOKEN": self.processor_token,
            "B2C_API_URL": self.api_url,
            "PYTHONUNBUFFERED": "1",
        }
        if self.migration_database_url is not None:
            env["B2C_MIGRATION_DATABASE_URL"] = self.migration_database_url
        return env

    def install(self, progress: Progress) -> None:
        """Installed with the package itself."""


def replica_name(part: str, replica: int) -> str:
    """``processor``, ``processor-2``, ...: the first replica keeps the part's own name
    (its pid file, log and the benches' ``run/<part>/pid`` stay where they were)."""
    return part if replica == 1 else f"{part}-{replica}"


class Processor(AppPart):
    """Replica ``replica`` (1-based) of the processor. With several, each listens on an
    address of its own in 127.0.0.0/8, on the same gRPC port (``stack/dns.py`` says
    why), with a metrics port of its own; ``processes`` derivation workers each."""

    def __init__(
        self,
        layout: StackLayout,
        database_url: str,
        processor_token: str,
        *,
        tls: TlsFiles | None = None,
        elasticsearch_url: str | None = None,
        migration_database_url: str | None = None,
        replica: int = 1,
        processes: int | None = None,
    ) -> None:
        super().__init__(
            layout,
            database_url,
            processor_token,
            tls=tls,
            elasticsearch_url=elasticsearch_url,
            migration_database_url=migration_database_url,
        )
        self.replica = replica
        self.name = replica_name("processor", replica)
        self.processes = processes

    @property
    def address(self) -> str:
        return f"127.0.0.{self.replica}"

    @property
    def metrics_port(self) -> int:
        return self.layout.ports.processor_metrics + self.replica - 1

    def base_env(self) -> dict[str, str]:
        env = {
            **super().base_env(),
            "B2C_PROCESSOR_LISTEN": f"{self.address}:{self.layout.ports.processor_grpc}",
            "B2C_PROCESSOR_METRICS_PORT": str(self.metrics_port),
        }
        if self.processes is not None:
            env["B2C_PROCESSOR_PROCESSES"] = str(self.processes)
        return env

    def prepare(self) -> Launch:
        return Launch(
            argv=[sys.executable, "-m", "b2c_monitoring", "serve", "processor"], env=self.base_env()
        )

    def healthy(self) -> bool:
        return _get_ok(f"http://127.0.0.1:{self.metrics_port}/healthz")

    def readiness(self) -> str | None:
        """Why it cannot store what it receives (Postgres, refused batches), or ``None``."""
        return _readiness(f"http://127.0.0.1:{self.metrics_port}/readyz")

    def endpoints(self) -> dict[str, str]:
        return {
            "otlp_grpc": f"{self.address}:{self.layout.ports.processor_grpc}",
            "metrics": f"http://127.0.0.1:{self.metrics_port}/metrics",
            "readyz": f"http://127.0.0.1:{self.metrics_port}/readyz",
        }


class Api(AppPart):
    """Instance ``replica`` (1-based) of the admin API, on the API port plus
    ``replica - 1``; the instances share the hub through Postgres (hub/backplane.py)."""

    def __init__(
        self,
        layout: StackLayout,
        database_url: str,
        processor_token: str,
        *,
        tls: TlsFiles | None = None,
        elasticsearch_url: str | None = None,
        replica: int = 1,
    ) -> None:
        super().__init__(
            layout, database_url, processor_token, tls=tls, elasticsearch_url=elasticsearch_url
        )
        self.console_dir: Path | None = None
        self.replica = replica
        self.name = replica_name("api", replica)

    @property
    def api_url(self) -> str:
        port = self.layout.ports.api + self.replica - 1
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"

    def install(self, progress: Progress) -> None:
        """The admin console it serves, built (or found in the cache)."""
        self.console_dir = ensure_console_build(self.layout, progress)

    def base_env(self) -> dict[str, str]:
        # also for an API started beside a running stack (tests, benches), which never
        # ran install: the build of the current sources, from the cache
        if self.console_dir is None:
            self.console_dir = ensure_console_build(self.layout, lambda _: None)
        return {**super().base_env(), "B2C_CONSOLE_DIR": str(self.console_dir), **self.tls_env()}

    def tls_env(self) -> dict[str, str]:
        """``b2c serve api``'s TLS settings: always stated, so that a B2C_TLS of the
        caller's own environment never reaches the process (the stack resolved it)."""
        if self.tls is None:
            return {"B2C_TLS": "off"}
        env = {
            "B2C_TLS": "files",
            "B2C_TLS_CERT_FILE": str(self.tls.cert_file),
            "B2C_TLS_KEY_FILE": str(self.tls.key_file),
        }
        if self.tls.ca_file is not None:
            env["B2C_TLS_CA_FILE"] = str(self.tls.ca_file)
        return env

    def prepare(self) -> Launch:
        return Launch(
            argv=[sys.executable, "-m", "b2c_monitoring", "serve", "api"], env=self.base_env()
        )

    def _context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        context = client_context(self.tls.ca_file, setting="B2C_TLS_CA_FILE")
        # whether our own process answers on loopback: the chain is verified, the
        # name is not (an operator's certificate may name only the public host)
        context.check_hostname = False
        return context

    def healthy(self) -> bool:
        try:
            context = self._context()
        except ConfigError:
            return False
        return _get_ok(f"{self.api_url}/healthz", context)

    def readiness(self) -> str | None:
        """Why it cannot serve (Postgres), or ``None``."""
        try:
            context = self._context()
        except ConfigError as exc:
            return exc.message
        return _readiness(f"{self.api_url}/readyz", context)

    def endpoints(self) -> dict[str, str]:
        base = self.api_url
        return {
            "console": f"{base}/console/",
            "api": base,
            "openapi": f"{base}/openapi.json",
            "docs": f"{base}/docs",
        }
