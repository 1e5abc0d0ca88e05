"""The probes install alone: a service that embeds them gets the OpenTelemetry SDK and
its exporter, not the server's FastAPI, uvicorn, Elasticsearch, psycopg or Grafana SDK.

The wheel is built from this checkout, installed into a clean virtual environment
(``uv venv``, no ``b2c-monitoring[server]``), and a job reported from there goes
through the real collector into the stack's Postgres.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Final

import httpx
import pytest

from b2c_monitoring.stack.local import LocalStack
from tests.polling import eventually

pytestmark = pytest.mark.integration

REPO: Final = Path(__file__).resolve().parent.parent
SERVER_ONLY: Final = frozenset(
    {
        "fastapi",
        "starlette",
        "uvicorn",
        "elasticsearch",
        "elastic-transport",
        "psycopg",
        "psycopg-binary",
        "psycopg-pool",
        "grafana-foundation-sdk",
        "typer",
        "rich",
        "pydantic",
        "pydantic-settings",
        "prometheus-client",
        "croniter",
        "cryptography",
        "orjson",
    }
)

REPORT_A_JOB: Final = """
import sys
from b2c_monitoring.probes import Probes, ProbeSettings

endpoint, token, tenant = sys.argv[1:4]
probes = Probes(ProbeSettings(endpoint=endpoint, token=token, service_name="light-service",
                              tenant_id=tenant))
try:
    with probes.job_run("LIGHT_SYNC", tenant_id=tenant) as job:
        job.progress(50, records_processed=7)
    print(job.job_id)
finally:
    probes.shutdown()
"""


def _uv() -> str:
    uv = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    assert Path(uv).exists(), "uv is needed to build the wheel (scripts/uv-env.sh installs it)"
    return uv


def _run(*argv: str, cwd: Path | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_"))}
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def light_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a clean virtual environment with only the probes' wheel installed."""
    uv = _uv()
    work = tmp_path_factory.mktemp("probes-install")
    _run(uv, "build", "--wheel", "--out-dir", str(work / "dist"), str(REPO), cwd=work)
    (wheel,) = (work / "dist").glob("b2c_monitoring-*.whl")
    venv = work / "venv"
    _run(uv, "venv", "--python", sys.executable, str(venv), cwd=work)
    python = venv / "bin" / "python"
    _run(uv, "pip", "install", "--python", str(python), str(wheel), cwd=work)
    return python


def _installed(python: Path) -> set[str]:
    listed = _run(_uv(), "pip", "list", "--python", str(python), "--format", "json")
    return {entry["name"].lower().replace("_", "-") for entry in json.loads(listed)}


def test_the_probes_install_without_the_server_parts(light_python: Path) -> None:
    installed = _installed(light_python)
    assert installed & SERVER_ONLY == set()
    assert {"opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-grpc"} <= installed


def test_the_b2c_command_says_to_install_the_server_parts(light_python: Path) -> None:
    done = subprocess.run(
        [str(light_python.parent / "b2c"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "pip install 'b2c-monitoring[server]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_job_reported_from_the_light_install_is_stored(
    light_python: Path, stack: LocalStack, tenant: str
) -> None:
    endpoint = f"http://127.0.0.1:{stack.layout.ports.otlp_grpc}"
    job_id = _run(
        str(light_python), "-c", REPORT_A_JOB, endpoint, stack.probe_token, tenant
    ).strip()
    uuid.UUID(job_id)

    token = stack.credentials()["token"]
    with httpx.Client(
        base_url=f"http://127.0.0.1:{stack.layout.ports.api}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ) as api:

        def succeeded() -> dict[str, object] | None:
            response = api.get(f"/api/admin/jobs/{job_id}")
            body: dict[str, object] = response.json()
            return body if response.status_code == 200 and body["status"] == "succeeded" else None

        body = eventually(succeeded, what=f"job {job_id} from the light install succeeded")
    assert body["jobType"] == "LIGHT_SYNC"
    assert body["serviceName"] == "light-service"
    assert body["tenantId"] == tenant
