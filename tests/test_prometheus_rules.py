"""The pipeline's recording and alerting rules: valid, and loaded by the stack's Prometheus."""

from __future__ import annotations

import shutil
import subprocess
import time

import httpx
import pytest

from b2c_monitoring.stack.base import repo_root
from b2c_monitoring.stack.local import LocalStack
from b2c_monitoring.stack.prometheus import RULES_GLOB

RULES = sorted(repo_root().glob(RULES_GLOB))
GROUPS = {"b2c-pipeline-recording", "b2c-pipeline-alerts"}
ALERTS = {
    "B2cPipelinePartDown",
    "B2cProcessorRefusingData",
    "B2cProcessorRejectingItems",
    "B2cCollectorQueueFilling",
    "B2cCollectorRefusingData",
    "B2cCollectorExportFailing",
    "B2cElasticsearchRejecting",
}


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool comes with Debian's prometheus"
)
def test_promtool_accepts_the_rules() -> None:
    assert RULES, f"no rules file matches {RULES_GLOB}"
    done = subprocess.run(
        ["promtool", "check", "rules", *map(str, RULES)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_stacks_prometheus_loads_and_evaluates_every_rule(stack: LocalStack) -> None:
    deadline = time.monotonic() + 60
    while True:
        groups = httpx.get(f"{stack.prometheus.url}/api/v1/rules").json()["data"]["groups"]
        ours = {g["name"]: g for g in groups if g["name"] in GROUPS}
        rules = [r for g in ours.values() for r in g["rules"]]
        evaluated = all(r.get("lastEvaluation", "").startswith("20") for r in rules)
        if set(ours) == GROUPS and evaluated and all(r["health"] == "ok" for r in rules):
            break
        if time.monotonic() > deadline:
            broken = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
            pytest.fail(f"rules not loaded or not healthy: groups {sorted(ours)}, {broken}")
        time.sleep(1)
    alerts = {r["name"] for r in ours["b2c-pipeline-alerts"]["rules"]}
    assert alerts >= ALERTS
    # a healthy stack fires none of them
    firing = [r["name"] for r in ours["b2c-pipeline-alerts"]["rules"] if r.get("state") == "firing"]
    assert firing == []
