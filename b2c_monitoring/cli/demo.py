"""b2c demo: the whole product locally, with demo probes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from b2c_monitoring.cli import output
from b2c_monitoring.cli.context import handle_errors
from b2c_monitoring.cli.stack import _say, local_stack, print_console_hint


@handle_errors
def demo(
    home: Annotated[Path | None, typer.Option("--home", help="Home folder of the stack")] = None,
    seconds: Annotated[float | None, typer.Option(help="How long the demo probes run")] = None,
) -> None:
    """Start the local stack and a real Celery worker with beat (its tasks and beat schedules
    show as jobs and job schedules until b2c stack down), run demo probes (ERP_SYNC,
    PIM_IMPORT, CRM_EXPORT jobs, some failing; ERP, PIM, CRM and crm-db checks with the ERP
    going down for a while; catalog and search health), then tell what to look at."""
    from b2c_monitoring.demo import run_demo

    stack = local_stack(home)
    stack.up(_say)
    stack.supervisor.start(stack.celery_demo, _say)
    print_console_hint(stack)
    endpoint = stack.collector.endpoints()["otlp_grpc"]
    files = stack.tls.files
    ca_file = str(files.ca_file) if files is not None and files.ca_file is not None else None
    _say(f"running demo probes against the collector at {endpoint}, {stack.tls.describe()}")
    runs = run_demo(
        endpoint,
        duration_s=seconds,
        progress=_say,
        crm_db=stack.postgres.url,
        ca_file=ca_file,
        token=stack.probe_token,
    )
    output.table(
        "Demo jobs",
        ["job id", "tenant", "type", "final state"],
        [(r.job_id, r.tenant_id, r.job_type, output.status(r.state)) for r in runs],
    )
    ports = stack.layout.ports
    failed = next((r for r in runs if r.state == "failed"), runs[0] if runs else None)
    output.console.print("\n[bold]What to look at[/bold]")
    output.console.print(f"  admin console:    {stack.api.api_url}/console/  (watch it live)")
    if failed is not None:
        output.console.print(f"  b2c jobs show {failed.job_id}")
    output.console.print(
        "  Celery worker + beat (service celery-demo, runs until b2c stack down):\n"
        "    b2c jobs list --tenant acme    b2c alerts schedules list  (its beat entries)\n"
        "    b2c stack logs celery-demo"
    )
    output.console.print(f"  admin API docs:   {stack.api.api_url}/docs")
    output.console.print("  b2c monitor services    b2c monitor services --resources enventa-erp")
    output.console.print("  b2c monitor health      b2c monitor health --component search")
    output.console.print(f"  Prometheus:       http://127.0.0.1:{ports.prometheus}/graph")
    output.console.print(
        "                    connected_service_up, connected_service_check_duration_seconds,"
        " component_health_status, process_cpu_utilization_ratio"
    )
    output.console.print(
        f"  Elasticsearch:    http://127.0.0.1:{ports.elasticsearch}/b2c-logs*/_search?q=*"
    )
    output.console.print("  b2c stack status    b2c stack down")
