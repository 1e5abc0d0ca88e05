"""b2c admin grafana-role ...: Grafana logins that read only their tenants' rows."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from b2c_monitoring.cli import output
from b2c_monitoring.cli.context import handle_errors
from b2c_monitoring.stack.base import StackLayout
from b2c_monitoring.stack.local import default_layout
from b2c_monitoring.stack.postgres import DATABASE, SYSTEM_USER, Postgres
from b2c_monitoring.storage import grafana_roles

app = typer.Typer(
    help="Postgres logins for Grafana data sources, each bound to tenants by row-level "
    "security (docs/security.md, Stores).",
    no_args_is_help=True,
)

HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", help="Home of the local stack [default: .b2c, or B2C_HOME]"),
]
DsnOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="A DSN that may create roles and write grafana_tenants, on the b2c database "
        "[default: the local stack's superuser]",
    ),
]


def _conninfo(home: Path | None, database_url: str | None) -> tuple[str, StackLayout | None]:
    if database_url is not None:
        return database_url, None
    layout = default_layout(home)
    return Postgres(layout).url_for(SYSTEM_USER, DATABASE), layout


@app.command("create")
@handle_errors
def create(
    tenant: Annotated[
        list[str], typer.Option("--tenant", help="Repeatable: a tenant the login may read.")
    ],
    name: Annotated[
        str | None,
        typer.Option(help="The login's name [default: b2c_grafana_<first tenant>]."),
    ] = None,
    home: HomeOpt = None,
    database_url: DsnOpt = None,
) -> None:
    """Create a Grafana login that reads exactly these tenants (or set an existing
    login's tenants), and print its password, which is shown this once."""
    conninfo, layout = _conninfo(home, database_url)
    role = name or grafana_roles.role_name_for(tenant[0])
    password = secrets.token_urlsafe(24)
    made = grafana_roles.grant_tenants(conninfo, role, tenant, password)
    output.fields(f"Grafana role {role}", [("tenants", ", ".join(sorted(set(tenant))))])
    if not made:
        output.errors.print("the role existed: its tenants were replaced, its password kept")
        return
    if layout is not None:
        output.errors.print(
            f"data source: host 127.0.0.1:{layout.ports.postgres}, database {DATABASE}, "
            f"user {role}, sslmode disable"
        )
    # the password alone on stdout's last line, so that scripts can take it with tail -n1
    output.errors.print("[bold]password[/bold] (shown once; store it now):")
    output.console.print(escape(password), soft_wrap=True, highlight=False)


@app.command("list")
@handle_errors
def list_roles(home: HomeOpt = None, database_url: DsnOpt = None) -> None:
    """Every Grafana login and the tenants it reads."""
    conninfo, _ = _conninfo(home, database_url)
    for role, tenants in grafana_roles.tenants_of(conninfo).items():
        output.console.print(f"{escape(role)}\t{escape(', '.join(tenants))}", highlight=False)
