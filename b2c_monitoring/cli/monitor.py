"""b2c monitor ...: component health and connected services, thin commands over the admin API."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from b2c_monitoring.cli import output, service_errors
from b2c_monitoring.cli.context import api_client, handle_errors, when_missing
from b2c_monitoring.cli.output import CursorOpt, JsonOpt

app = typer.Typer(help="Component health and connected services.", no_args_is_help=True)

TenantOpt = Annotated[
    list[str] | None, typer.Option("--tenant", help="Only this tenant (repeatable).")
]

_SERVICES_YOU_SEE = "`b2c monitor services` lists the services you can see"
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``24h``, ``7d``."""
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) == 0:
        raise typer.BadParameter(f"{text!r} is not a duration like 30m, 24h or 7d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _ms(value: float | None) -> str | None:
    return None if value is None else f"{value:.0f} ms"


def _pct(value: float | None) -> str | None:
    return None if value is None else f"{value:.1f} %"


def _bytes(value: int | None) -> str | None:
    if value is None:
        return None
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return None  # unreachable


@app.command("health")
@handle_errors
def health(
    component: Annotated[
        str | None, typer.Option(help="Only this component, e.g. catalog.")
    ] = None,
    history: Annotated[
        str | None,
        typer.Option(help="Show the changes of health over this long instead, e.g. 24h or 7d."),
    ] = None,
    tenant: TenantOpt = None,
    json: JsonOpt = False,
) -> None:
    """The health of every component and the overall status, or its history."""
    since = datetime.now(UTC) - parse_duration(history) if history is not None else None
    with api_client() as api:
        if since is not None:
            result = api.request(
                "GET",
                "/api/admin/health/history",
                {"component": component, "tenant": tenant, "since": since.isoformat()},
            )
        else:
            result = api.request(
                "GET", "/api/admin/health/components", {"component": component, "tenant": tenant}
            )
    if json:
        output.raw_json(result.text)
        return
    data: dict[str, Any] = result.data
    if since is not None:
        output.table(
            f"Health changes since {data['since']}",
            ["at", "component", "tenant", "from", "to", "description"],
            [
                (
                    c["at"],
                    c["component"],
                    c["tenantId"],
                    output.status(c["previousStatus"]),
                    output.status(c["status"]),
                    c["description"],
                )
                for c in data["items"]
            ],
        )
        return
    output.console.print(f"overall: {output.status(data['status'])}  ({data['checkedAt']})")
    output.table(
        "Components",
        ["component", "tenant", "status", "reported", "last report", "description"],
        [
            (
                c["name"],
                c["tenantId"],
                output.status(c["status"]),
                c["reportedStatus"],
                c["lastReportAt"],
                c["description"],
            )
            for c in data["items"]
        ],
    )


@app.command("services")
@handle_errors
def services(
    test: Annotated[
        str | None,
        typer.Option(help="Run this service's declared connection test now (id or name)."),
    ] = None,
    resources: Annotated[
        str | None, typer.Option(help="Show this service's resource metrics (id or name).")
    ] = None,
    errors: Annotated[
        str | None,
        typer.Option(help="Show this service's errors (id or name); with --patterns, grouped."),
    ] = None,
    patterns: Annotated[
        bool, typer.Option("--patterns", help="With --errors: the error patterns instead.")
    ] = False,
    since: Annotated[
        str | None, typer.Option(help="With --errors: over this long, e.g. 24h (default) or 7d.")
    ] = None,
    export: Annotated[
        Path | None,
        typer.Option(help="With --errors: write the errors to FILE (.csv: CSV, else JSON)."),
    ] = None,
    bundle: Annotated[
        Path | None,
        typer.Option(help="With --errors: write a support bundle (zip) to FILE."),
    ] = None,
    status: Annotated[
        list[str] | None, typer.Option(help="Only services in this status (repeatable).")
    ] = None,
    service_type: Annotated[
        str | None, typer.Option("--type", help="Only services of this type, e.g. ERP.")
    ] = None,
    tenant: TenantOpt = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Services per page.")] = 100,
    cursor: CursorOpt = None,
    json: JsonOpt = False,
) -> None:
    """Connected services with status, latency and uptime; or test one, its resources,
    or its errors (listed, grouped into patterns, exported, or bundled for support)."""
    if sum(x is not None for x in (test, resources, errors)) > 1:
        raise typer.BadParameter("use one of --test, --resources and --errors")
    if errors is None and (patterns or since or export or bundle):
        raise typer.BadParameter("--patterns, --since, --export and --bundle go with --errors")
    one_tenant = tenant[0] if tenant and len(tenant) == 1 else None
    if errors is not None:
        _errors(errors, one_tenant, patterns, since, export, bundle, json)
        return
    with api_client() as api, when_missing(f"service {test or resources}", _SERVICES_YOU_SEE):
        if test is not None:
            result = api.request(
                "POST", f"/api/admin/services/{quote(test, safe='')}/test", {"tenant": one_tenant}
            )
        elif resources is not None:
            result = api.request(
                "GET",
                f"/api/admin/services/{quote(resources, safe='')}/resources",
                {"tenant": one_tenant},
            )
        else:
            result = api.request(
                "GET",
                "/api/admin/services",
                {
                    "status": status,
                    "type": service_type,
                    "tenant": tenant,
                    "limit": limit,
                    "cursor": cursor,
                },
            )
    if json:
        output.raw_json(result.text)
        return
    data: dict[str, Any] = result.data
    if test is not None:
        _show_test(data)
    elif resources is not None:
        _show_resources(data)
    else:
        _show_services(data["items"])
        if data["nextCursor"]:
            output.next_page(data["nextCursor"])


def _errors(
    service: str,
    tenant: str | None,
    patterns: bool,
    since: str | None,
    export: Path | None,
    bundle: Path | None,
    json: bool,
) -> None:
    start = datetime.now(UTC) - parse_duration(since) if since is not None else None
    with api_client() as api, when_missing(f"service {service}", _SERVICES_YOU_SEE):
        for target, is_bundle in ((export, False), (bundle, True)):
            if target is not None:
                size = service_errors.download(
                    api, service, target, bundle=is_bundle, tenant=tenant, since=start
                )
                output.console.print(f"wrote {target} ({_bytes(size)})")
        if export is not None or bundle is not None:
            return
        if patterns:
            result = service_errors.fetch_patterns(api, service, tenant=tenant, since=start)
        else:
            result = service_errors.fetch_errors(api, service, tenant=tenant, since=start, limit=50)
    if json:
        output.raw_json(result.text)
    elif patterns:
        service_errors.show_patterns(service, result.data)
    else:
        service_errors.show_errors(service, result.data)


def _show_services(items: list[dict[str, Any]]) -> None:
    output.table(
        "Connected services",
        [
            "service",
            "tenant",
            "type",
            "status",
            "avg latency",
            "uptime 24h",
            "uptime 30d",
            "last checked",
            "cpu",
            "memory",
            "endpoint",
        ],
        [
            (
                s["name"],
                s["tenantId"],
                s["type"],
                output.status(s["status"]),
                _ms(s["averageLatencyMs"]),
                _pct(s["uptime"]["last24h"]),
                _pct(s["uptime"]["last30d"]),
                s["lastChecked"],
                _pct((s["resources"] or {}).get("cpuPercent")),
                _pct((s["resources"] or {}).get("memoryPercent")),
                s["endpoint"],
            )
            for s in items
        ],
    )


def _show_test(data: dict[str, Any]) -> None:
    output.fields(
        f"Connection test of {data['name']}",
        [
            ("result", output.status(data["status"])),
            ("latency", _ms(data["latencyMs"])),
            ("error", data["error"]),
            ("checked at", data["checkedAt"]),
            ("service status", output.status(data["serviceStatus"])),
        ],
    )


def _show_resources(data: dict[str, Any]) -> None:
    r = data["resources"]
    if r is None:
        output.console.print(f"{data['name']}: no resource metrics reported")
        return
    window = f"{r['windowSeconds'] // 60} min"
    output.fields(
        f"Resources of {data['name']} ({data['tenantId']})",
        [
            ("cpu", _pct(r["cpuPercent"])),
            (f"cpu average / peak ({window})", f"{_pct(r['cpuAverage'])} / {_pct(r['cpuPeak'])}"),
            (
                "memory",
                f"{_bytes(r['memoryUsedBytes'])} of {_bytes(r['memoryTotalBytes'])} "
                f"({_pct(r['memoryPercent'])})",
            ),
            (f"memory peak ({window})", _bytes(r["memoryPeakBytes"])),
            ("connection pool", f"{r['connectionPoolActive']} of {r['connectionPoolTotal']}"),
            ("threads", r["threadCount"]),
            ("queue depth", r["queueDepth"]),
            ("sampled at", r["timestamp"]),
        ],
    )
