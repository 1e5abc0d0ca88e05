"""b2c dashboards: generate the Grafana folder and check it (schema, no diff, live queries)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from b2c_monitoring.cli import output
from b2c_monitoring.cli.context import handle_errors

app = typer.Typer(
    help="Grafana dashboards as code: build the JSON and provisioning, check them.",
    no_args_is_help=True,
)

_FOLDER = "dashboards"


@app.command()
@handle_errors
def build(
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if the committed files differ")
    ] = False,
) -> None:
    """Regenerate dashboards/: the Grafana folder (dashboard JSON, data source and dashboard
    provisioning) and the README that lists every panel."""
    from b2c_monitoring.dashboards import build as gen

    if check:
        changed = gen.stale()
        if changed:
            output.fail(
                f"{len(changed)} generated file(s) differ from the code: {', '.join(changed)}",
                "run `b2c dashboards build` and commit the result",
            )
            raise typer.Exit(1)
        output.console.print(f"[green]{_FOLDER} is up to date[/green]")
        return
    written = gen.write()
    output.console.print(f"wrote {len(written)} file(s) under {_FOLDER}/")


def _since(text: str) -> timedelta:
    from b2c_monitoring.dashboards.live import parse_interval

    try:
        return parse_interval(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r}: give a duration such as 30m, 6h or 2d") from exc


@app.command()
@handle_errors
def check(
    live: Annotated[
        bool,
        typer.Option("--live", help="Also run every panel's query against the stack's stores"),
    ] = False,
    home: Annotated[Path | None, typer.Option("--home", help="Home folder of the stack")] = None,
    since: Annotated[str, typer.Option(help="Time range of the live check, back from now")] = "1h",
    tenant: Annotated[
        list[str] | None,
        typer.Option(help="Tenants to select (repeatable); default: all the variable offers"),
    ] = None,
) -> None:
    """Validate the committed dashboards: the SDK's schema, no diff to a fresh build, and
    with --live every panel's query returning the columns it reads and some data."""
    from b2c_monitoring.dashboards import build as gen

    failed = False
    changed = gen.stale()
    if changed:
        output.fail(
            f"not up to date with the code: {', '.join(changed)}", "run `b2c dashboards build`"
        )
        failed = True
    dashboards = gen.load()
    for uid, data in dashboards.items():
        for problem in gen.schema_problems(data):
            output.fail(f"{uid}: {problem}")
            failed = True
    if live:
        failed = _check_live(dashboards, home, _since(since), tenant) or failed
    if failed:
        raise typer.Exit(1)
    output.console.print(f"[green]{len(dashboards)} dashboard(s) valid[/green]")


def _check_live(
    dashboards: dict[str, dict[str, object]],
    home: Path | None,
    since: timedelta,
    tenants: list[str] | None,
) -> bool:
    from b2c_monitoring.cli.stack import local_stack
    from b2c_monitoring.dashboards.live import Stores, TimeRange, check_dashboard
    from b2c_monitoring.storage.logs import make_client

    stack = local_stack(home)
    stores = Stores(
        postgres_url=stack.postgres.url,
        prometheus_url=stack.prometheus.url,
        elasticsearch=make_client(stack.elasticsearch.grafana_url),
    )
    window = TimeRange.last(since)
    chosen = {"tenant": tenants} if tenants else None
    rows = []
    failed = False
    for data in dashboards.values():
        for result in check_dashboard(data, stores, window, chosen):
            failed = failed or bool(result.problems)
            state = "[red]broken[/red]" if result.problems else "[green]ok[/green]"
            rows.append(
                (result.dashboard, result.title, state, result.rows, "; ".join(result.problems))
            )
    output.table("Panels", ["dashboard", "panel", "query", "rows/series", "problems"], rows)
    return failed
