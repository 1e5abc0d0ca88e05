"""The Helm chart (deploy/helm/b2c-monitoring), checked offline: ``helm lint``, ``helm
template`` with three value sets, every rendered manifest validated against the
Kubernetes JSON schemas of two releases (``kubernetes-validate --strict``), and what
the deployment relies on (the collector balancing over the headless Service, probes on
the health endpoints, one migration Job as a hook, policies, dashboards).

helm is built from the Go module proxy and cached (``stack/helm.py``); scripts/test.sh
builds it before pytest.
"""

from __future__ import annotations

import filecmp
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from b2c_monitoring.stack.base import repo_root
from b2c_monitoring.stack.helm import ensure_helm
from b2c_monitoring.stack.local import default_layout

CHART = repo_root() / "deploy" / "helm" / "b2c-monitoring"
VALUE_SETS = {
    "default": [],
    "bundled": ["-f", str(CHART / "ci" / "bundled-values.yaml")],
    "ha": ["-f", str(CHART / "ci" / "ha-values.yaml")],
}
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0")
# custom resources: kubernetes-validate ships the core schemas only
CRD_KINDS = {"ServiceMonitor"}


@pytest.fixture(scope="module")
def helm() -> Path:
    return ensure_helm(default_layout(), lambda line: print(line, flush=True))


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=120, check=False
    )


def render(helm: Path, *args: str) -> str:
    done = run_helm(helm, "template", "b2c", str(CHART), "--namespace", "monitoring", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def validate(
    manifests: list[dict[str, Any]], version: str, folder: Path
) -> subprocess.CompletedProcess[str]:
    path = folder / f"rendered-{version}.yaml"
    path.write_text(yaml.safe_dump_all(manifests))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "kubernetes_validate",
            "--strict",
            "-k",
            version,
            "--quiet",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def rendered(helm: Path) -> dict[str, list[dict[str, Any]]]:
    return {name: documents(render(helm, *args)) for name, args in VALUE_SETS.items()}


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def containers(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from doc["spec"]["template"]["spec"]["containers"]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize("values", VALUE_SETS)
def test_chart_lints(helm: Path, values: str) -> None:
    done = run_helm(helm, "lint", "--strict", str(CHART), *VALUE_SETS[values])
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("values", VALUE_SETS)
def test_rendered_manifests_match_the_kubernetes_schemas(
    rendered: dict[str, list[dict[str, Any]]], values: str, version: str, tmp_path: Path
) -> None:
    core = [d for d in rendered[values] if d["kind"] not in CRD_KINDS]
    done = validate(core, version, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ERROR" not in done.stdout + done.stderr


def test_a_broken_manifest_is_refused(helm: Path, tmp_path: Path) -> None:
    """The gate can fail: a replica count that is not a number renders, and the schema
    check refuses it."""
    docs = documents(
        render(
            helm,
            "--set",
            "processor.autoscaling.enabled=false",
            "--set",
            "processor.replicas=three",
        )
    )
    done = validate(docs, KUBERNETES_VERSIONS[0], tmp_path)
    assert done.returncode != 0


def test_service_monitors_select_the_parts_services(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    docs = rendered["ha"]
    monitors = by_kind(docs, "ServiceMonitor")
    assert len(monitors) == 3
    services = [d for d in docs if d["kind"] == "Service"]
    for monitor in monitors.values():
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        wanted = monitor["spec"]["selector"]["matchLabels"]
        matching = [s for s in services if wanted.items() <= s["metadata"]["labels"].items()]
        assert matching, monitor["metadata"]["name"]
        ports = {p["name"] for s in matching for p in s["spec"]["ports"]}
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports


def test_collector_balances_over_the_processors_headless_service(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    docs = rendered["default"]
    services = by_kind(docs, "Service")
    headless = next(s for n, s in services.items() if n.endswith("processor-headless"))
    assert headless["spec"]["clusterIP"] == "None"
    collector = next(d for n, d in by_kind(docs, "Deployment").items() if n.endswith("collector"))
    env = env_of(next(containers(collector)))
    assert env["B2C_PROCESSOR_ENDPOINT"] == (
        f"dns:///{headless['metadata']['name']}.monitoring.svc:4417"
    )
    # the processor's own listen address and port match the Service's
    processor = next(d for n, d in by_kind(docs, "Deployment").items() if n.endswith("processor"))
    assert env_of(next(containers(processor)))["B2C_PROCESSOR_LISTEN"] == "0.0.0.0:4417"
    # and the exporter's configuration reads that variable (balancer: configgrpc's
    # default round_robin)
    config = yaml.safe_load(
        next(d for n, d in by_kind(docs, "ConfigMap").items() if n.endswith("-collector"))["data"][
            "collector.yaml"
        ]
    )
    assert (
        config["exporters"]["otlp_grpc/processor_traces"]["endpoint"]
        == "${env:B2C_PROCESSOR_ENDPOINT}"
    )


def test_every_env_variable_of_the_collector_config_is_set(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    wanted = set(
        re.findall(r"\$\{env:(B2C_[A-Z_]+)\}", (CHART / "files" / "collector.yaml").read_text())
    )
    collector = next(
        d for n, d in by_kind(rendered["default"], "Deployment").items() if n.endswith("collector")
    )
    assert wanted <= set(env_of(next(containers(collector))))


def test_probes_point_at_the_health_endpoints(rendered: dict[str, list[dict[str, Any]]]) -> None:
    deployments = by_kind(rendered["default"], "Deployment")
    for suffix, port in (("-processor", "metrics"), ("-api", "http")):
        container = next(containers(next(d for n, d in deployments.items() if n.endswith(suffix))))
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port}
        assert container["resources"]["requests"]
        assert container["resources"]["limits"]


def test_migrations_run_once_as_a_hook_job(rendered: dict[str, list[dict[str, Any]]]) -> None:
    jobs = by_kind(rendered["default"], "Job")
    assert len(jobs) == 1
    job = next(iter(jobs.values()))
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,pre-upgrade"
    container = next(containers(job))
    assert container["args"] == ["admin", "migrate"]
    assert "B2C_MIGRATION_DATABASE_URL" in env_of(container)


def test_processors_autoscale_and_keep_a_budget(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["default"]
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    assert any(n.endswith("-processor") for n in hpas)
    pdbs = by_kind(docs, "PodDisruptionBudget")
    assert {n.rsplit("-", 1)[1] for n in pdbs} == {"collector", "processor", "api"}


def test_only_the_collector_reaches_the_processors(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    policies = by_kind(rendered["default"], "NetworkPolicy")
    processor = next(p for n, p in policies.items() if n.endswith("-processor"))
    grpc_rule = next(
        r for r in processor["spec"]["ingress"] if {"protocol": "TCP", "port": 4417} in r["ports"]
    )
    assert grpc_rule["from"] == [
        {
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "b2c-monitoring",
                    "app.kubernetes.io/instance": "b2c",
                    "app.kubernetes.io/component": "collector",
                }
            }
        }
    ]


def test_bundled_stores_replace_the_external_urls(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    docs = rendered["bundled"]
    assert {n.rsplit("-", 1)[1] for n in by_kind(docs, "StatefulSet")} == {
        "postgres",
        "elasticsearch",
    }
    secret = next(iter(by_kind(docs, "Secret").values()))
    assert re.fullmatch(
        r"postgresql://b2c:\w{32}@b2c-b2c-monitoring-postgres:5432/b2c",
        secret["stringData"]["owner-database-url"],
    )
    assert "example.invalid" not in yaml.safe_dump(secret)
    # an existing Secret of the operator's own: the chart makes none
    assert not by_kind(rendered["ha"], "Secret")


def test_dashboards_are_configmaps_for_the_grafana_sidecar(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    maps = [
        m
        for m in by_kind(rendered["default"], "ConfigMap").values()
        if "dashboard" in m["metadata"]["name"]
    ]
    shipped = sorted(
        (repo_root() / "dashboards" / "grafana" / "provisioning" / "dashboards" / "b2c").glob(
            "*.json"
        )
    )
    assert len(maps) == len(shipped) > 0
    for m in maps:
        assert m["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_the_charts_copies_match_the_sources() -> None:
    """The chart cannot read files outside its folder: it carries copies of the
    collector configuration and the dashboards, which must not drift."""
    assert filecmp.cmp(
        CHART / "files" / "collector.yaml",
        repo_root() / "collector-config" / "collector.yaml",
        shallow=False,
    )
    source = repo_root() / "dashboards" / "grafana" / "provisioning" / "dashboards" / "b2c"
    copies = CHART / "files" / "dashboards"
    assert sorted(p.name for p in source.glob("*.json")) == sorted(
        p.name for p in copies.glob("*.json")
    )
    for path in source.glob("*.json"):
        assert filecmp.cmp(path, copies / path.name, shallow=False), path.name


def test_every_value_is_documented_in_the_readme() -> None:
    readme = (CHART / "README.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def leaves(node: Any, prefix: str) -> Iterator[str]:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                yield from leaves(value, f"{prefix}.{key}" if prefix else key)
        else:
            yield prefix

    # a map written in flow style ({cpu: ..., memory: ...}) is one row of the table
    missing = [
        path
        for path in leaves(values, "")
        if f"`{path}`" not in readme and f"`{path.rsplit('.', 1)[0]}`" not in readme
    ]
    assert not missing, f"values missing from README.md: {missing}"
