"""The shape every part of the local stack has.

The local stack runs each real service (Postgres, Elasticsearch, Prometheus, the
collector, the processor, the API) as a plain local process on loopback, each with
its own data folder, log file and port under one home folder. A part is described
by a :class:`Part`: how to install what it needs, how to launch it, and how to tell
that it is healthy. The supervisor in ``supervisor.py`` does the rest (pid files,
waiting, stopping, naming the log of a part that does not come up).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

Progress = Callable[[str], None]
"""Receives one human-readable line per step of long work (installs, builds)."""


def repo_root() -> Path:
    """The checkout this package runs from: the stack needs collector-config/ and versions.toml."""
    return Path(__file__).resolve().parents[2]


def load_versions(root: Path | None = None) -> Mapping[str, Mapping[str, object]]:
    with open((root or repo_root()) / "versions.toml", "rb") as f:
        return tomllib.load(f)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing): one build per cache
    entry at a time, across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Ports:
    """Every port of the stack. ``offset`` shifts them all, so a test stack and a demo
    stack can run side by side on one machine."""

    offset: int = 0

    @property
    def postgres(self) -> int:
        return 5433 + self.offset

    @property
    def elasticsearch(self) -> int:
        return 9200 + self.offset

    @property
    def elasticsearch_transport(self) -> int:
        return 9300 + self.offset

    @property
    def prometheus(self) -> int:
        return 9090 + self.offset

    @property
    def otlp_grpc(self) -> int:
        return 4317 + self.offset

    @property
    def otlp_http(self) -> int:
        return 4318 + self.offset

    @property
    def collector_health(self) -> int:
        return 13133 + self.offset

    @property
    def collector_telemetry(self) -> int:
        return 8888 + self.offset

    @property
    def collector_prometheus_exporter(self) -> int:
        return 8889 + self.offset

    @property
    def processor_grpc(self) -> int:
        return 4417 + self.offset

    @property
    def processor_metrics(self) -> int:
        return 9464 + self.offset

    @property
    def processor_dns(self) -> int:
        """UDP: the name of the processor replicas (``stack/dns.py``), with several."""
        return 10053 + self.offset

    @property
    def api(self) -> int:
        return 8000 + self.offset

    @property
    def redis(self) -> int:
        """Celery's broker of the demo and the tests (``stack/redis.py``)."""
        return 6379 + self.offset


@dataclass(frozen=True)
class StackLayout:
    """Where everything of one stack lives on disk."""

    home: Path
    ports: Ports = field(default_factory=Ports)

    @property
    def cache(self) -> Path:
        """Downloads and builds, shared by every stack on the machine unless overridden."""
        return Path(os.environ.get("B2C_CACHE_DIR", Path.home() / ".cache" / "b2c-monitoring"))

    def data(self, part: str) -> Path:
        return self.home / "data" / part

    def log(self, part: str) -> Path:
        return self.home / "logs" / f"{part}.log"

    def run(self, part: str) -> Path:
        """Runtime files of a part: pid file, generated configuration."""
        return self.home / "run" / part


@dataclass(frozen=True)
class Launch:
    """How to start a part's process. ``user`` runs it as that unprivileged user."""

    argv: list[str]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    user: str | None = None


class Part(Protocol):
    """One service of the stack."""

    name: str

    def install(self, progress: Progress) -> None:
        """Make everything the part needs present; idempotent and quick when done."""

    def prepare(self) -> Launch:
        """Write configuration and data folders; return how to launch the process."""

    def healthy(self) -> bool:
        """True when the part answers; never raises."""

    def endpoints(self) -> dict[str, str]:
        """Name to address, for ``b2c stack status``."""
