"""Prometheus as a local process of the stack.

The binary is Debian bookworm's ``prometheus`` package (2.42; ``versions.toml``
``[prometheus]``). The stack runs its own server on 127.0.0.1:``ports.prometheus``
with its own configuration (``run/prometheus/prometheus.yml``) and TSDB
(``data/prometheus``); it runs as root, which Prometheus allows.

The package also brings a system service (``/etc/init.d/prometheus``, and a systemd
unit) on :9090 with ``/var/lib/prometheus``. It is not ours. On these machines
nothing starts it: there is no init system in the container and
``/usr/sbin/policy-rc.d`` forbids starting services at install time. Should it run
anyway, :meth:`Prometheus.install` stops it (``service prometheus stop``), since it
would hold port 9090 of a stack without port offset. ``--no-install-recommends`` keeps
node-exporter out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Final

from b2c_monitoring.stack.base import (
    Launch,
    Ports,
    Progress,
    StackLayout,
    repo_root,
)
from b2c_monitoring.stack.system import install_debian_part

PROMETHEUS_BINARY: Final = Path("/usr/bin/prometheus")
SCRAPE_INTERVAL: Final = "5s"
RETENTION: Final = "15d"
# recording and alerting rules of the pipeline's own failures (promtool-checked)
RULES_GLOB: Final = "dashboards/prometheus/*.rules.yml"


def stop_system_service(progress: Progress) -> None:
    """Stop Debian's own prometheus service if it runs (it is not the stack's)."""
    if not Path("/etc/init.d/prometheus").exists() or shutil.which("service") is None:
        return
    status = subprocess.run(
        ["service", "prometheus", "status"], capture_output=True, text=True, check=False
    )
    if status.returncode == 0:
        progress("prometheus: stopping the Debian system service (it is not the stack's)")
        subprocess.run(["service", "prometheus", "stop"], capture_output=True, check=False)


def render_config(
    ports: Ports, *, scrape_interval: str = SCRAPE_INTERVAL, processors: int = 1, apis: int = 1
) -> str:
    """prometheus.yml: every scrape target of the stack, on loopback (each replica of
    the processor and the API on its own port: see ``stack/apps.py``)."""
    jobs: list[tuple[str, list[int], str]] = [
        ("otel-collector-exporter", [ports.collector_prometheus_exporter], "/metrics"),
        ("otel-collector", [ports.collector_telemetry], "/metrics"),
        ("b2c-processor", [ports.processor_metrics + i for i in range(processors)], "/metrics"),
        ("b2c-api", [ports.api + i for i in range(apis)], "/metrics"),
        ("prometheus", [ports.prometheus], "/metrics"),
    ]
    lines = [
        "# Written by b2c_monitoring.stack.prometheus; changes are overwritten.",
        "global:",
        f"  scrape_interval: {scrape_interval}",
        f"  evaluation_interval: {scrape_interval}",
        "  scrape_timeout: 4s",
        "rule_files:",
        f"  - {json.dumps(str(repo_root() / RULES_GLOB))}",
        "scrape_configs:",
    ]
    for job, job_ports, path in jobs:
        targets = ", ".join(json.dumps(f"127.0.0.1:{port}") for port in job_ports)
        lines += [
            f"  - job_name: {json.dumps(job)}",
            f"    metrics_path: {json.dumps(path)}",
            "    static_configs:",
            f"      - targets: [{targets}]",
        ]
    return "\n".join(lines) + "\n"


class Prometheus:
    """The stack's Prometheus server on 127.0.0.1:``ports.prometheus``."""

    name = "prometheus"

    def __init__(
        self,
        layout: StackLayout,
        *,
        binary: Path = PROMETHEUS_BINARY,
        retention: str = RETENTION,
        scrape_interval: str = SCRAPE_INTERVAL,
        processors: int = 1,
        apis: int = 1,
    ) -> None:
        self.layout = layout
        self.processors, self.apis = processors, apis
        self.binary = binary
        self.retention = retention
        self.scrape_interval = scrape_interval

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.layout.ports.prometheus}"

    @property
    def config_file(self) -> Path:
        return self.layout.run(self.name) / "prometheus.yml"

    def install(self, progress: Progress) -> None:
        install_debian_part(self.name, "prometheus", self.binary, progress)
        if os.geteuid() == 0:
            stop_system_service(progress)

    def prepare(self) -> Launch:
        data = self.layout.data(self.name)
        data.mkdir(parents=True, exist_ok=True)
        self.config_file.parent.mkdir(parents=True, exist_ok=True)
        self.layout.log(self.name).parent.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(
            render_config(
                self.layout.ports,
                scrape_interval=self.scrape_interval,
                processors=self.processors,
                apis=self.apis,
            )
        )
        return Launch(
            argv=[
                str(self.binary),
                f"--config.file={self.config_file}",
                f"--storage.tsdb.path={data}",
                f"--storage.tsdb.retention.time={self.retention}",
                f"--web.listen-address=127.0.0.1:{self.layout.ports.prometheus}",
                "--web.enable-lifecycle",
                "--log.level=info",
            ],
            cwd=self.layout.run(self.name),
        )

    def healthy(self) -> bool:
        """GET /-/ready answers 200."""
        try:
            ready_url = f"{self.url}/-/ready"  # http://127.0.0.1:<port>
            with urllib.request.urlopen(ready_url, timeout=2.0) as resp:  # noqa: S310
                return bool(resp.status == 200)
        except (OSError, ValueError):
            return False

    def endpoints(self) -> dict[str, str]:
        return {"prometheus": self.url}
