"""The collector build (ocb manifest) and its configuration, checked with the real binary.

The build test builds ``otelcol-b2c`` once per manifest and Go version into the shared
cache (``B2C_CACHE_DIR``, default ``~/.cache/b2c-monitoring``): the first run takes
several minutes, later runs take the cached binary.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from b2c_monitoring.stack.base import Ports, StackLayout, repo_root
from b2c_monitoring.stack.collector import (
    COMPONENTS,
    CONFIG,
    MANIFEST,
    Collector,
    CollectorBuildError,
    collector_binary_path,
    collector_env,
    ensure_collector_binary,
    manifest_hash,
    manifest_with_absolute_paths,
    manifest_with_output_path,
    validate_config,
)
from tests.free_ports import free_ports

NO_DATABASE = "postgresql://b2c@127.0.0.1:1/b2c"  # nothing listens on port 1


def _copy_of_the_manifest(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    (root / MANIFEST).parent.mkdir(parents=True)
    shutil.copyfile(repo_root() / MANIFEST, root / MANIFEST)
    return root


def test_manifest_hash_changes_when_the_manifest_changes(tmp_path: Path) -> None:
    root = _copy_of_the_manifest(tmp_path)
    before = manifest_hash(root)
    assert before == manifest_hash(root)
    assert len(before) == 64

    manifest = root / MANIFEST
    text = manifest.read_text()
    manifest.write_text(text.replace("filterprocessor v0.156.0", "filterprocessor v0.155.0"))
    changed = manifest_hash(root)
    assert changed != before

    manifest.write_text(text)
    assert manifest_hash(root) == before


def test_manifest_hash_follows_our_components_sources_but_not_their_tests(
    tmp_path: Path,
) -> None:
    root = _copy_of_the_manifest(tmp_path)
    shutil.copytree(repo_root() / COMPONENTS, root / COMPONENTS)
    before = manifest_hash(root)
    guard = root / COMPONENTS / "tenantguard" / "guard.go"
    guard.write_text(guard.read_text() + "\n// changed\n")
    assert manifest_hash(root) != before
    guard.write_text((repo_root() / COMPONENTS / "tenantguard" / "guard.go").read_text())
    test = root / COMPONENTS / "tenantguard" / "guard_test.go"
    test.write_text(test.read_text() + "\n// changed\n")
    assert manifest_hash(root) == before


def test_the_build_copy_of_the_manifest_names_our_components_by_absolute_path() -> None:
    text = (repo_root() / MANIFEST).read_text()
    rewritten = manifest_with_absolute_paths(text, repo_root())
    paths = [
        line.split("path:", 1)[1].strip().strip('"')
        for line in rewritten.splitlines()
        if line.strip().startswith("path:")
    ]
    assert len(paths) == 2
    for path in paths:
        assert Path(path).is_absolute()
        assert (Path(path) / "go.mod").is_file()
    assert [line for line in rewritten.splitlines() if "path:" not in line] == [
        line for line in text.splitlines() if "path:" not in line
    ]


def test_the_build_copy_of_the_manifest_points_output_path_at_the_build_folder(
    tmp_path: Path,
) -> None:
    text = (repo_root() / MANIFEST).read_text()
    rewritten = manifest_with_output_path(text, tmp_path / "build")
    assert f'  output_path: "{tmp_path / "build"}"' in rewritten.splitlines()
    assert rewritten.count("output_path:") == 1
    assert [line for line in rewritten.splitlines() if "output_path" not in line] == [
        line for line in text.splitlines() if "output_path" not in line
    ]
    with pytest.raises(CollectorBuildError):
        manifest_with_output_path("dist:\n  name: x\n", tmp_path)


def test_every_module_of_the_manifest_is_at_one_release() -> None:
    versions = {
        line.split()[-1]
        for line in (repo_root() / MANIFEST).read_text().splitlines()
        if line.strip().startswith("- gomod:") and "github.com/b2c-monitoring/" not in line
    }
    assert versions == {"v0.156.0", "v1.62.0"}  # the beta modules and their stable set


def test_collector_env_follows_the_layout(tmp_path: Path) -> None:
    layout = StackLayout(home=tmp_path, ports=Ports(offset=100))
    env = collector_env(layout, "tok", "b2c-logs-x", NO_DATABASE)
    assert env["B2C_OTLP_GRPC_ENDPOINT"] == "127.0.0.1:4417"
    assert env["B2C_OTLP_HTTP_ENDPOINT"] == "127.0.0.1:4418"
    assert env["B2C_PROCESSOR_ENDPOINT"] == "127.0.0.1:4517"
    assert env["B2C_PROCESSOR_TOKEN"] == "tok"
    assert env["B2C_ES_ENDPOINT"] == "http://127.0.0.1:9300"
    assert env["B2C_ES_LOGS_INDEX"] == "b2c-logs-x"
    assert env["B2C_PROM_EXPORTER_ENDPOINT"] == "127.0.0.1:8989"
    assert env["B2C_COLLECTOR_HEALTH_ENDPOINT"] == "127.0.0.1:13233"
    assert env["B2C_COLLECTOR_TELEMETRY_HOST"] == "127.0.0.1"
    assert env["B2C_COLLECTOR_TELEMETRY_PORT"] == "8988"
    assert Path(env["B2C_COLLECTOR_STORAGE_DIR"]).is_relative_to(layout.data("collector"))
    # every variable the configuration reads is set, and nothing else
    config = (repo_root() / CONFIG).read_text()
    assert set(re.findall(r"\$\{env:(\w+)\}", config)) == set(env)


# --------------------------------------------------------------------------------------
# with the real binary


def _free_ports() -> Ports:
    return free_ports(
        range(21000, 50000, 1000),
        "otlp_grpc",
        "otlp_http",
        "collector_health",
        "collector_telemetry",
        "collector_prometheus_exporter",
        "processor_grpc",
        "elasticsearch",
    )


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
            return int(response.status)
    except OSError:
        return 0


@pytest.fixture(scope="module")
def collector_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    layout = StackLayout(home=tmp_path_factory.mktemp("stack"))
    return ensure_collector_binary(layout, print)


@pytest.mark.integration
@pytest.mark.timeout(3600)
def test_the_real_collector_builds_and_accepts_the_real_configuration(
    tmp_path: Path, collector_binary: Path
) -> None:
    layout = StackLayout(home=tmp_path)
    assert collector_binary == collector_binary_path(layout)
    assert collector_binary.is_file()
    version = subprocess.run(
        [str(collector_binary), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert "otelcol-b2c" in version

    validate_config(
        collector_binary, collector_env(layout, "test-token", "b2c-logs-test", NO_DATABASE)
    )

    # validation is real: an unknown key is refused
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (repo_root() / CONFIG)
        .read_text()
        .replace("max_elapsed_time: 0s", "max_elapsed_time: 0s\n      no_such_key: 1", 1)
    )
    with pytest.raises(CollectorBuildError, match="no_such_key"):
        validate_config(collector_binary, collector_env(layout, "t", "b2c-logs", NO_DATABASE), bad)


@pytest.mark.integration
@pytest.mark.timeout(3600)
def test_the_collector_starts_without_processor_and_elasticsearch(
    tmp_path: Path, collector_binary: Path
) -> None:
    layout = StackLayout(home=tmp_path, ports=_free_ports())
    # nor Postgres: b2c_ingest_auth gives up its first load after start_timeout, and the
    # door answers UNAVAILABLE (retry) until the tokens are loaded
    part = Collector(layout, "test-token", "b2c-logs-test", ingest_auth_dsn=NO_DATABASE)
    part.install(print)
    launch = part.prepare()
    log = tmp_path / "collector.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            launch.argv, env={**launch.env}, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while not part.healthy():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        endpoints = part.endpoints()
        assert _status(endpoints["prometheus_exporter"]) == 200
        assert _status(endpoints["telemetry"]) == 200
        # the persistent queues live in the stack's data folder
        queues = {p.name for p in Path(launch.env["B2C_COLLECTOR_STORAGE_DIR"]).iterdir()}
        assert any("processor_traces" in name for name in queues), queues
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not part.healthy()
