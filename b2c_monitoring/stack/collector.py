"""The OpenTelemetry Collector of the stack: a custom build ``otelcol-b2c``.

The binary is built with the OpenTelemetry Collector Builder (ocb) from
``collector-config/builder-config.yaml``; the builder's release comes from
``versions.toml`` (``[collector] builder``) and must be the release every module of
the manifest is pinned to. The build needs only Go and the Go module proxy; it runs
with ``CGO_ENABLED=0``.

Builds are cached in ``<cache>/collector/<hash>/otelcol-b2c``, where ``<hash>`` is
:func:`manifest_hash` (the manifest's bytes, the Go version and the sources of our own
components in ``collector-components/``), so only a changed manifest, component or Go
rebuilds it. A build runs in a temporary folder next to the
cache entry, which is renamed into place only when the binary is complete: an
interrupted build is never taken as done. A lock file per hash keeps two processes
from building the same entry at once.

The configuration, ``collector-config/collector.yaml``, takes everything that varies
from ``${env:B2C_...}`` variables, which :func:`collector_env` derives from the stack's
ports and folders. The operator's own redaction patterns (``B2C_LOG_REDACT_PATTERNS``)
are a list, which ``${env:...}`` cannot carry into a YAML list: the stack writes them
into ``<home>/run/collector/redaction.yaml`` (:func:`render_redaction_config`), passed
as a second ``--config`` whose ``blocked_values`` replaces the empty list of
``redaction/custom``. With TLS on, a third, ``<home>/run/collector/tls.yaml``
(:func:`render_tls_config`), gives both OTLP receivers their certificate and key: the
collector merges the maps of its ``--config`` files, so the receivers' own settings in
``collector.yaml`` stay as they are.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Final

from b2c_monitoring.errors import StackError
from b2c_monitoring.stack.base import (
    Launch,
    Progress,
    StackLayout,
    file_lock,
    load_versions,
    repo_root,
)
from b2c_monitoring.stack.certificates import TlsFiles

BINARY_NAME: Final = "otelcol-b2c"
MANIFEST: Final = Path("collector-config") / "builder-config.yaml"
CONFIG: Final = Path("collector-config") / "collector.yaml"
COMPONENTS: Final = Path("collector-components")
REDACTION_CONFIG: Final = "redaction.yaml"
TLS_CONFIG: Final = "tls.yaml"
BUILDER_MODULE: Final = "go.opentelemetry.io/collector/cmd/builder"

# Modules the checksum database (sum.golang.org, as reached through the proxy here)
# has no record of, while the proxy serves them: checked against go.sum only.
NO_SUMDB_MODULES: Final = ("go.opentelemetry.io/ebpf-profiler",)

BUILD_TIMEOUT_S: Final = 3600.0
HEARTBEAT_S: Final = 60.0
TAIL_LINES: Final = 30
LOOPBACK: Final = "127.0.0.1"

# ocb's own log lines worth passing on (everything else goes to the build log only)
_MILESTONES: Final = {
    "Sources created": "sources generated",
    "Getting go modules": "downloading Go modules",
    "Compiling": "compiling (the longest step)",
    "Compiled": "compiled",
}
_OUTPUT_PATH_LINE: Final = re.compile(r"^(?P<indent>[ \t]+)output_path:.*$", re.MULTILINE)
_MODULE_PATH_LINE: Final = re.compile(
    r"^(?P<indent>[ \t]+)path:[ \t]*(?P<path>\S+)[ \t]*$", re.MULTILINE
)


class CollectorBuildError(StackError):
    """The collector could not be built, or its configuration is invalid."""


# --------------------------------------------------------------------------------------
# Go and the manifest


def go_executable() -> str:
    """The ``go`` command: on PATH, else the usual install location."""
    found = shutil.which("go")
    if found:
        return found
    fallback = Path("/usr/local/go/bin/go")
    if fallback.is_file():
        return str(fallback)
    raise CollectorBuildError(
        "Go is needed to build the collector: no 'go' on PATH nor /usr/local/go/bin/go"
    )


def go_version() -> str:
    """``go env GOVERSION``, e.g. ``go1.26.8``."""
    done = subprocess.run(
        [go_executable(), "env", "GOVERSION"], capture_output=True, text=True, check=False
    )
    version = done.stdout.strip()
    if done.returncode != 0 or not version:
        raise CollectorBuildError(f"'go env GOVERSION' failed: {done.stderr.strip()}")
    return version


def component_sources(root: Path) -> list[Path]:
    """The files our own components are built from (tests excluded: they change
    nothing in the binary), in a stable order."""
    folder = root / COMPONENTS
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not p.name.endswith("_test.go") and p.suffix in {".go", ".mod", ".sum"}
    )


def manifest_hash(root: Path) -> str:
    """sha256 (hex) over the builder manifest under ``root``, the Go version and the
    sources of our components."""
    digest = hashlib.sha256()
    digest.update((root / MANIFEST).read_bytes())
    digest.update(b"\0")
    digest.update(go_version().encode())
    for source in component_sources(root):
        digest.update(b"\0" + source.relative_to(root).as_posix().encode() + b"\0")
        digest.update(source.read_bytes())
    return digest.hexdigest()


def builder_version(root: Path | None = None) -> str:
    """The ocb release from ``versions.toml`` (``[collector] builder``)."""
    version = load_versions(root).get("collector", {}).get("builder")
    if not isinstance(version, str) or not re.fullmatch(r"v\d+\.\d+\.\d+\S*", version):
        raise CollectorBuildError(
            f"versions.toml: [collector] builder must be a version like v0.156.0, got {version!r}"
        )
    return version


def manifest_with_output_path(manifest: str, output_path: Path) -> str:
    """The manifest text with ``dist.output_path`` replaced (the only such key)."""
    replaced, count = _OUTPUT_PATH_LINE.subn(
        lambda m: f'{m.group("indent")}output_path: "{output_path}"', manifest, count=1
    )
    if count != 1:
        raise CollectorBuildError(f"{MANIFEST}: no 'output_path:' line under 'dist:'")
    return replaced


def manifest_with_absolute_paths(manifest: str, root: Path) -> str:
    """The manifest text with each module ``path:`` made absolute against ``root``: ocb
    resolves it against its own working folder, which is a temporary one."""
    return _MODULE_PATH_LINE.sub(
        lambda m: f'{m.group("indent")}path: "{(root / m.group("path")).resolve()}"', manifest
    )


def collector_cache(layout: StackLayout) -> Path:
    return layout.cache / "collector"


def collector_binary_path(layout: StackLayout, root: Path | None = None) -> Path:
    """Where the binary of the current manifest lives (whether built or not)."""
    return collector_cache(layout) / manifest_hash(root or repo_root()) / BINARY_NAME


# --------------------------------------------------------------------------------------
# building


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def _append_env_list(current: str | None, items: tuple[str, ...]) -> str:
    values = [v for v in (current or "").split(",") if v]
    values.extend(item for item in items if item not in values)
    return ",".join(values)


def _build_env(*, sumdb_off: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["CGO_ENABLED"] = "0"
    env["GONOSUMDB"] = _append_env_list(env.get("GONOSUMDB"), NO_SUMDB_MODULES)
    if sumdb_off:
        env["GOSUMDB"] = "off"
    return env


def _sumdb_lookup_failed(output: str) -> bool:
    """A checksum database look-up failed (not a checksum mismatch, which must stop us)."""
    return "SECURITY ERROR" not in output and bool(
        re.search(r"verifying .*(/sumdb/|sum\.golang\.org).*\b(404|410)\b", output)
    )


def _run_builder(
    argv: list[str], cwd: Path, env: Mapping[str, str], log_path: Path, progress: Progress
) -> tuple[int, list[str]]:
    """Run ocb, writing all output to ``log_path``; return (exit code, last lines)."""
    last: deque[str] = deque(maxlen=TAIL_LINES)
    started = time.monotonic()
    next_heartbeat = started + HEARTBEAT_S
    downloads = 0
    lines: queue.Queue[str | None] = queue.Queue()
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        assert process.stdout is not None
        reader = threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True)
        reader.start()
        try:
            while True:
                now = time.monotonic()
                if now - started > BUILD_TIMEOUT_S:
                    process.kill()
                    last.append(f"(killed: the build took longer than {BUILD_TIMEOUT_S:.0f}s)")
                    break
                try:
                    line = lines.get(timeout=max(0.1, next_heartbeat - now))
                except queue.Empty:
                    progress(
                        f"collector: still building ({time.monotonic() - started:.0f}s, "
                        f"{downloads} Go modules downloaded so far)"
                    )
                    next_heartbeat = time.monotonic() + HEARTBEAT_S
                    continue
                if line is None:
                    break
                log.write(line + "\n")
                log.flush()
                last.append(line)
                if line.startswith("go: downloading "):
                    downloads += 1
                    continue
                for marker, text in _MILESTONES.items():
                    if f"\t{marker}\t" in line or line.rstrip().endswith(f"\t{marker}"):
                        progress(f"collector: {text} ({time.monotonic() - started:.0f}s)")
                        break
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            reader.join(timeout=5)
    return process.returncode, list(last)


def ensure_collector_binary(
    layout: StackLayout, progress: Progress, root: Path | None = None
) -> Path:
    """The path of the collector binary for the current manifest, built if missing.

    Raises :class:`CollectorBuildError` with the end of the build output when the
    build fails; the full output is kept in ``<cache>/collector/<hash>.failed.log``.
    """
    root = root or repo_root()
    digest = manifest_hash(root)
    cache = collector_cache(layout)
    final_dir = cache / digest
    binary = final_dir / BINARY_NAME
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary

    with file_lock(cache / f"{digest}.lock"):
        if binary.is_file() and os.access(binary, os.X_OK):  # built meanwhile by another process
            return binary
        for stale in cache.glob(f"{digest}.tmp-*"):  # interrupted builds; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        if final_dir.exists():  # cannot be complete without its binary
            shutil.rmtree(final_dir)

        version = builder_version(root)
        manifest_text = (root / MANIFEST).read_text(encoding="utf-8")
        work = Path(tempfile.mkdtemp(prefix=f"{digest}.tmp-", dir=cache))
        started = time.monotonic()
        try:
            build_dir = work / "build"
            staged = work / "entry"
            staged.mkdir()
            manifest_copy = staged / "builder-config.yaml"
            manifest_copy.write_text(
                manifest_with_absolute_paths(
                    manifest_with_output_path(manifest_text, build_dir), root
                ),
                encoding="utf-8",
            )
            argv = [
                go_executable(),
                "run",
                f"{BUILDER_MODULE}@{version}",
                f"--config={manifest_copy}",
            ]
            progress(
                f"collector: building otelcol-b2c with ocb {version} "
                "(first time takes several minutes)"
            )
            log_path = staged / "build.log"
            code, last = _run_builder(argv, work, _build_env(sumdb_off=False), log_path, progress)
            if code != 0 and _sumdb_lookup_failed(log_path.read_text(encoding="utf-8")):
                progress(
                    "collector: the checksum database has no record of a module; "
                    "retrying with GOSUMDB=off"
                )
                shutil.rmtree(build_dir, ignore_errors=True)
                code, last = _run_builder(
                    argv, work, _build_env(sumdb_off=True), log_path, progress
                )
            built = build_dir / BINARY_NAME
            if code != 0 or not built.is_file():
                failed_log = cache / f"{digest}.failed.log"
                shutil.copyfile(log_path, failed_log)
                tail = "\n".join(last)
                raise CollectorBuildError(
                    f"building the collector failed (exit code {code}); "
                    f"full output in {failed_log}; last lines:\n{tail}"
                )
            os.replace(built, staged / BINARY_NAME)
            os.replace(staged, final_dir)  # atomic: the entry appears complete or not at all
        finally:
            shutil.rmtree(work, ignore_errors=True)
        progress(f"collector: built in {time.monotonic() - started:.0f}s -> {binary}")
        return binary


# --------------------------------------------------------------------------------------
# configuration


def collector_env(
    layout: StackLayout,
    processor_token: str,
    es_logs_index: str,
    ingest_auth_dsn: str,
    es_credentials: tuple[str, str] = ("", ""),
    *,
    rate_per_s: float = 20_000,
    burst: float = 0,
    processor_endpoint: str | None = None,
) -> dict[str, str]:
    """The ``${env:...}`` variables ``collector-config/collector.yaml`` reads.
    ``es_credentials``: the elasticsearch exporter's user and password (empty: none).
    ``processor_endpoint``: a gRPC target of several replicas (``stack/dns.py``)
    instead of the one processor on loopback."""
    ports = layout.ports
    storage = layout.data("collector")
    return {
        "B2C_ES_USER": es_credentials[0],
        "B2C_ES_PASSWORD": es_credentials[1],
        "B2C_OTLP_GRPC_ENDPOINT": f"{LOOPBACK}:{ports.otlp_grpc}",
        "B2C_OTLP_HTTP_ENDPOINT": f"{LOOPBACK}:{ports.otlp_http}",
        "B2C_PROCESSOR_ENDPOINT": processor_endpoint or f"{LOOPBACK}:{ports.processor_grpc}",
        "B2C_PROCESSOR_TOKEN": processor_token,
        "B2C_ES_ENDPOINT": f"http://{LOOPBACK}:{ports.elasticsearch}",
        "B2C_ES_LOGS_INDEX": es_logs_index,
        "B2C_PROM_EXPORTER_ENDPOINT": f"{LOOPBACK}:{ports.collector_prometheus_exporter}",
        "B2C_COLLECTOR_HEALTH_ENDPOINT": f"{LOOPBACK}:{ports.collector_health}",
        "B2C_COLLECTOR_TELEMETRY_HOST": LOOPBACK,
        "B2C_COLLECTOR_TELEMETRY_PORT": str(ports.collector_telemetry),
        "B2C_COLLECTOR_STORAGE_DIR": str(storage / "file_storage"),
        # b2c_ingest_auth: where the probe tokens are, and where it keeps the last ones
        # it loaded, for a start while Postgres is down
        "B2C_INGEST_AUTH_DSN": ingest_auth_dsn,
        "B2C_INGEST_AUTH_CACHE": str(storage / "probe-tokens.json"),
        "B2C_INGEST_RATE_PER_S": repr(float(rate_per_s)),
        "B2C_INGEST_BURST": repr(float(burst)),
    }


def render_redaction_config(patterns: Sequence[str]) -> str:
    """The second ``--config``: ``redaction/custom`` masking every match of ``patterns``.

    Each pattern must compile as a Python regular expression here (fail fast, with the
    pattern named); Go's RE2 is stricter (no look-around, no back-references), and a
    pattern it refuses stops the collector at start with RE2's message in its log.
    JSON is YAML; ``$`` is doubled because the collector expands ``${...}`` in values.
    """
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise StackError(
                f"redaction pattern {pattern!r} is not a regular expression: {exc}"
            ) from exc
    escaped = [pattern.replace("$", "$$") for pattern in patterns]
    config = {"processors": {"redaction/custom": {"blocked_values": escaped}}}
    return "# Written by b2c_monitoring.stack.collector; changes are overwritten.\n" + json.dumps(
        config, indent=2
    )


def render_tls_config(files: TlsFiles) -> str:
    """The ``--config`` that serves both OTLP receivers over TLS with ``files``."""
    tls = {
        "cert_file": str(files.cert_file).replace("$", "$$"),
        "key_file": str(files.key_file).replace("$", "$$"),
    }
    config = {"receivers": {"otlp": {"protocols": {"grpc": {"tls": tls}, "http": {"tls": tls}}}}}
    return "# Written by b2c_monitoring.stack.collector; changes are overwritten.\n" + json.dumps(
        config, indent=2
    )


def validate_config(
    binary: Path,
    env: Mapping[str, str],
    config: Path | None = None,
    overlays: Sequence[Path] = (),
) -> None:
    """``otelcol-b2c validate`` on the configuration (and ``overlays``, merged over it)
    with ``env`` set (on top of ours)."""
    config_path = config or repo_root() / CONFIG
    extra = [arg for overlay in overlays for arg in ("--config", str(overlay))]
    try:
        done = subprocess.run(
            [str(binary), "validate", "--config", str(config_path), *extra],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CollectorBuildError(f"could not run {binary} validate: {exc}") from exc
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()
        raise CollectorBuildError(f"{config_path} is invalid for {binary.name}:\n{output}")


# --------------------------------------------------------------------------------------
# the part


class Collector:
    """The collector of the stack: OTLP in on loopback; job-state spans and metrics
    to the processor, metrics to Prometheus, logs to Elasticsearch."""

    name = "collector"

    def __init__(
        self,
        layout: StackLayout,
        processor_token: str,
        es_logs_index: str = "b2c-logs",
        *,
        ingest_auth_dsn: str,
        redact_patterns: Sequence[str] = (),
        rate_per_s: float = 20_000,
        burst: float = 0,
        tls: TlsFiles | None = None,
        root: Path | None = None,
        es_credentials: tuple[str, str] = ("", ""),
        processor_endpoint: str | None = None,
    ) -> None:
        self.layout = layout
        self.processor_endpoint = processor_endpoint
        self.processor_token = processor_token
        self.es_credentials = es_credentials
        self.es_logs_index = es_logs_index  # the prefix of the daily indices
        self.ingest_auth_dsn = ingest_auth_dsn
        self.rate_per_s, self.burst = rate_per_s, burst
        self.redact_patterns = tuple(redact_patterns)
        self.tls = tls
        self.root = root or repo_root()
        self._binary: Path | None = None

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG

    @property
    def redaction_config_path(self) -> Path:
        return self.layout.run(self.name) / REDACTION_CONFIG

    @property
    def tls_config_path(self) -> Path:
        return self.layout.run(self.name) / TLS_CONFIG

    def env(self) -> dict[str, str]:
        return collector_env(
            self.layout,
            self.processor_token,
            self.es_logs_index,
            self.ingest_auth_dsn,
            self.es_credentials,
            rate_per_s=self.rate_per_s,
            burst=self.burst,
            processor_endpoint=self.processor_endpoint,
        )

    def install(self, progress: Progress) -> None:
        self._binary = ensure_collector_binary(self.layout, progress, self.root)

    def prepare(self) -> Launch:
        binary = self._binary or collector_binary_path(self.layout, self.root)
        if not binary.is_file():
            raise StackError(f"the collector is not built yet ({binary}); install it first")
        self.layout.data(self.name).mkdir(parents=True, exist_ok=True)
        self.redaction_config_path.parent.mkdir(parents=True, exist_ok=True)
        self.redaction_config_path.write_text(render_redaction_config(self.redact_patterns))
        argv = [
            str(binary),
            "--config",
            str(self.config_path),
            "--config",
            str(self.redaction_config_path),
        ]
        if self.tls is not None:
            self.tls_config_path.write_text(render_tls_config(self.tls))
            argv += ["--config", str(self.tls_config_path)]
        else:
            self.tls_config_path.unlink(missing_ok=True)
        return Launch(
            argv=argv,
            env={
                **self.env(),
                # the daily index of a record is a UTC date; FormatTime(Now()) uses the zone
                "TZ": "UTC",
                # Go's GC was a fifth of the collector's CPU under load: collect less often
                # (peak memory ~110 -> ~170 MiB), and harder again near the
                # memory_limiter's 1 GiB, before it would refuse data
                "GOGC": "300",
                "GOMEMLIMIT": "800MiB",
            },
        )

    @property
    def scheme(self) -> str:
        """Of the OTLP receivers; the health, metrics and telemetry ports stay http."""
        return "https" if self.tls is not None else "http"

    def healthy(self) -> bool:
        url = f"http://{LOOPBACK}:{self.layout.ports.collector_health}/"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except Exception:
            return False

    def endpoints(self) -> dict[str, str]:
        ports = self.layout.ports
        # an https:// gRPC endpoint is how the OTel SDKs are told to use TLS
        return {
            "otlp_grpc": f"{self.scheme}://{LOOPBACK}:{ports.otlp_grpc}",
            "otlp_http": f"{self.scheme}://{LOOPBACK}:{ports.otlp_http}",
            "prometheus_exporter": f"http://{LOOPBACK}:{ports.collector_prometheus_exporter}/metrics",
            "health": f"http://{LOOPBACK}:{ports.collector_health}/",
            "telemetry": f"http://{LOOPBACK}:{ports.collector_telemetry}/metrics",
        }
