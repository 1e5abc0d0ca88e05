"""b2c alerts: list, show, acknowledge and silence alerts; manage rules, channels,
maintenance windows and job schedules. Thin: options in, one API call, output out."""

from __future__ import annotations

import json as jsonlib
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape

from b2c_monitoring.cli import output
from b2c_monitoring.cli.context import api_client, handle_errors, when_missing
from b2c_monitoring.cli.output import JsonOpt
from b2c_monitoring.errors import B2CError

app = typer.Typer(
    help="Alerts: list, show, acknowledge, silence; rules and more.", no_args_is_help=True
)
rules_app = typer.Typer(help="Alert rules of your tenants.", no_args_is_help=True)
channels_app = typer.Typer(help="Notification channels (admin).", no_args_is_help=True)
maintenance_app = typer.Typer(help="Maintenance windows.", no_args_is_help=True)
schedules_app = typer.Typer(
    help="Expected schedules of job types (missed runs).", no_args_is_help=True
)
app.add_typer(rules_app, name="rules")
app.add_typer(channels_app, name="channels")
app.add_typer(maintenance_app, name="maintenance")
app.add_typer(schedules_app, name="schedules")

TenantOpt = Annotated[
    str | None, typer.Option("--tenant", help="The tenant; needed when your token sees several.")
]

_ALERTS_YOU_SEE = "`b2c alerts list` shows the alerts you can see"
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """``90s``, ``30m``, ``2h``, ``7d`` in seconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise B2CError(f"{text!r} is not a duration; write e.g. 90s, 30m, 2h or 7d")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _value(text: str) -> Any:
    try:
        return jsonlib.loads(text)
    except ValueError:
        return text


def _path(*parts: str) -> str:
    return "/".join(quote(p, safe="") for p in parts)


@app.command("list")
@handle_errors
def list_alerts(
    state: Annotated[
        list[str] | None, typer.Option(help="Repeatable: firing, acknowledged, resolved.")
    ] = None,
    severity: Annotated[
        list[str] | None, typer.Option(help="Repeatable: info, warning, critical.")
    ] = None,
    kind: Annotated[list[str] | None, typer.Option(help="Repeatable, e.g. service_down.")] = None,
    service: Annotated[str | None, typer.Option(help="Alerts about this service.")] = None,
    tenant: Annotated[
        list[str] | None, typer.Option(help="Repeatable; within your tenants.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    cursor: Annotated[
        str | None, typer.Option(help="The next-page cursor of a previous page.")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Alerts of your tenants, newest first."""
    params = {
        "state": state,
        "severity": severity,
        "kind": kind,
        "service": service,
        "tenant": tenant,
        "limit": limit,
        "cursor": cursor,
    }
    with api_client() as api:
        result = api.request("GET", "/api/admin/alerts", params)
    output.listing(
        result,
        json,
        ["id", "state", "severity", "kind", "title", "started", "tenant"],
        lambda a: (
            a["id"],
            output.status(a["state"]),
            a["severity"],
            a["kind"],
            escape(a["title"]),
            a["startedAt"],
            a["tenantId"],
        ),
        none_match="no alerts match",
    )


@app.command("show")
@handle_errors
def show(alert_id: str, json: JsonOpt = False) -> None:
    """One alert: its fields, affected jobs, history and notification deliveries."""
    with api_client() as api, when_missing(f"alert {alert_id}", _ALERTS_YOU_SEE):
        result = api.request("GET", f"/api/admin/alerts/{_path(alert_id)}")
    if json:
        output.raw_json(result.text)
        return
    body = result.data
    a = body["alert"]
    output.fields(
        f"alert {a['id']}",
        [
            ("title", escape(a["title"])),
            ("state", output.status(a["state"])),
            ("severity", a["severity"]),
            ("kind", a["kind"]),
            ("tenant", a["tenantId"]),
            ("service", a["serviceName"]),
            ("job type", a["jobType"]),
            ("started", a["startedAt"]),
            ("fired", a["fireCount"]),
            ("acknowledged", a["acknowledgedBy"]),
            ("resolved", a["resolvedAt"]),
            ("silenced until", a["silencedUntil"]),
        ],
    )
    jobs = a["details"].get("affectedJobs") or []
    if jobs:
        output.table(
            f"affected jobs ({len(jobs)})",
            ["job", "type", "failed at", "called services (status then -> now)"],
            [
                (
                    j["jobId"],
                    j["jobType"],
                    j["failedAt"],
                    ", ".join(
                        f"{c['name']} ({c['statusAtFailure']} -> {c['statusNow']})"
                        for c in j["calledServices"]
                    ),
                )
                for j in jobs
            ],
        )
    output.table(
        "history",
        ["at", "event", "by"],
        [(e["at"], e["event"], e["actor"]) for e in body["history"]],
    )
    if body["notifications"]:
        output.table(
            "notifications",
            ["channel", "event", "state", "attempts", "last error"],
            [
                (
                    n["channelName"],
                    n["event"],
                    n["state"],
                    n["attempts"],
                    escape(n["lastError"] or ""),
                )
                for n in body["notifications"]
            ],
        )


@app.command("ack")
@handle_errors
def ack(alert_id: str, json: JsonOpt = False) -> None:
    """Acknowledge a firing alert (operator)."""
    with api_client() as api, when_missing(f"alert {alert_id}", _ALERTS_YOU_SEE):
        result = api.request("POST", f"/api/admin/alerts/{_path(alert_id)}/acknowledge")
    output.answer(result, json, f"acknowledged {alert_id}")


@app.command("silence")
@handle_errors
def silence(
    alert_id: str,
    duration: Annotated[str, typer.Option("--for", help="How long: 30m, 2h, 1d.")],
    reason: Annotated[str | None, typer.Option(help="Why, for the history.")] = None,
    json: JsonOpt = False,
) -> None:
    """Mute an alert's notifications for a time (operator)."""
    body = {"durationS": parse_duration(duration), "reason": reason}
    with api_client() as api, when_missing(f"alert {alert_id}", _ALERTS_YOU_SEE):
        result = api.request("POST", f"/api/admin/alerts/{_path(alert_id)}/silence", body=body)
    output.answer(result, json, f"silenced {alert_id} until {result.data['silencedUntil']}")


# ---- rules -------------------------------------------------------------------------------


@rules_app.command("list")
@handle_errors
def rules_list(
    tenant: Annotated[list[str] | None, typer.Option()] = None, json: JsonOpt = False
) -> None:
    """Alert rules of your tenants."""
    with api_client() as api:
        result = api.request("GET", "/api/admin/alert-rules", {"tenant": tenant})
    output.listing(
        result,
        json,
        ["id", "tenant", "name", "kind", "severity", "cooldown s", "condition"],
        lambda r: (
            r["id"],
            r["tenantId"],
            escape(r["name"]),
            r["kind"],
            r["severity"],
            r["cooldownS"],
            escape(" ".join(f"{k}={v}" for k, v in r["condition"].items() if k != "kind")),
        ),
    )


@rules_app.command("create")
@handle_errors
def rules_create(
    name: Annotated[str, typer.Option(help="Unique within the tenant.")],
    kind: Annotated[
        str,
        typer.Option(
            help="job_failed, job_stalled, service_down, latency_above, "
            "resource_above, error_rate_above, component_unhealthy"
        ),
    ],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="Repeatable key=value of the condition, e.g. checks=3, "
            "service=enventa-erp, thresholdMs=500.",
        ),
    ] = None,
    severity: Annotated[str, typer.Option(help="info, warning or critical.")] = "warning",
    cooldown: Annotated[
        str, typer.Option(help="Reopen instead of paging again within this.")
    ] = "5m",
    tenant: TenantOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create an alert rule (operator)."""
    condition: dict[str, Any] = {"kind": kind}
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise B2CError(f"--param {item!r}: write key=value")
        condition[key.strip()] = _value(value.strip())
    body = {
        "tenantId": tenant,
        "name": name,
        "severity": severity,
        "cooldownS": parse_duration(cooldown),
        "condition": condition,
    }
    with api_client() as api:
        result = api.request("POST", "/api/admin/alert-rules", body=body)
    output.answer(result, json, f"created rule {result.data['id']}")


@rules_app.command("delete")
@handle_errors
def rules_delete(rule_id: str) -> None:
    """Delete an alert rule (operator); its open alerts resolve."""
    with (
        api_client() as api,
        when_missing(
            f"alert rule {rule_id}", "`b2c alerts rules list` shows the rules you can see"
        ),
    ):
        api.request("DELETE", f"/api/admin/alert-rules/{_path(rule_id)}")
    output.console.print(f"deleted rule {rule_id}")


# ---- channels ----------------------------------------------------------------------------


@channels_app.command("list")
@handle_errors
def channels_list(json: JsonOpt = False) -> None:
    """Notification channels of your tenants (secrets are never shown)."""
    with api_client() as api:
        result = api.request("GET", "/api/admin/notification-channels")
    output.listing(
        result,
        json,
        ["id", "tenant", "name", "kind", "min severity", "target", "secret"],
        lambda c: (
            c["id"],
            c["tenantId"],
            escape(c["name"]),
            c["kind"],
            c["minSeverity"],
            escape(str(c["config"].get("url") or ", ".join(c["config"].get("to", [])))),
            "set" if c["hasSecret"] else "-",
        ),
    )


@channels_app.command("create")
@handle_errors
def channels_create(
    name: Annotated[str, typer.Option()],
    kind: Annotated[str, typer.Option(help="webhook, slack or email.")],
    url: Annotated[str | None, typer.Option(help="webhook and slack.")] = None,
    secret: Annotated[
        str | None,
        typer.Option(
            envvar="B2C_CHANNEL_SECRET",
            help="webhook: HMAC key; email: SMTP password (or B2C_CHANNEL_SECRET).",
        ),
    ] = None,
    smtp_host: Annotated[str | None, typer.Option()] = None,
    smtp_port: Annotated[int | None, typer.Option()] = None,
    smtp_username: Annotated[str | None, typer.Option()] = None,
    smtp_starttls: Annotated[bool, typer.Option()] = False,
    mail_from: Annotated[str | None, typer.Option()] = None,
    mail_to: Annotated[list[str] | None, typer.Option(help="Repeatable.")] = None,
    min_severity: Annotated[str, typer.Option()] = "info",
    tenant: TenantOpt = None,
    json: JsonOpt = False,
) -> None:
    """Add a notification channel (admin)."""
    body = {
        "tenantId": tenant,
        "name": name,
        "kind": kind,
        "url": url,
        "secret": secret,
        "smtpHost": smtp_host,
        "smtpPort": smtp_port,
        "smtpUsername": smtp_username,
        "smtpStarttls": smtp_starttls,
        "mailFrom": mail_from,
        "mailTo": mail_to or [],
        "minSeverity": min_severity,
    }
    with api_client() as api:
        result = api.request(
            "POST",
            "/api/admin/notification-channels",
            body={k: v for k, v in body.items() if v is not None},
        )
    output.answer(result, json, f"created channel {result.data['id']}")


@channels_app.command("delete")
@handle_errors
def channels_delete(channel_id: str) -> None:
    """Delete a notification channel (admin)."""
    with (
        api_client() as api,
        when_missing(
            f"notification channel {channel_id}",
            "`b2c alerts channels list` shows the channels you can see",
        ),
    ):
        api.request("DELETE", f"/api/admin/notification-channels/{_path(channel_id)}")
    output.console.print(f"deleted channel {channel_id}")


# ---- maintenance windows --------------------------------------------------------------------


@maintenance_app.command("list")
@handle_errors
def maintenance_list(
    current: Annotated[bool, typer.Option(help="Only windows not over yet.")] = False,
    json: JsonOpt = False,
) -> None:
    """Maintenance windows, latest start first."""
    with api_client() as api:
        result = api.request("GET", "/api/admin/maintenance-windows", {"current": current})
    output.listing(
        result,
        json,
        ["id", "tenant", "service / job type", "starts", "ends", "active", "reason"],
        lambda w: (
            w["id"],
            w["tenantId"],
            escape(w["serviceName"] or w["jobType"]),
            w["startsAt"],
            w["endsAt"],
            "yes" if w["active"] else "no",
            escape(w["reason"] or ""),
        ),
    )


@maintenance_app.command("create")
@handle_errors
def maintenance_create(
    duration: Annotated[str, typer.Option("--for", help="How long from now (or from --start).")],
    service: Annotated[str | None, typer.Option(help="A connected service.")] = None,
    job_type: Annotated[str | None, typer.Option(help="A job type.")] = None,
    start: Annotated[str | None, typer.Option(help="ISO time; default now.")] = None,
    reason: Annotated[str | None, typer.Option()] = None,
    tenant: TenantOpt = None,
    json: JsonOpt = False,
) -> None:
    """Plan a maintenance window for a service or a job type (operator)."""
    starts = datetime.fromisoformat(start) if start else datetime.now(UTC)
    ends = starts + timedelta(seconds=parse_duration(duration))
    body = {
        "tenantId": tenant,
        "serviceName": service,
        "jobType": job_type,
        "startsAt": starts.isoformat(),
        "endsAt": ends.isoformat(),
        "reason": reason,
    }
    with api_client() as api:
        result = api.request("POST", "/api/admin/maintenance-windows", body=body)
    output.answer(result, json, f"window {result.data['id']} until {result.data['endsAt']}")


@maintenance_app.command("end")
@handle_errors
def maintenance_end(window_id: str, json: JsonOpt = False) -> None:
    """End a maintenance window now (operator)."""
    with (
        api_client() as api,
        when_missing(
            f"maintenance window {window_id}",
            "`b2c alerts maintenance list` shows the windows you can see",
        ),
    ):
        result = api.request("POST", f"/api/admin/maintenance-windows/{_path(window_id)}/end")
    output.answer(result, json, f"ended window {window_id}")


# ---- job schedules -------------------------------------------------------------------------


@schedules_app.command("list")
@handle_errors
def schedules_list(json: JsonOpt = False) -> None:
    """Expected schedules of job types."""
    with api_client() as api:
        result = api.request("GET", "/api/admin/job-schedules")
    output.listing(
        result,
        json,
        ["tenant", "job type", "cron", "time zone", "grace s", "next expected"],
        lambda s: (
            s["tenantId"],
            s["jobType"],
            s["cron"],
            s["timezone"],
            s["graceS"],
            s["nextExpectedAt"],
        ),
    )


@schedules_app.command("set")
@handle_errors
def schedules_set(
    job_type: str,
    cron: Annotated[str, typer.Option(help="Five fields: m h dom mon dow.")],
    timezone: Annotated[str, typer.Option(help="IANA zone, e.g. Europe/Berlin.")] = "UTC",
    grace: Annotated[str, typer.Option(help="How late a run may start: 15m.")] = "15m",
    tenant: TenantOpt = None,
    json: JsonOpt = False,
) -> None:
    """Expect runs of a job type on a cron schedule (operator)."""
    body = {"tenantId": tenant, "cron": cron, "timezone": timezone, "graceS": parse_duration(grace)}
    with api_client() as api:
        result = api.request("PUT", f"/api/admin/job-schedules/{_path(job_type)}", body=body)
    output.answer(result, json, f"{job_type}: next run expected {result.data['nextExpectedAt']}")


@schedules_app.command("delete")
@handle_errors
def schedules_delete(job_type: str, tenant: TenantOpt = None) -> None:
    """Stop expecting runs of a job type (operator)."""
    with (
        api_client() as api,
        when_missing(
            f"a schedule of {job_type}",
            "`b2c alerts schedules list` shows the schedules you can see",
        ),
    ):
        api.request("DELETE", f"/api/admin/job-schedules/{_path(job_type)}", {"tenant": tenant})
    output.console.print(f"no schedule for {job_type} any more")
