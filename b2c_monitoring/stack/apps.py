"""The product's own processes in the local stack: the processor and the admin API."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

from b2c_monitoring.stack.base import Launch, Progress, StackLayout
from b2c_monitoring.stack.console import ensure_console_build


def _get_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback http
            return bool(response.status == 200)
    except OSError:
        return False


class AppPart:
    """Environment shared by the product's processes: where the stores are."""

    def __init__(self, layout: StackLayout, database_url: str, processor_token: str) -> None:
        self.layout = layout
        self.database_url = database_url
        self.processor_token = processor_token

    def base_env(self) -> dict[str, str]:
        ports = self.layout.ports
        return {
            "B2C_DATABASE_URL": self.database_url,
            "B2C_ELASTICSEARCH_URL": f"http://127.0.0.1:{ports.elasticsearch}",
            "B2C_PROCESSOR_LISTEN": f"127.0.0.1:{ports.processor_grpc}",
            "B2C_PROCESSOR_METRICS_PORT": str(ports.processor_metrics),
            "B2C_PROCESSOR_TOKEN": self.processor_token,
            "B2C_API_URL": f"http://127.0.0.1:{ports.api}",
            "PYTHONUNBUFFERED": "1",
        }

    def install(self, progress: Progress) -> None:
        """Installed with the package itself."""


class Processor(AppPart):
    name = "processor"

    def prepare(self) -> Launch:
        return Launch(
            argv=[sys.executable, "-m", "b2c_monitoring", "serve", "processor"], env=self.base_env()
        )

    def healthy(self) -> bool:
        return _get_ok(f"http://127.0.0.1:{self.layout.ports.processor_metrics}/metrics")

    def endpoints(self) -> dict[str, str]:
        ports = self.layout.ports
        return {
            "otlp_grpc": f"127.0.0.1:{ports.processor_grpc}",
            "metrics": f"http://127.0.0.1:{ports.processor_metrics}/metrics",
        }


class Api(AppPart):
    name = "api"

    def __init__(self, layout: StackLayout, database_url: str, processor_token: str) -> None:
        super().__init__(layout, database_url, processor_token)
        self.console_dir: Path | None = None

    def install(self, progress: Progress) -> None:
        """The admin console it serves, built (or found in the cache)."""
        self.console_dir = ensure_console_build(self.layout, progress)

    def base_env(self) -> dict[str, str]:
        # also for an API started beside a running stack (tests, benches), which never
        # ran install: the build of the current sources, from the cache
        if self.console_dir is None:
            self.console_dir = ensure_console_build(self.layout, lambda _: None)
        return {**super().base_env(), "B2C_CONSOLE_DIR": str(self.console_dir)}

    def prepare(self) -> Launch:
        return Launch(
            argv=[sys.executable, "-m", "b2c_monitoring", "serve", "api"], env=self.base_env()
        )

    def healthy(self) -> bool:
        return _get_ok(f"http://127.0.0.1:{self.layout.ports.api}/healthz")

    def endpoints(self) -> dict[str, str]:
        base = f"http://127.0.0.1:{self.layout.ports.api}"
        return {
            "console": f"{base}/console/",
            "api": base,
            "openapi": f"{base}/openapi.json",
            "docs": f"{base}/docs",
        }
