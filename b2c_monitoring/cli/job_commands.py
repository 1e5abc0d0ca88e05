"""b2c jobs retry|cancel: ask a job's service to act on it (registered in cli/jobs.py)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from b2c_monitoring.cli import output
from b2c_monitoring.cli.context import api_client, handle_errors, when_missing
from b2c_monitoring.cli.output import JsonOpt

JobIdArg = Annotated[str, typer.Argument(help="The job's id (scheduler.job.id).")]
TenantOpt = Annotated[
    str | None, typer.Option(help="The job's tenant, if the id exists in several.")
]


def _request(kind: str, job_id: str, tenant: str | None, json: bool) -> None:
    with (
        api_client() as api,
        when_missing(f"job {job_id}", "`b2c jobs list` shows the jobs you can see"),
    ):
        result = api.job_command(job_id, kind, tenant)
    if json:
        output.raw_json(result.text)
        return
    command: dict[str, Any] = result.data
    retry = command.get("retry") or {}
    output.fields(
        f"{kind.capitalize()} of job {escape(command['jobId'])} requested",
        [
            ("command", command["id"]),
            ("state", output.status(command["state"])),
            ("service", command["serviceName"]),
            ("requested by", command["requestedBy"]),
            ("requested at", command["requestedAt"]),
            *([("new job", retry["newJobId"]), ("attempt", retry["attempt"])] if retry else []),
        ],
    )
    follow = retry.get("newJobId") or command["jobId"]
    output.console.print(
        f"[dim]a job runner of {escape(command['serviceName'])} acts on it; "
        f"follow with: b2c jobs show {escape(follow)}[/dim]",
        soft_wrap=True,
    )


@handle_errors
def retry(job_id: JobIdArg, tenant: TenantOpt = None, json: JsonOpt = False) -> None:
    """Retry a failed or cancelled job: its service's job runner runs it again as a new job."""
    _request("retry", job_id, tenant, json)


@handle_errors
def cancel(job_id: JobIdArg, tenant: TenantOpt = None, json: JsonOpt = False) -> None:
    """Cancel a pending or running job: its service's job runner stops it."""
    _request("cancel", job_id, tenant, json)


@handle_errors
def commands(job_id: JobIdArg, tenant: TenantOpt = None, json: JsonOpt = False) -> None:
    """The retry and cancel commands of a job and what became of them (newest first)."""
    with (
        api_client() as api,
        when_missing(f"job {job_id}", "`b2c jobs list` shows the jobs you can see"),
    ):
        result = api.job_commands(job_id, tenant)
    if json:
        output.raw_json(result.text)
        return
    items: list[dict[str, Any]] = result.data["items"]
    output.table(
        f"Commands of job {escape(job_id)}",
        ["kind", "state", "service", "requested at", "requested by", "outcome"],
        [
            (
                c["kind"],
                output.status(c["state"]),
                escape(c["serviceName"]),
                c["requestedAt"],
                escape(c["requestedBy"]),
                escape(_outcome(c)),
            )
            for c in items
        ],
    )
    if any(c["state"] == "expired" for c in items):
        output.console.print(
            "[dim]expired: no job runner of the service took the command in time; start the "
            "service with its runner (or the Celery / APScheduler integration) and ask again[/dim]",
            soft_wrap=True,
        )


def _outcome(command: dict[str, Any]) -> str:
    result = command.get("result") or {}
    if "error" in result:
        return str(result["error"])
    if "newJobId" in result:
        return f"new job {result['newJobId']}"
    return "-"
