"""b2c admin ...: administration over the admin API (tokens), and the database schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.markup import escape

from b2c_monitoring.auth import Role
from b2c_monitoring.cli import grafana_roles, output
from b2c_monitoring.cli.context import api_client, handle_errors, when_missing
from b2c_monitoring.cli.monitor import parse_duration
from b2c_monitoring.cli.output import JsonOpt

app = typer.Typer(
    help="Administration: admin API tokens, the database schema.", no_args_is_help=True
)
tokens = typer.Typer(
    help="Admin API tokens: a role (viewer, operator, admin, probe), a tenant scope, "
    "optionally an expiry and (probe tokens) the services they act for.",
    no_args_is_help=True,
)
app.add_typer(tokens, name="tokens")
app.add_typer(grafana_roles.app, name="grafana-role")


def _tenants(token: dict[str, Any]) -> str:
    return ", ".join(token["tenants"]) if token["tenants"] is not None else "(every tenant)"


def _services(token: dict[str, Any]) -> str:
    services = token.get("services")
    return ", ".join(services) if services is not None else "(any)"


def expiry(expires_in: str | None, expires_at: str | None, now: datetime) -> datetime | None:
    """The instant a new token ends: ``now`` plus ``30d``, ``12h``, ... or an ISO 8601
    time (without offset: UTC); None: never."""
    if expires_in is not None and expires_at is not None:
        raise typer.BadParameter("give --expires-in or --expires-at, not both")
    if expires_in is not None:
        return now + parse_duration(expires_in)
    if expires_at is None:
        return None
    try:
        moment = datetime.fromisoformat(expires_at.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{expires_at!r} is not an ISO 8601 time such as 2027-01-31T00:00:00Z",
            param_hint="--expires-at",
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


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
    expires_in: Annotated[
        str | None,
        typer.Option(
            "--expires-in", help="It ends after this long: 90m, 12h, 30d [default: never]."
        ),
    ] = None,
    expires_at: Annotated[
        str | None,
        typer.Option("--expires-at", help="It ends at this ISO 8601 time (no offset: UTC)."),
    ] = None,
    service: Annotated[
        list[str] | None,
        typer.Option(
            "--service",
            help="Repeatable, --role probe only: the service.name values it may act for "
            "[default: any service].",
        ),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Create a token and print its secret, which is shown this once."""
    if service and role is not Role.PROBE:
        raise typer.BadParameter(
            f"--service binds a probe token; a {role.value} token cannot have services "
            "(use --role probe)",
            param_hint="--service",
        )
    ends = expiry(expires_in, expires_at, datetime.now(UTC))
    with api_client() as api:
        result = api.create_token(
            name, role.value, tenant or None, expires_at=ends, services=service or None
        )
    if json:
        output.raw_json(result.text)
        return
    token = result.data
    shown = [("name", token["name"]), ("role", token["role"]), ("tenants", _tenants(token))]
    if token["role"] == Role.PROBE.value:
        shown.append(("services", _services(token)))
    shown.append(("expires", token["expiresAt"] or "never"))
    output.fields(f"Token {token['id']}", shown)
    # the secret alone on stdout's last line, so that scripts can take it with tail -n1
    output.errors.print("[bold]secret[/bold] (shown once; store it now):")
    output.console.print(escape(token["secret"]), soft_wrap=True, highlight=False)


@tokens.command("list")
@handle_errors
def list_tokens(
    all_: Annotated[bool, typer.Option("--all", help="Also list revoked tokens.")] = False,
    json: JsonOpt = False,
) -> None:
    """List the tokens within your tenants (never their secrets), with their state
    (active, expired, revoked) and expiry."""
    with api_client() as api:
        result = api.list_tokens(include_revoked=all_)
    if json:
        output.raw_json(result.text)
        return
    items = result.data["items"]
    output.table(
        None,
        ["id", "name", "role", "tenants", "services", "state", "expires", "created", "last used"],
        [
            (
                t["id"],
                escape(t["name"]),
                t["role"],
                escape(_tenants(t)),
                escape(_services(t)) if t["role"] == Role.PROBE.value else "-",
                t["state"],
                t["expiresAt"] or "never",
                t["createdAt"],
                t["lastUsedAt"],
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


@app.command()
@handle_errors
def migrate(json: JsonOpt = False) -> None:
    """Apply the database migrations that are missing, once, as the schema's owner
    (B2C_MIGRATION_DATABASE_URL, else B2C_DATABASE_URL); what the Helm chart's hook Job
    runs. Safe beside running processors: migrations take an advisory lock."""
    import json as jsonlib

    from b2c_monitoring.settings import load_settings
    from b2c_monitoring.storage.migrations import migrate as apply_migrations

    settings = load_settings()
    applied = apply_migrations(settings.migration_database_url or settings.database_url)
    if json:
        output.raw_json(jsonlib.dumps({"applied": applied}))
        return
    if applied:
        output.console.print(f"applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        output.console.print("the schema is up to date")
