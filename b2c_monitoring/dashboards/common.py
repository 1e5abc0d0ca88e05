"""What every dashboard shares: the tenant variable, its filters, defaults and links."""

from __future__ import annotations

from typing import Final

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as dm

from b2c_monitoring.dashboards.datasources import POSTGRES
from b2c_monitoring.settings import Settings

TAG: Final = "b2c-monitoring"

# Every tenant that has reported anything the state store keeps.
TENANT_QUERY: Final = (
    "SELECT tenant_id FROM jobs UNION SELECT tenant_id FROM services "
    "UNION SELECT tenant_id FROM components ORDER BY 1"
)

# The tenant filters, one per query language; Grafana formats a multi-value variable
# for each ('a','b' in SQL, (a|b) in PromQL, ("a" OR "b") in Lucene).
SQL_TENANT: Final = "tenant_id IN ($tenant)"
_DEFAULTS = Settings.model_fields
DEFAULT_TENANT: Final = str(_DEFAULTS["default_tenant"].default)

# The contract's rule (storage/logs.py tenant_filter): the record's own tenant.id wins
# over its resource's, and a record with neither is the default tenant's. Lucene cannot
# ask "is the default tenant selected?", so the hidden variable `untenanted` answers it
# with a field name: @timestamp (every record has it) or one no record has.
UNTENANTED_QUERY: Final = (
    f"SELECT CASE WHEN '{DEFAULT_TENANT}' IN ($tenant) THEN '@timestamp' "
    "ELSE 'b2c_no_such_field' END"
)
# a series without tenant_id is the default tenant's: the hidden variable
# `untenanted_re` appends "|" (the empty label matches) when the default tenant is selected
PROM_TENANT: Final = 'tenant_id=~"$tenant$untenanted_re"'
UNTENANTED_RE_QUERY: Final = (
    f"SELECT CASE WHEN '{DEFAULT_TENANT}' IN ($tenant) THEN '|' ELSE '|b2c^' END"
)
LUCENE_TENANT: Final = (
    "(Attributes.tenant.id:$tenant OR "
    "(Resource.tenant.id:$tenant AND NOT _exists_:Attributes.tenant.id) OR "
    "(_exists_:$untenanted AND NOT _exists_:Attributes.tenant.id "
    "AND NOT _exists_:Resource.tenant.id))"
)
HEARTBEAT_DEFAULT_S: Final = int(_DEFAULTS["job_heartbeat_window_s"].default)
START_DEFAULT_S: Final = int(_DEFAULTS["job_start_window_s"].default)


def job_flag_sql(alias: str = "j", windows: str = "w") -> str:
    """``stalled`` / ``overdue`` / NULL, by the rules of processors/job_flags.py (keep in step).

    Needs ``LEFT JOIN job_type_windows {windows} ON {windows}.job_type = {alias}.job_type``;
    the default windows are the settings' defaults at build time.
    """
    return (
        f"CASE WHEN {alias}.status = 'running' AND now() - {alias}.last_report_at > "
        f"COALESCE({windows}.heartbeat_window, interval '{HEARTBEAT_DEFAULT_S} seconds') "
        f"THEN 'stalled' "
        f"WHEN {alias}.status = 'pending' AND now() - {alias}.created_at > "
        f"COALESCE({windows}.start_window, interval '{START_DEFAULT_S} seconds') "
        f"THEN 'overdue' END"
    )


def tenant_variable() -> db.QueryVariable:
    return (
        db.QueryVariable("tenant")
        .label("Tenant")
        .description("Tenants whose data the panels show")
        .datasource(POSTGRES)
        .query(TENANT_QUERY)
        .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def dashboard(uid: str, title: str, description: str) -> db.Dashboard:
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("browser")
        .readonly()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .link(
            db.DashboardLink("b2c-monitoring")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
        .with_variable(tenant_variable())
        .with_variable(
            db.QueryVariable("untenanted")
            .description("Whether records without a tenant (the default tenant's) are shown")
            .datasource(POSTGRES)
            .query(UNTENANTED_QUERY)
            .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD)
            .hide(dm.VariableHide.HIDE_VARIABLE)
        )
        .with_variable(
            db.QueryVariable("untenanted_re")
            .description("Whether series without a tenant_id (the default tenant's) are shown")
            .datasource(POSTGRES)
            .query(UNTENANTED_RE_QUERY)
            .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD)
            .hide(dm.VariableHide.HIDE_VARIABLE)
        )
    )
