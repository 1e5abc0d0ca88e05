"""b2c stack ...: the local stack of real services, as local processes."""

from __future__ import annotations

import json as jsonlib
from pathlib import Path
from typing import Annotated

import typer

from b2c_monitoring.cli import output
from b2c_monitoring.cli.context import handle_errors
from b2c_monitoring.stack.local import LocalStack, Replicas, default_layout, stored_replicas
from b2c_monitoring.stack.supervisor import tail

app = typer.Typer(
    help="Install, start and stop the local stack (Postgres, Elasticsearch, Prometheus, "
    "the collector, the processor, Redis, the admin API) under one home folder.",
    no_args_is_help=True,
)

HomeOpt = Annotated[
    Path | None,
    typer.Option(
        "--home", help="Home folder of the stack [default: .b2c in the checkout, or B2C_HOME]"
    ),
]


def _say(line: str) -> None:
    output.errors.print(f"[dim]•[/dim] {line}")


def local_stack(home: Path | None) -> LocalStack:
    return LocalStack(default_layout(home))


@app.command()
@handle_errors
def install(home: HomeOpt = None) -> None:
    """Install what is missing (Debian packages, the Elasticsearch zip, the collector
    build) without starting anything; the first collector build takes minutes."""
    local_stack(home).install(_say)
    output.console.print("[green]everything is installed[/green]")


@app.command()
@handle_errors
def up(
    home: HomeOpt = None,
    processors: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=9,
            help="Processor replicas behind the collector (round robin) [default: as the "
            "last up, else 1]",
        ),
    ] = None,
    apis: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=9,
            help="Admin API instances, sharing the hub [default: as the last up, else 1]",
        ),
    ] = None,
) -> None:
    """Install what is missing and start every part; waits until each is healthy."""
    layout = default_layout(home)
    before = stored_replicas(layout)
    replicas = Replicas(
        processors if processors is not None else before.processors,
        apis if apis is not None else before.apis,
    )
    stack = LocalStack(layout, replicas=replicas)
    stack.up(_say)
    output.console.print(f"[green]stack is up[/green] in {stack.layout.home}")
    _print_status(stack)
    print_tls(stack)
    print_console_hint(stack)


@app.command()
@handle_errors
def down(home: HomeOpt = None) -> None:
    """Stop every part (data is kept)."""
    local_stack(home).down(_say)


@app.command()
@handle_errors
def status(home: HomeOpt = None, json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show each part: down (with its log's last lines), not ready (and why) or ready."""
    stack = local_stack(home)
    if json:
        output.raw_json(jsonlib.dumps(stack.status(), indent=2))
        return
    _print_status(stack)


def print_tls(stack: LocalStack) -> None:
    """Whether the OTLP receivers and the admin API speak TLS, and what to trust."""
    files = stack.tls.files
    if files is None:
        output.console.print(
            "\n[bold]OTLP and admin API[/bold]  [yellow]plaintext, loopback only[/yellow] "
            "(B2C_TLS=off; B2C_TLS=self-signed serves TLS with the stack's own CA)"
        )
        return
    output.console.print(
        f"\n[bold]OTLP and admin API[/bold]  [green]{stack.tls.describe()}[/green]"
    )
    if files.ca_file is not None:
        output.console.print(
            f"  probes: an https:// endpoint and OTEL_EXPORTER_OTLP_CERTIFICATE={files.ca_file}\n"
            f"  CLI: finds the CA in {stack.credentials_path}; elsewhere --ca-cert {files.ca_file}"
        )


def print_console_hint(stack: LocalStack) -> None:
    """Where the admin console is and how to sign in to it."""
    url = f"{stack.api.api_url}/console/"
    output.console.print(f"\n[bold]Admin console[/bold]  {url}")
    transport = (
        "over https (trust the stack's CA in the browser, or accept its warning once)"
        if stack.tls.files is not None
        else "plain HTTP on loopback only"
    )
    output.console.print(
        f'  sign in with the admin token in {stack.credentials_path} (the "token" field),\n'
        "  or make one for a person: b2c admin tokens create --name NAME --role operator --tenant TENANT\n"
        f"  {transport}: the token stays in the browser tab's session storage"
    )


def _print_status(stack: LocalStack) -> None:
    rows = []
    parts = stack.status()["parts"]
    for part in parts:
        if not part["running"]:
            state = "down"
        elif not part["healthy"]:
            state = "unhealthy"
        else:
            state = "ready" if part["ready"] else "not ready"
        endpoints = ", ".join(f"{k}={v}" for k, v in part["endpoints"].items())
        why = part["reason"] if part["running"] else f"see b2c stack logs {part['name']}"
        rows.append((part["name"], output.status(state), part["pid"], why or "", endpoints))
    output.table(
        f"Local stack in {stack.layout.home}", ["part", "state", "pid", "why", "endpoints"], rows
    )
    for part in parts:
        if not part["running"]:
            output.errors.print(f"\n[bold]{part['name']}[/bold] is down; {part['reason']}")


@app.command()
@handle_errors
def logs(
    part: Annotated[
        str,
        typer.Argument(
            help="postgres, elasticsearch, prometheus, collector, processor, redis, api "
            "or celery-demo (processor-2, api-2, dns, ... with replicas)"
        ),
    ],
    lines: Annotated[int, typer.Option("--lines", "-n")] = 50,
    home: HomeOpt = None,
) -> None:
    """Print the last lines of a part's log file."""
    stack = local_stack(home)
    stack.supervisor.part(part)
    path = stack.layout.log(part)
    output.errors.print(f"[dim]{path}[/dim]")
    print(tail(path, lines))
