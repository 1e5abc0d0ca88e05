"""b2c jobs ...: thin commands over the admin API."""

from __future__ import annotations

from typing import Annotated

import typer

from b2c_monitoring.cli import output
from b2c_monitoring.cli.context import api_client, handle_errors

app = typer.Typer(help="Scheduler jobs: list, inspect, retry and cancel.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print exactly the API's JSON.")]


@app.command("show")
@handle_errors
def show(
    job_id: Annotated[str, typer.Argument(help="The job's id (scheduler.job.id).")],
    tenant: Annotated[
        str | None, typer.Option(help="The job's tenant, if the id exists in several.")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Show one job: its state, timestamps, metadata and timeline."""
    with api_client() as api:
        result = api.get_job(job_id, tenant)
    if json:
        output.raw_json(result.text)
        return
    job = result.data
    output.fields(
        f"Job {job['id']}",
        [
            ("type", job["jobType"]),
            ("tenant", job["tenantId"]),
            ("status", output.status(job["status"])),
            ("progress", f"{job['progressPercent']} %"),
            ("created", job["createdAt"]),
            ("started", job["startedAt"]),
            ("completed", job["completedAt"]),
            ("error", job["errorMessage"]),
            ("attempt", job["attempt"]),
            ("retry of", job["retryOf"]),
            ("service", job["serviceName"]),
            *[(f"metadata.{k}", v) for k, v in sorted(job["metadata"].items())],
        ],
    )
    if job["timeline"]:
        output.table(
            "Timeline",
            ["at", "status", "progress", "error"],
            [
                (
                    e["at"],
                    output.status(e["status"]),
                    f"{e['progressPercent']} %",
                    e["errorMessage"],
                )
                for e in job["timeline"]
            ],
        )
