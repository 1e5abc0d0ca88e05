"""The whole local stack, the product's embedded default, in one home folder.

``<home>/data/<part>`` data, ``<home>/logs/<part>.log`` logs, ``<home>/run/<part>`` pid
files and generated configuration, ``<home>/credentials.json`` the admin token that
the CLI finds without flags (with the API's address and, with TLS on, the CA that
verifies it). The default home is ``.b2c/`` in the checkout (``B2C_HOME`` overrides
it); ``B2C_PORT_OFFSET`` shifts every port. ``B2C_TLS`` (settings.py) turns TLS on for
the OTLP receivers and the admin API; ``self-signed`` keeps the stack's own CA in
``<home>/data/tls``.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from b2c_monitoring.auth import Role
from b2c_monitoring.settings import load_settings
from b2c_monitoring.stack.apps import Api, Processor
from b2c_monitoring.stack.base import Part, Ports, Progress, StackLayout, repo_root
from b2c_monitoring.stack.celery_demo import CeleryDemo
from b2c_monitoring.stack.certificates import StackTls
from b2c_monitoring.stack.collector import Collector
from b2c_monitoring.stack.dns import PROCESSORS_NAME, ProcessorDns
from b2c_monitoring.stack.elasticsearch import Elasticsearch
from b2c_monitoring.stack.postgres import Postgres
from b2c_monitoring.stack.prometheus import Prometheus
from b2c_monitoring.stack.redis import Redis
from b2c_monitoring.stack.supervisor import Supervisor
from b2c_monitoring.storage.db import make_pool
from b2c_monitoring.storage.migrations import migrate
from b2c_monitoring.storage.tokens import TokenStore

CREDENTIALS = "credentials.json"
REPLICAS = "replicas.json"


@dataclass(frozen=True)
class Replicas:
    """How many processors and API instances the stack runs (``b2c stack up --processors
    N --apis M``); kept in ``<home>/run/replicas.json`` so that ``down`` and ``status``
    without flags see every one."""

    processors: int = 1
    apis: int = 1

    def __post_init__(self) -> None:
        # 127.0.0.<replica> addresses and ports next to the first: keep it small
        if not 1 <= self.processors <= 9 or not 1 <= self.apis <= 9:
            raise ValueError("between 1 and 9 processors and API instances")


def stored_replicas(layout: StackLayout) -> Replicas:
    try:
        stored = json.loads((layout.home / "run" / REPLICAS).read_text())
        return Replicas(int(stored["processors"]), int(stored["apis"]))
    except (OSError, ValueError, KeyError, TypeError):
        return Replicas()


def processors_target(layout: StackLayout) -> str:
    """The gRPC target of every processor replica: the name ``stack/dns.py`` answers,
    asked of that server (grpc-go's ``dns://authority/host:port``), round robin."""
    ports = layout.ports
    return f"dns://127.0.0.1:{ports.processor_dns}/{PROCESSORS_NAME}:{ports.processor_grpc}"


def processes_per_replica(processors: int) -> int | None:
    """Derivation workers of each replica: one machine's default (cores + 1) shared out,
    so N replicas on one machine do not start N times the workers it has cores for.
    None (the processor's own default) for one replica or when B2C_PROCESSOR_PROCESSES
    is set."""
    if processors == 1 or os.environ.get("B2C_PROCESSOR_PROCESSES"):
        return None
    return max(1, math.ceil(((os.cpu_count() or 1) + 1) / processors))


def default_home() -> Path:
    return Path(os.environ.get("B2C_HOME") or repo_root() / ".b2c").resolve()


def default_layout(home: Path | None = None, port_offset: int | None = None) -> StackLayout:
    offset = port_offset if port_offset is not None else int(os.environ.get("B2C_PORT_OFFSET", "0"))
    return StackLayout(home=(home or default_home()).resolve(), ports=Ports(offset))


def _secret_file(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    path.write_text(value)
    path.chmod(0o600)
    return value


class LocalStack:
    def __init__(
        self, layout: StackLayout, *, fast_unsafe: bool = False, replicas: Replicas | None = None
    ) -> None:
        self.layout = layout
        self.layout.home.mkdir(parents=True, exist_ok=True)
        self.previous_replicas = stored_replicas(layout)
        self.replicas = replicas or self.previous_replicas
        self.postgres = Postgres(layout, fast_unsafe=fast_unsafe)
        self.processor_token = _secret_file(layout.home / "run" / "processor-token")
        self.logs_index = "b2c-logs"
        settings = load_settings()
        self.tls = StackTls.from_settings(
            layout.data("tls"),
            settings.tls,
            cert_file=settings.tls_cert_file,
            key_file=settings.tls_key_file,
            ca_file=settings.tls_ca_file,
            extra_names=settings.tls_extra_names,
        )
        self.elasticsearch = Elasticsearch(layout, logs_index=self.logs_index)
        self.prometheus = Prometheus(
            layout, processors=self.replicas.processors, apis=self.replicas.apis
        )
        processes = processes_per_replica(self.replicas.processors)
        self.processors = [
            Processor(
                layout,
                self.postgres.processor_url,
                self.processor_token,
                migration_database_url=self.postgres.url,
                elasticsearch_url=self.elasticsearch.processor_url,
                replica=replica,
                processes=processes,
            )
            for replica in range(1, self.replicas.processors + 1)
        ]
        self.processor = self.processors[0]
        self.dns = (
            ProcessorDns(layout, [p.address for p in self.processors])
            if self.replicas.processors > 1
            else None
        )
        self.collector = Collector(
            layout,
            self.processor_token,
            self.logs_index,
            ingest_auth_dsn=self.postgres.ingest_auth_dsn,
            redact_patterns=settings.log_redact_patterns,
            rate_per_s=settings.ingest_rate_per_s,
            burst=settings.ingest_burst,
            tls=self.tls.files,
            es_credentials=self.elasticsearch.collector_credentials,
            processor_endpoint=processors_target(layout) if self.dns is not None else None,
        )
        self.apis = [
            Api(
                layout,
                self.postgres.api_url,
                self.processor_token,
                tls=self.tls.files,
                elasticsearch_url=self.elasticsearch.api_url,
                replica=replica,
            )
            for replica in range(1, self.replicas.apis + 1)
        ]
        self.api = self.apis[0]
        self.redis = Redis(layout)
        files = self.tls.files
        self.celery_demo = CeleryDemo(
            layout,
            self.redis,
            otlp_endpoint=self.collector.endpoints()["otlp_grpc"],
            api_url=self.api.api_url,
            probe_token=lambda: self.probe_token,
            ca_file=str(files.ca_file) if files is not None and files.ca_file else None,
        )
        parts: list[Part] = [
            self.postgres,
            self.elasticsearch,
            *([self.dns] if self.dns is not None else []),
            *self.processors,
            self.collector,
            self.prometheus,
            self.redis,
            *self.apis,
            self.celery_demo,  # optional: b2c demo starts it
        ]
        self.supervisor = Supervisor(layout, parts)

    @property
    def credentials_path(self) -> Path:
        return self.layout.home / CREDENTIALS

    def install(self, progress: Progress) -> None:
        """Install and build what every part needs, without starting anything."""
        for part in self.supervisor.parts:
            part.install(progress)

    def up(self, progress: Progress) -> None:
        self._apply_replicas(progress)
        self._restart_on_tls_change(self.tls.ensure(datetime.now(UTC), progress), progress)
        self.supervisor.start(self.postgres, progress)
        self.postgres.ensure_setup(progress)  # also when it was running already
        migrate(self.postgres.url)
        self.ensure_admin_token(progress)
        for part in self.supervisor.parts[1:]:
            if not getattr(part, "optional", False):
                self.supervisor.start(part, progress)

    def down(self, progress: Progress) -> None:
        self.supervisor.down(progress)

    def _apply_replicas(self, progress: Progress) -> None:
        """Stop the replicas a smaller count leaves out, and the parts whose
        configuration names the replicas (the collector's target, Prometheus' scrape
        list), so that ``up`` starts them again with the new count."""
        before, now = self.previous_replicas, self.replicas
        if before != now:
            gone: list[Part] = [
                Processor(self.layout, "", "", replica=r)
                for r in range(now.processors + 1, before.processors + 1)
            ]
            gone += [
                Api(self.layout, "", "", replica=r) for r in range(now.apis + 1, before.apis + 1)
            ]
            if now.processors == 1 and before.processors > 1:
                gone.append(ProcessorDns(self.layout, []))
            gone += [self.collector, self.prometheus]
            for part in gone:
                if self.supervisor.pid(part) is not None:
                    progress(
                        f"{part.name}: restarting for {now.processors} processor(s) and {now.apis} API(s)"
                    )
                self.supervisor.stop(part, progress)
        state = self.layout.home / "run" / REPLICAS
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps(asdict(now)))
        self.previous_replicas = now

    def _restart_on_tls_change(self, renewed: bool, progress: Progress) -> None:
        """A running collector or API keeps the TLS it was started with: stop them
        when it changed (B2C_TLS, the files, or a renewed certificate), so that
        ``up`` starts them again with the new one."""
        state = self.layout.run("tls") / "started-with"
        now = self.tls.fingerprint()
        # a stack started before this file existed had no TLS
        before = state.read_text() if state.exists() else StackTls("off", None).fingerprint()
        if renewed or before != now:
            for part in (self.api, self.collector):
                if self.supervisor.pid(part) is not None:
                    progress(f"{part.name}: restarting for the new TLS settings or certificate")
                    self.supervisor.stop(part, progress)
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(now)

    def ensure_admin_token(self, progress: Progress) -> None:
        """The stack's own tokens, made once and kept in ``credentials.json``: an admin
        token for the CLI and the console, and a probe token of every tenant for the
        demo probes and local senders (the collector refuses OTLP without one)."""
        stored = self.credentials() if self.credentials_path.exists() else {}
        made: dict[str, str] = {}
        wanted = {"token": ("local-admin", Role.ADMIN), "probeToken": ("local-probes", Role.PROBE)}
        missing = {key: spec for key, spec in wanted.items() if key not in stored}
        if missing:
            pool = make_pool(self.postgres.url, max_size=1, name="b2c-stack")
            pool.open(wait=True)
            try:
                for key, (name, role) in missing.items():
                    _, made[key] = TokenStore(pool).create(name, role, None, datetime.now(UTC))
            finally:
                pool.close()
        self._write_credentials({**stored, **made})  # also when TLS changed
        for key in made:
            progress(f"created the stack's {wanted[key][0]} token in {self.credentials_path}")

    def _write_credentials(self, tokens: dict[str, str]) -> None:
        stored: dict[str, str] = {
            "apiUrl": self.api.api_url,
            "token": tokens["token"],
            "probeToken": tokens["probeToken"],
        }
        files = self.tls.files
        if files is not None and files.ca_file is not None:
            stored["caCert"] = str(files.ca_file)
        text = json.dumps(stored, indent=2)
        if self.credentials_path.exists() and self.credentials_path.read_text() == text:
            return
        self.credentials_path.write_text(text)
        self.credentials_path.chmod(0o600)

    @property
    def probe_token(self) -> str:
        """The stack's probe token of every tenant (``credentials.json``)."""
        return self.credentials()["probeToken"]

    def credentials(self) -> dict[str, str]:
        """The stack's admin API address and token (``credentials.json``)."""
        stored: dict[str, str] = json.loads(self.credentials_path.read_text())
        return stored

    def status(self) -> dict[str, Any]:
        return {
            "home": str(self.layout.home),
            "tls": self.tls.describe(),
            "replicas": asdict(self.replicas),
            "parts": [
                {
                    "name": s.name,
                    "running": s.running,
                    "healthy": s.healthy,
                    "ready": s.ready,
                    "reason": s.reason,
                    "pid": s.pid,
                    "log": str(s.log),
                    "endpoints": s.endpoints,
                }
                for s in self.supervisor.status()
            ],
        }
