"""The Grafana dashboards: generated, schema-valid, and every panel's query works on real data.

The live part fills the test stack the way a user would (the demo: jobs of two tenants
of this module's own, connected services with an outage, health and resources; alert
rules so that alerts fire; one contract-breaking report; some API requests), then runs
every panel's query, with its template variables resolved by their own queries,
against the real Postgres, Prometheus and Elasticsearch.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import httpx
import psycopg
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from b2c_monitoring.contract import JobState
from b2c_monitoring.dashboards import build, live
from b2c_monitoring.dashboards.common import DEFAULT_TENANT
from b2c_monitoring.dashboards.datasources import ELASTICSEARCH_TYPE, POSTGRES_TYPE
from b2c_monitoring.demo import run_demo
from b2c_monitoring.stack.local import LocalStack
from b2c_monitoring.stack.postgres import DATABASE, SYSTEM_USER
from b2c_monitoring.storage import grafana_roles
from b2c_monitoring.storage.logs import make_client
from tests.otlp_builders import job_span, trace_request
from tests.polling import eventually
from tests.tokens import probe_metadata

# --------------------------------------------------------------------------------------
# generated files and schema


def test_the_committed_files_are_what_the_code_generates() -> None:
    assert build.stale() == [], "run `b2c dashboards build` and commit dashboards/"


def test_every_dashboard_passes_the_sdk_schema() -> None:
    dashboards = build.load()
    assert set(dashboards) == set(build.DASHBOARDS)
    for uid, data in dashboards.items():
        assert build.schema_problems(data) == [], uid


def test_the_schema_check_finds_a_field_the_schema_does_not_know() -> None:
    data = copy.deepcopy(build.load()["b2c-pipeline"])
    data["panels"][0]["colour"] = "red"
    data["panels"][1]["targets"][0]["exprr"] = "up"
    problems = build.schema_problems(data)
    assert "$.panels[0].colour: not in the schema" in problems
    assert "$.panels[1].targets[0].exprr: not in the schema" in problems


def test_the_schema_check_refuses_an_unknown_panel_type() -> None:
    data = copy.deepcopy(build.load()["b2c-overview"])
    data["panels"][0]["type"] = "fancy-gauge"
    assert any("unknown panel type 'fancy-gauge'" in p for p in build.schema_problems(data))


def test_every_dashboard_has_the_tenant_variable_and_its_state_and_log_queries_use_it() -> None:
    for uid, data in build.load().items():
        names = [v["name"] for v in data["templating"]["list"]]
        assert names[0] == "tenant", uid
        for panel in data["panels"]:
            ds = panel["datasource"]["type"]
            for target in panel["targets"]:
                text = target.get("rawSql") if ds == POSTGRES_TYPE else target.get("query")
                if ds in (POSTGRES_TYPE, ELASTICSEARCH_TYPE):
                    assert "$tenant" in str(text), (uid, panel["title"])


def test_the_provisioning_names_the_uids_the_panels_use() -> None:
    files = build.render()
    sources = files["grafana/provisioning/datasources/b2c.yaml"]
    used = {
        panel["datasource"]["uid"] for data in build.load().values() for panel in data["panels"]
    }
    for uid in used:
        assert f"uid: {uid}" in sources
    provider = files["grafana/provisioning/dashboards/b2c.yaml"]
    assert "path: /etc/grafana/provisioning/dashboards/b2c" in provider


# --------------------------------------------------------------------------------------
# the expander (pure)

_RANGE = live.TimeRange(
    datetime(2026, 11, 28, 12, 0, tzinfo=UTC), datetime(2026, 11, 28, 18, 0, tzinfo=UTC)
)


def _ctx(**values: tuple[str, ...]) -> live.Context:
    variables = {
        name: live.Variable(name, multi=len(v) > 1, include_all=len(v) > 1, values=v)
        for name, v in values.items()
    }
    return live.Context(_RANGE, variables)


def test_a_multi_value_variable_is_formatted_for_each_query_language() -> None:
    ctx = _ctx(tenant=("acme", "o'hara", "a.b"))
    assert live.interpolate("tenant_id IN ($tenant)", POSTGRES_TYPE, ctx) == (
        "tenant_id IN ('acme','o''hara','a.b')"
    )
    assert live.interpolate('tenant_id=~"$tenant"', "prometheus", ctx) == (
        'tenant_id=~"(acme|o\\\\\'hara|a\\\\.b)"'
    )
    assert live.interpolate("t:${tenant}", ELASTICSEARCH_TYPE, ctx) == (
        't:("acme" OR "o\'hara" OR "a.b")'
    )


def test_a_single_value_variable_is_not_quoted_in_sql_and_escaped_in_lucene() -> None:
    ctx = _ctx(job=("f19c-48",))
    assert live.interpolate("job_id = '$job'", POSTGRES_TYPE, ctx) == "job_id = 'f19c-48'"
    assert live.interpolate('id:"$job"', ELASTICSEARCH_TYPE, ctx) == 'id:"f19c\\-48"'


def test_interval_builtins_follow_grafana() -> None:
    ctx = _ctx()
    # 6 h over 1000 points is 21.6 s, which Grafana rounds to 20 s
    assert live.interpolate("$__interval", POSTGRES_TYPE, ctx) == "20s"
    # Prometheus: max(interval + scrape interval, 4 x scrape interval)
    assert live.interpolate("[$__rate_interval]", "prometheus", ctx) == "[25s]"
    assert live.interpolate("$__range", "prometheus", ctx) == "21600s"
    short = live.Context(live.TimeRange(_RANGE.start, _RANGE.start + timedelta(minutes=5)))
    assert live.interpolate("$__interval", "prometheus", short) == "5s"  # the scrape interval


def test_sql_macros_expand_like_the_postgres_data_source() -> None:
    sql = live.expand_sql_macros(
        "SELECT $__timeGroupAlias(at, 5m), 1 WHERE $__timeFilter(at) AND x > $__timeFrom()",
        _RANGE,
    )
    assert sql == (
        'SELECT floor(extract(epoch from at)/300)*300 AS "time", 1 '
        "WHERE at BETWEEN '2026-11-28T12:00:00Z' AND '2026-11-28T18:00:00Z' "
        "AND x > '2026-11-28T12:00:00Z'"
    )
    with pytest.raises(live.QueryFailed, match="timeGroup"):
        live.expand_sql_macros("$__timeGroup(at)", _RANGE)


def test_an_elasticsearch_target_becomes_a_search_with_the_time_range() -> None:
    target = {
        "metrics": [{"type": "count", "id": "1"}],
        "bucketAggs": [
            {"type": "terms", "id": "2", "field": "svc", "settings": {"size": "5"}},
            {"type": "date_histogram", "id": "3", "field": "@timestamp", "settings": {}},
        ],
    }
    body = live.es_search(target, "a:b", _ctx())
    assert body["size"] == 0
    rng = body["query"]["bool"]["filter"][0]["range"]["@timestamp"]
    assert rng["gte"] == int(_RANGE.start.timestamp() * 1000)
    assert body["query"]["bool"]["filter"][1]["query_string"]["query"] == "a:b"
    terms = body["aggs"]["2"]
    assert terms["terms"]["field"] == "svc"
    assert terms["terms"]["size"] == 5
    assert terms["aggs"]["3"]["date_histogram"]["fixed_interval"] == "20s"


def test_a_result_lacking_a_column_the_panel_reads_is_a_problem() -> None:
    panel = {"transformations": [{"id": "organize", "options": {"indexByName": {"a": 0, "b": 1}}}]}
    result = live.Result(columns=["a"], rows=[(1,)])
    assert live.expected_problems(panel, {}, result) == [
        "lacks the column(s) ['b']; it returned ['a']"
    ]
    assert live.expected_problems(panel, {}, live.Result(columns=["a", "b"])) == [
        "returned no data"
    ]
    legend = {"legendFormat": "{{route}}"}
    series = live.Result(columns=["time", "value"], series_labels=[{"job": "x"}])
    assert live.expected_problems({}, legend, series) == [
        "legend label 'route' is missing on 1 series"
    ]


# --------------------------------------------------------------------------------------
# every panel on real data


@dataclass(frozen=True)
class Filled:
    stores: live.Stores
    window: live.TimeRange
    tenants: list[str]


def _prom_has(stack: LocalStack, expr: str) -> Callable[[], bool | None]:
    def probe() -> bool | None:
        answer = httpx.get(f"{stack.prometheus.url}/api/v1/query", params={"query": expr}).json()
        return True if answer["data"]["result"] else None

    return probe


@pytest.fixture(scope="module")
def filled(stack: LocalStack) -> Iterator[Filled]:
    started = datetime.now(UTC) - timedelta(minutes=1)
    suffix = uuid.uuid4().hex[:8]
    tenants = [f"dash-{suffix}-a", f"dash-{suffix}-b"]
    creds = stack.credentials()
    with httpx.Client(
        base_url=f"http://127.0.0.1:{stack.layout.ports.api}",
        headers={"Authorization": f"Bearer {creds['token']}"},
        timeout=30,
    ) as api:
        for tenant, condition in (
            (tenants[0], {"kind": "job_failed", "groupingDelayS": 0}),
            (DEFAULT_TENANT, {"kind": "service_down", "checks": 1}),
        ):
            created = api.post(
                "/api/admin/alert-rules",
                json={
                    "tenantId": tenant,
                    "name": f"dashboards {suffix} {condition['kind']}",
                    "severity": "critical",
                    "condition": condition,
                },
            )
            assert created.status_code == 201, created.text
        runs = run_demo(
            f"http://127.0.0.1:{stack.layout.ports.otlp_grpc}",
            tenants=tenants,
            duration_s=20,
            seed=11,
            progress=lambda _line: None,
            crm_db=stack.postgres.url,
            token=stack.probe_token,
        )
        assert any(r.state is JobState.FAILED and r.tenant_id == tenants[0] for r in runs), (
            "the demo plan of this seed has no failure of the first tenant: pick another seed"
        )
        # one report that breaks the contract (a state it does not know): the
        # rejected-by-reason panel
        with grpc.insecure_channel(f"127.0.0.1:{stack.layout.ports.otlp_grpc}") as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            bad = job_span(
                {
                    "scheduler.job.id": f"bad-{suffix}",
                    "scheduler.job.state": "sleeping",
                    "tenant.id": tenants[0],
                }
            )
            stub.Export(trace_request([bad]), timeout=10, metadata=probe_metadata(stack))
        for _ in range(5):
            assert api.get("/api/admin/jobs", params={"tenant": tenants[0]}).status_code == 200

    def alerts_fired() -> bool | None:
        with psycopg.connect(stack.postgres.url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM alerts WHERE tenant_id = %s", (tenants[0],)
            ).fetchone()
        return True if row and row[0] else None

    eventually(alerts_fired, timeout=90, every=1, what="an alert of the job_failed rule")
    # rates and increases need two samples of a series within their window; a range
    # query's last step may fall up to one step (a scrape interval) before its end, so
    # a third sample makes sure that step still sees two
    for metric in (
        "b2c_processor_rejected_items_total",
        "b2c_api_request_seconds_count",
        'b2c_processor_store_seconds_count{signal="spans"}',
    ):
        eventually(
            _prom_has(stack, f"count_over_time({metric}[30s]) >= 3"),
            timeout=90,
            every=1,
            what=metric,
        )
    with make_client(stack.elasticsearch.admin_url) as admin:
        admin.indices.refresh(index="b2c-logs*")
    # as Grafana would: its read-only logins, a Postgres one bound to these tenants
    es = make_client(stack.elasticsearch.grafana_url)
    role, password = grafana_roles.role_name_for(f"dashboards-{suffix}"), uuid.uuid4().hex
    superuser = stack.postgres.url_for(SYSTEM_USER, DATABASE)
    grafana_roles.grant_tenants(superuser, role, [*tenants, DEFAULT_TENANT], password)
    grafana = f"postgresql://{role}:{password}@127.0.0.1:{stack.postgres.port}/{DATABASE}"
    try:
        yield Filled(
            stores=live.Stores(grafana, stack.prometheus.url, es),
            window=live.TimeRange(started, datetime.now(UTC)),
            tenants=tenants,
        )
    finally:
        es.close()
        with psycopg.connect(superuser, autocommit=True) as conn:
            conn.execute("DELETE FROM grafana_tenants WHERE role_name = %s", (role,))
            conn.execute(f'DROP ROLE "{role}"')


@pytest.mark.parametrize("uid", list(build.DASHBOARDS))
def test_every_panel_query_returns_the_columns_it_reads(filled: Filled, uid: str) -> None:
    data: dict[str, Any] = build.load()[uid]
    checks = live.check_dashboard(
        data, filled.stores, filled.window, {"tenant": [*filled.tenants, DEFAULT_TENANT]}
    )
    panels = [p for p in data["panels"] if p["type"] != "row"]
    assert [c.title for c in checks] == [p["title"] for p in panels]
    broken = {c.title: c.problems for c in checks if c.problems}
    assert broken == {}


def test_a_broken_panel_query_fails_the_check(filled: Filled) -> None:
    data = copy.deepcopy(build.load()["b2c-jobs"])
    data["panels"][0]["targets"][0]["rawSql"] = "SELECT created_at AS time FROM jobz"
    data["panels"][1]["targets"][0]["rawSql"] = data["panels"][1]["targets"][0]["rawSql"].replace(
        "AS failures", "AS failures, 'x' AS metric2"
    )
    checks = live.check_dashboard(data, filled.stores, filled.window, {"tenant": filled.tenants})
    problems = {c.title: c.problems for c in checks}
    assert 'relation "jobz" does not exist' in problems["Runs started"][0]
    assert problems["Failures"] == []  # an extra column is no problem


def test_a_panel_without_data_or_a_tenant_not_offered_fails_the_check(
    filled: Filled, tenant: str
) -> None:
    data = build.load()["b2c-jobs"]
    long_ago = live.TimeRange(datetime(2001, 1, 1, tzinfo=UTC), datetime(2001, 1, 2, tzinfo=UTC))
    checks = live.check_dashboard(data, filled.stores, long_ago, {"tenant": filled.tenants})
    # the job variable offers the failures of the range: none in 2001
    assert checks[0].title == "(variables)"
    assert "job: its query returned no values" in checks[0].problems[0]
    everyone = [*filled.tenants, DEFAULT_TENANT]
    checks = live.check_dashboard(
        build.load()["b2c-overview"], filled.stores, long_ago, {"tenant": everyone}
    )
    assert {c.title: c.problems for c in checks}["Components"] == []  # now, not in the range
    assert {c.title: c.problems for c in checks}["Jobs that need attention"] == [
        "query A returned no data"
    ]
    # a tenant the variable does not offer is refused, not silently shown empty
    checks = live.check_dashboard(data, filled.stores, filled.window, {"tenant": [tenant]})
    assert checks[0].title == "(variables)"
    assert "are not among its values" in checks[0].problems[0]
