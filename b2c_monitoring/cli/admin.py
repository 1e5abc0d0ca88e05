"""b2c admin ...: administration over the admin API (tokens)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from b2c_monitoring.auth import Role
from b2c_monitoring.cli import grafana_roles, output
from b2c_monitoring.cli.context import api_client, handle_errors, when_missing
from b2c_monitoring.cli.output import JsonOpt

app = typer.Typer(help="Administration: admin API tokens.", no_args_is_help=True)
tokens = typer.Typer(
    help="Admin API tokens: a role (viewer, operator, admin) and a tenant scope each.",
    no_args_is_help=True,
)
app.add_typer(tokens, name="tokens")
app.add_typer(grafana_roles.app, name="grafana-role")


def _tenants(token: dict[str, Any]) -> str:
    return ", ".join(token["tenants"]) if token["tenants"] is not None else "(every tenant)"


@tokens.command("create")
@handle_errors
def create(
    name: Annotated[str, typer.Option(help="What the token is for, e.g. ci-reader.")],
    role: Annotated[Role, typer.Option(help="viewer reads; operator may retry and cancel.")],
    tenant: Annotated[
        list[str] | None,
        typer.Option(
            "--tenant",
            help="Repeatable: the tenants it may see [default: every tenant, which only an "
            "admin of every tenant may grant].",
        ),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Create a token and print its secret, which is shown this once."""
    with api_client() as api:
        result = api.create_token(name, role.value, tenant or None)
    if json:
        output.raw_json(result.text)
        return
    token = result.data
    output.fields(
        f"Token {token['id']}",
        [("name", token["name"]), ("role", token["role"]), ("tenants", _tenants(token))],
    )
    # the secret alone on stdout's last line, so that scripts can take it with tail -n1
    output.errors.print("[bold]secret[/bold] (shown once; store it now):")
    output.console.print(escape(token["secret"]), soft_wrap=True, highlight=False)


@tokens.command("list")
@handle_errors
def list_tokens(
    all_: Annotated[bool, typer.Option("--all", help="Also list revoked tokens.")] = False,
    json: JsonOpt = False,
) -> None:
    """List the tokens within your tenants (never their secrets)."""
    with api_client() as api:
        result = api.list_tokens(include_revoked=all_)
    if json:
        output.raw_json(result.text)
        return
    items = result.data["items"]
    output.table(
        None,
        ["id", "name", "role", "tenants", "created", "last used", "revoked"],
        [
            (
                t["id"],
                escape(t["name"]),
                t["role"],
                escape(_tenants(t)),
                t["createdAt"],
                t["lastUsedAt"],
                t["revokedAt"],
            )
            for t in items
        ],
    )
    if not items:
        output.console.print("[dim]no tokens[/dim]")


@tokens.command("revoke")
@handle_errors
def revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (see 'b2c admin tokens list').")],
    json: JsonOpt = False,
) -> None:
    """Revoke a token: from now on it is refused (401)."""
    with (
        api_client() as api,
        when_missing(f"token {token_id}", "`b2c admin tokens list` shows the tokens you can see"),
    ):
        result = api.revoke_token(token_id)
    if json:
        output.raw_json(result.text)
        return
    token = result.data
    output.console.print(
        f"revoked token {token['id']} ({escape(token['name'])}) at {token['revokedAt']}"
    )
