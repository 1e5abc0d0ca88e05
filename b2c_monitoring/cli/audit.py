"""b2c audit list: the log of operator actions (admin tokens only)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.markup import escape

from b2c_monitoring.cli import output
from b2c_monitoring.cli.context import api_client, handle_errors
from b2c_monitoring.cli.jobs import parse_since
from b2c_monitoring.cli.output import CursorOpt, JsonOpt

app = typer.Typer(
    help="The audit log: who retried or cancelled what, and when.", no_args_is_help=True
)


def _details(details: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(details.items()))


@app.command("list")
@handle_errors
def list_entries(
    tenant: Annotated[
        list[str] | None, typer.Option("--tenant", help="Repeatable; within your token's tenants.")
    ] = None,
    action: Annotated[
        list[str] | None, typer.Option("--action", help="Repeatable, e.g. job.cancel.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="At or after: a duration back from now (30m, 24h, 7d) or an ISO time."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Entries per page.")] = 50,
    cursor: CursorOpt = None,
    json: JsonOpt = False,
) -> None:
    """List operator actions, newest first, one page at a time."""
    with api_client() as api:
        result = api.list_audit(
            tenants=tenant or [],
            actions=action or [],
            since=parse_since(since, datetime.now(UTC)) if since is not None else None,
            limit=limit,
            cursor=cursor,
        )
    output.listing(
        result,
        json,
        ["seq", "at", "who", "action", "tenant", "target", "details"],
        lambda e: (
            e["seq"],
            e["at"],
            escape(e["actorName"]),
            e["action"],
            e["tenantId"],
            escape(e["target"]),
            escape(_details(e["details"])),
        ),
        none_match="no entries match",
    )
