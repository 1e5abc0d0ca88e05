"""b2c jobs ...: thin commands over the admin API."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.markup import escape

from b2c_monitoring.cli import job_commands, output
from b2c_monitoring.cli.client import ApiResult
from b2c_monitoring.cli.context import api_client, handle_errors, when_missing
from b2c_monitoring.cli.job_logs import LogFilter, follow, format_line, read_page
from b2c_monitoring.cli.output import CursorOpt, JsonOpt
from b2c_monitoring.contract import JobState
from b2c_monitoring.processors.job_flags import JobFlag
from b2c_monitoring.severity import LogLevel

app = typer.Typer(help="Scheduler jobs: list, inspect, retry and cancel.", no_args_is_help=True)

app.command("retry")(job_commands.retry)
app.command("cancel")(job_commands.cancel)
app.command("commands")(job_commands.commands)

_JOBS_YOU_SEE = "`b2c jobs list` shows the jobs you can see"
_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime) -> datetime:
    """``30m``, ``24h``, ``7d`` (before ``now``) or an ISO 8601 time (without offset: UTC)."""
    value = text.strip()
    duration = _DURATION.fullmatch(value)
    if duration is not None:
        amount, unit = duration.groups()
        return now - timedelta(**{_UNITS[unit]: int(amount)})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither a duration (30m, 24h, 7d) nor an ISO 8601 time"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _flags(job: dict[str, Any]) -> str:
    return " ".join(f"[bold yellow]{f}[/bold yellow]" for f in job.get("flags", [])) or "-"


def _short(text: str | None, width: int = 60) -> str | None:
    if text is None or len(text) <= width:
        return text
    return text[: width - 1] + "…"


@app.command("list")
@handle_errors
def list_jobs(
    status: Annotated[
        list[JobState] | None, typer.Option("--status", help="Repeatable: any of these states.")
    ] = None,
    job_type: Annotated[
        str | None, typer.Option("--type", help="The job type, e.g. ERP_SYNC.")
    ] = None,
    tenant: Annotated[
        list[str] | None, typer.Option("--tenant", help="Repeatable; within your token's tenants.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Created since: a duration back from now (30m, 24h, 7d) or an ISO time."),
    ] = None,
    flag: Annotated[
        JobFlag | None,
        typer.Option(help="Only stalled (running, silent) or overdue (not started)."),
    ] = None,
    search: Annotated[
        str | None, typer.Option(help="Text within the error message or the metadata.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Jobs per page.")] = 50,
    cursor: CursorOpt = None,
    json: JsonOpt = False,
) -> None:
    """List jobs of your tenants, newest first, one page at a time."""
    created_since = parse_since(since, datetime.now(UTC)) if since is not None else None
    with api_client() as api:
        result = api.list_jobs(
            statuses=[s.value for s in status or []],
            job_type=job_type,
            tenants=tenant or [],
            since=created_since,
            flag=flag.value if flag is not None else None,
            search=search,
            limit=limit,
            cursor=cursor,
        )
    output.listing(
        result,
        json,
        ["id", "type", "tenant", "status", "progress", "created", "flags", "error"],
        lambda job: (
            job["id"],
            job["jobType"],
            job["tenantId"],
            output.status(job["status"]),
            f"{job['progressPercent']} %",
            job["createdAt"],
            _flags(job),
            _short(job["errorMessage"]),
        ),
        none_match="no jobs match",
    )


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
    with api_client() as api, when_missing(f"job {job_id}", _JOBS_YOU_SEE):
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


@app.command("logs")
@handle_errors
def logs(
    job_id: Annotated[str, typer.Argument(help="The job's id (scheduler.job.id).")],
    tenant: Annotated[
        str | None, typer.Option(help="The job's tenant, if the id exists in several.")
    ] = None,
    level: Annotated[
        LogLevel | None, typer.Option(help="At least this level (warn: WARN, ERROR and FATAL).")
    ] = None,
    search: Annotated[
        str | None, typer.Option(help="Only lines whose message has all these words.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Lines since: a duration back from now (30m, 24h) or an ISO time."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Lines per page.")] = 100,
    cursor: CursorOpt = None,
    follow_: Annotated[
        bool,
        typer.Option(
            "--follow", "-f", help="Keep printing new lines until the job ends (or Ctrl-C)."
        ),
    ] = False,
    json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print exactly the API's JSON page; with --follow one page per line (NDJSON).",
        ),
    ] = False,
) -> None:
    """Print a job's execution log, oldest first; --follow tails a running job."""
    log_filter = LogFilter(
        tenant=tenant,
        level=level.value if level is not None else None,
        search=search,
        since=parse_since(since, datetime.now(UTC)) if since is not None else None,
        limit=limit,
    )

    def print_page(result: ApiResult) -> None:
        if json:
            output.raw_json(result.text)
        else:
            for line in result.data["items"]:
                output.console.print(format_line(line), soft_wrap=True, highlight=False)
        sys.stdout.flush()  # a pipe is block-buffered; a follower wants each page now

    with api_client() as api, when_missing(f"job {job_id}", _JOBS_YOU_SEE):
        if not follow_:
            result = read_page(api, job_id, log_filter, cursor)
            print_page(result)
            if not json and result.data["nextCursor"] and len(result.data["items"]) >= limit:
                output.next_page(result.data["nextCursor"])
            return
        try:
            job = follow(api, job_id, log_filter, print_page, cursor=cursor)
        except KeyboardInterrupt:
            raise typer.Exit(code=130) from None
    # the final state: on stderr with --json, so that stdout stays one page per line
    console = output.errors if json else output.console
    error = f": {escape(job['errorMessage'])}" if job.get("errorMessage") else ""
    console.print(f"job {escape(job['id'])} {output.status(job['status'])}{error}")
