"""The ``b2c`` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from b2c_monitoring.cli import (
    admin,
    alerts,
    audit,
    context,
    dashboards,
    demo,
    jobs,
    monitor,
    serve,
    stack,
)

app = typer.Typer(
    name="b2c",
    help="b2c-monitoring: scheduler jobs, connected services and health of B2Connect.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _options(
    ca_cert: Annotated[
        Path | None,
        typer.Option(
            "--ca-cert",
            envvar="B2C_CA_CERT",
            help="PEM file of the CA that issued the admin API's certificate (https) "
            "(default: the local stack's own CA for its own URL, else the system's CAs)",
        ),
    ] = None,
) -> None:
    context.ca_cert_option.set(ca_cert)


app.add_typer(jobs.app, name="jobs")
app.add_typer(monitor.app, name="monitor")
app.add_typer(stack.app, name="stack")
app.add_typer(serve.app, name="serve")
app.add_typer(admin.app, name="admin")
app.add_typer(audit.app, name="audit")
app.add_typer(alerts.app, name="alerts")
app.add_typer(dashboards.app, name="dashboards")
app.command("demo")(demo.demo)


def main() -> None:
    app()
