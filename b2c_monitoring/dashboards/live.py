"""Run every panel's query of a generated dashboard against the real stores, as Grafana would.

Grafana does two things to a query before its data source runs it, and this module
does the same, for the subset our dashboards use:

1. it replaces template variables, formatted for the data source (SQL: ``'a','b'``;
   PromQL: ``(a|b)`` regex-escaped; Lucene: ``("a" OR "b")``), and the built-ins
   ``$__interval``, ``$__rate_interval``, ``$__range``;
2. the SQL data source expands its macros (``$__timeFilter(col)``, ``$__timeFrom()``,
   ``$__timeTo()``, ``$__timeGroupAlias(col, interval)``); the Elasticsearch data
   source turns the Lucene query and its aggregations into a search with the time
   range as a filter.

Query variables are resolved by running their own query (multi-value ones take
every value unless told otherwise), so a variable whose query breaks fails too.
Each panel's result is then held to what the panel reads (see ``panels.py``).
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import psycopg
from elasticsearch import Elasticsearch

from b2c_monitoring.dashboards.datasources import (
    ELASTICSEARCH_TYPE,
    LOGS_INDEX_PATTERN,
    POSTGRES_TYPE,
    PROMETHEUS_TYPE,
    SCRAPE_INTERVAL,
    TIME_FIELD,
)

# a panel's query refused by its data source (tests and the CLI catch live.QueryFailed)
from b2c_monitoring.errors import QueryFailed as QueryFailed

DEFAULT_MAX_DATA_POINTS: Final = 1000
"""Grafana takes a panel's width in pixels; a wide panel is about this."""

# Grafana's kbn.roundInterval: (upper bound in ms, interval it rounds to in ms)
_ROUNDING: Final = (
    (15, 10),
    (35, 20),
    (75, 50),
    (150, 100),
    (350, 200),
    (750, 500),
    (1_500, 1_000),
    (3_500, 2_000),
    (7_500, 5_000),
    (12_500, 10_000),
    (17_500, 15_000),
    (25_000, 20_000),
    (45_000, 30_000),
    (90_000, 60_000),
    (210_000, 120_000),
    (450_000, 300_000),
    (750_000, 600_000),
    (1_050_000, 900_000),
    (1_500_000, 1_200_000),
    (2_700_000, 1_800_000),
    (5_400_000, 3_600_000),
    (9_000_000, 7_200_000),
    (16_200_000, 10_800_000),
    (32_400_000, 21_600_000),
    (86_400_000, 43_200_000),
    (604_800_000, 86_400_000),
    (1_814_400_000, 604_800_000),
    (3_628_800_000, 2_592_000_000),
)
_UNITS: Final = {
    "ms": 1,
    "s": 1_000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 604_800_000,
}


def parse_interval(text: str) -> timedelta:
    match = re.fullmatch(r"\s*'?(\d+)(ms|s|m|h|d|w)'?\s*", text)
    if match is None:
        raise ValueError(f"not an interval: {text!r}")
    return timedelta(milliseconds=int(match.group(1)) * _UNITS[match.group(2)])


def format_interval(delta: timedelta) -> str:
    ms = round(delta.total_seconds() * 1000)
    for unit in ("w", "d", "h", "m", "s"):
        if ms >= _UNITS[unit] and ms % _UNITS[unit] == 0:
            return f"{ms // _UNITS[unit]}{unit}"
    return f"{ms}ms"


def round_interval(ms: float) -> int:
    for bound, rounded in _ROUNDING:
        if ms <= bound:
            return rounded
    return 31_536_000_000


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime

    @classmethod
    def last(cls, delta: timedelta, now: datetime | None = None) -> TimeRange:
        end = now or datetime.now(UTC)
        return cls(end - delta, end)

    def interval(self, min_interval: timedelta, max_data_points: int) -> timedelta:
        """``$__interval``: the range over the data points, rounded, at least the minimum."""
        ms = (self.end - self.start).total_seconds() * 1000 / max_data_points
        return max(timedelta(milliseconds=round_interval(ms)), min_interval)


@dataclass(frozen=True)
class Variable:
    name: str
    multi: bool
    include_all: bool
    values: tuple[str, ...]


def _sql_format(value: Sequence[str], var: Variable) -> str:
    if var.multi or var.include_all:
        return ",".join("'" + v.replace("'", "''") + "'" for v in value)
    return value[0].replace("'", "''") if value else ""


def _prom_escape(value: str) -> str:
    return re.sub(
        r"[$^*{}\[\]'+?.()|]", lambda m: "\\\\" + m.group(0), value.replace("\\", "\\\\\\\\")
    )


def _prom_format(value: Sequence[str], var: Variable) -> str:
    if not (var.multi or var.include_all):
        return value[0].replace("\\", "\\\\").replace("'", "\\\\'") if value else ""
    escaped = [_prom_escape(v) for v in value]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


# Grafana's luceneEscape: these characters and whitespace get a backslash
_LUCENE_SPECIAL: Final = re.compile(r'([+\-=&|><!(){}\[\]^"~*?:\\/\s])')


def _lucene_escape(value: str) -> str:
    return _LUCENE_SPECIAL.sub(r"\\\1", value)


def _lucene_format(value: Sequence[str], var: Variable) -> str:
    if len(value) == 1 and not (var.multi or var.include_all):
        return _lucene_escape(value[0])
    return "(" + " OR ".join(f'"{_lucene_escape(v)}"' for v in value) + ")"


_FORMATTERS: Final[Mapping[str, Callable[[Sequence[str], Variable], str]]] = {
    POSTGRES_TYPE: _sql_format,
    PROMETHEUS_TYPE: _prom_format,
    ELASTICSEARCH_TYPE: _lucene_format,
}


@dataclass(frozen=True)
class Context:
    """Everything a query's text depends on besides itself."""

    time_range: TimeRange
    variables: Mapping[str, Variable] = field(default_factory=dict)
    max_data_points: int = DEFAULT_MAX_DATA_POINTS

    def interval(self, ds_type: str) -> timedelta:
        minimum = parse_interval(SCRAPE_INTERVAL) if ds_type == PROMETHEUS_TYPE else timedelta(0)
        return self.time_range.interval(minimum, self.max_data_points)

    def builtins(self, ds_type: str) -> dict[str, str]:
        interval = self.interval(ds_type)
        scrape = parse_interval(SCRAPE_INTERVAL)
        rate = max(interval + scrape, 4 * scrape)
        span = self.time_range.end - self.time_range.start
        return {
            "__interval": format_interval(interval),
            "__interval_ms": str(round(interval.total_seconds() * 1000)),
            "__rate_interval": format_interval(rate),
            "__range": f"{round(span.total_seconds())}s",
            "__range_s": str(round(span.total_seconds())),
        }


_VAR: Final = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def interpolate(text: str, ds_type: str, ctx: Context) -> str:
    """Replace template variables and built-ins as Grafana does for ``ds_type``; leave
    macros (``$__timeFilter(...)``) and unknown names to the data source."""
    builtins = ctx.builtins(ds_type)
    formatter = _FORMATTERS[ds_type]

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in builtins:
            return builtins[name]
        var = ctx.variables.get(name)
        if var is None:
            return match.group(0)
        return formatter(var.values, var)

    return _VAR.sub(replace, text)


def _pg_time(at: datetime) -> str:
    return "'" + at.astimezone(UTC).isoformat().replace("+00:00", "Z") + "'"


_MACRO: Final = re.compile(r"\$__(\w+)\(([^()]*)\)")


def expand_sql_macros(sql: str, time_range: TimeRange) -> str:
    """The Postgres data source's macros that our dashboards use."""

    def expand(match: re.Match[str]) -> str:
        name, args = match.group(1), [a.strip() for a in match.group(2).split(",") if a.strip()]
        if name == "timeFilter" and len(args) == 1:
            return f"{args[0]} BETWEEN {_pg_time(time_range.start)} AND {_pg_time(time_range.end)}"
        if name == "timeFrom" and not args:
            return _pg_time(time_range.start)
        if name == "timeTo" and not args:
            return _pg_time(time_range.end)
        if name in ("timeGroup", "timeGroupAlias") and len(args) == 2:
            seconds = parse_interval(args[1]).total_seconds()
            group = f"floor(extract(epoch from {args[0]})/{seconds:g})*{seconds:g}"
            return f'{group} AS "time"' if name == "timeGroupAlias" else group
        raise QueryFailed(f"macro $__{name} with {len(args)} argument(s) is not supported")

    return _MACRO.sub(expand, sql)


@dataclass
class Result:
    """What a query returned: named columns, rows (SQL, ES) or series (Prometheus)."""

    columns: list[str]
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    series_labels: list[dict[str, str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.rows and not self.series_labels


@dataclass(frozen=True)
class Stores:
    postgres_url: str
    prometheus_url: str
    elasticsearch: Elasticsearch
    logs_index: str = LOGS_INDEX_PATTERN


def run_sql(stores: Stores, sql: str) -> Result:
    try:
        with psycopg.connect(stores.postgres_url, autocommit=True) as conn:
            cur = conn.execute(sql.encode())
            columns = [d.name for d in cur.description or []]
            return Result(columns=columns, rows=[tuple(r) for r in cur.fetchall()])
    except psycopg.Error as exc:
        raise QueryFailed(f"Postgres: {exc}\n{sql}") from exc


def run_promql(stores: Stores, expr: str, ctx: Context, *, instant: bool) -> Result:
    end = ctx.time_range.end.timestamp()
    if instant:
        params = {"query": expr, "time": f"{end:.3f}"}
        path = "/api/v1/query"
    else:
        step = ctx.interval(PROMETHEUS_TYPE).total_seconds()
        start = ctx.time_range.start.timestamp()
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        path = "/api/v1/query_range"
    body = urllib.parse.urlencode(params).encode()
    url = stores.prometheus_url + path  # the stack's own http:// URL
    request = urllib.request.Request(url, data=body, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310
            answer = json.load(resp)
    except urllib.error.HTTPError as exc:
        raise QueryFailed(f"Prometheus: {exc.read().decode(errors='replace')}\n{expr}") from exc
    except OSError as exc:
        raise QueryFailed(f"Prometheus unreachable: {exc}") from exc
    if answer.get("status") != "success":
        raise QueryFailed(f"Prometheus: {answer.get('error')}\n{expr}")
    series = answer["data"]["result"]
    return Result(
        columns=["time", "value"],
        series_labels=[dict(s["metric"]) for s in series if s.get("values") or s.get("value")],
    )


def _es_bucket_agg(agg: Mapping[str, Any], interval: str) -> dict[str, Any]:
    settings = agg.get("settings") or {}
    if agg["type"] == "terms":
        size = int(settings.get("size", "10"))
        order_by = settings.get("orderBy", "_count")
        return {
            "terms": {
                "field": agg["field"],
                "size": size if size > 0 else 500,
                "min_doc_count": int(settings.get("min_doc_count", "1")),
                "order": {
                    order_by if order_by != "_term" else "_key": settings.get("order", "desc")
                },
            }
        }
    if agg["type"] == "date_histogram":
        wanted = settings.get("interval", "auto")
        return {
            "date_histogram": {
                "field": agg.get("field", TIME_FIELD),
                "fixed_interval": interval if wanted == "auto" else wanted,
                "min_doc_count": int(settings.get("min_doc_count", "0")),
            }
        }
    raise QueryFailed(f"Elasticsearch bucket aggregation {agg['type']!r} is not supported")


def es_search(target: Mapping[str, Any], query: str, ctx: Context) -> dict[str, Any]:
    """The search Grafana's Elasticsearch data source sends for ``target`` (our subset)."""
    rng = {
        "gte": int(ctx.time_range.start.timestamp() * 1000),
        "lte": int(ctx.time_range.end.timestamp() * 1000),
        "format": "epoch_millis",
    }
    filters: list[dict[str, Any]] = [{"range": {TIME_FIELD: rng}}]
    if query.strip():
        filters.append({"query_string": {"analyze_wildcard": True, "query": query}})
    body: dict[str, Any] = {"query": {"bool": {"filter": filters}}}
    metrics = target.get("metrics") or [{"type": "count", "id": "1"}]
    if metrics[0]["type"] == "raw_data":
        size = int((metrics[0].get("settings") or {}).get("size", "500"))
        body.update(size=size, sort=[{TIME_FIELD: {"order": "desc"}}])
        return body
    interval = format_interval(ctx.interval(ELASTICSEARCH_TYPE))
    aggs: dict[str, Any] = {}
    inner = aggs
    for agg in target.get("bucketAggs") or []:
        node = _es_bucket_agg(agg, interval)
        inner[str(agg["id"])] = node
        inner = node.setdefault("aggs", {})
    for metric in metrics:
        if metric["type"] == "count":
            continue
        if metric["type"] in ("avg", "max", "min", "sum"):
            inner[str(metric["id"])] = {metric["type"]: {"field": metric["field"]}}
        else:
            raise QueryFailed(f"Elasticsearch metric {metric['type']!r} is not supported")
    body.update(size=0, aggs=aggs)
    return body


def _flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _es_rows(
    aggs: Mapping[str, Any], bucket_aggs: Sequence[Mapping[str, Any]], prefix: tuple[Any, ...]
) -> list[tuple[Any, ...]]:
    if not bucket_aggs:
        return []
    agg = bucket_aggs[0]
    rows: list[tuple[Any, ...]] = []
    for bucket in aggs[str(agg["id"])]["buckets"]:
        key = (*prefix, bucket["key"])
        if len(bucket_aggs) == 1:
            rows.append((*key, bucket["doc_count"]))
        else:
            rows += _es_rows(bucket, bucket_aggs[1:], key)
    return rows


def run_es(stores: Stores, target: Mapping[str, Any], query: str, ctx: Context) -> Result:
    body = es_search(target, query, ctx)
    try:
        answer = stores.elasticsearch.search(index=stores.logs_index, body=body)
    except Exception as exc:  # the client's errors carry the node's reason
        raise QueryFailed(f"Elasticsearch: {exc}\n{query}") from exc
    if "aggs" not in body:
        docs = [_flatten(hit["_source"]) for hit in answer["hits"]["hits"]]
        columns = sorted({k for d in docs for k in d})
        return Result(columns=columns, rows=[tuple(d.get(c) for c in columns) for d in docs])
    bucket_aggs = target.get("bucketAggs") or []
    columns = [str(a.get("field", TIME_FIELD)) for a in bucket_aggs] + ["Count"]
    rows = _es_rows(answer["aggregations"], bucket_aggs, ())
    return Result(columns=columns, rows=[r for r in rows if r[-1] > 0])


@dataclass
class PanelCheck:
    dashboard: str
    title: str
    problems: list[str]
    rows: int = 0


def _organized_columns(panel: Mapping[str, Any]) -> list[str]:
    for t in panel.get("transformations") or []:
        if t.get("id") == "organize":
            return list((t.get("options") or {}).get("indexByName", {}))
    return []


def _stat_field(panel: Mapping[str, Any]) -> str | None:
    fields = ((panel.get("options") or {}).get("reduceOptions") or {}).get("fields") or ""
    match = re.fullmatch(r"/\^(.+)\$/", fields)
    return match.group(1) if match else None


def _legend_labels(target: Mapping[str, Any]) -> list[str]:
    return re.findall(r"\{\{\s*(\w+)\s*\}\}", str(target.get("legendFormat") or ""))


def expected_problems(
    panel: Mapping[str, Any], target: Mapping[str, Any], result: Result
) -> list[str]:
    """What the panel reads that ``result`` lacks; empty data is a problem too."""
    problems: list[str] = []
    if result.empty:
        return ["returned no data"]
    wanted = _organized_columns(panel)
    field_name = _stat_field(panel)
    if field_name is not None:
        wanted.append(field_name)
    missing = [c for c in wanted if c not in result.columns]
    if missing:
        problems.append(f"lacks the column(s) {missing}; it returned {result.columns}")
    if target.get("format") == "time_series":
        if "time" not in result.columns:
            problems.append(f"a time series without a time column: {result.columns}")
        values = [c for c in result.columns if c not in ("time", "metric")]
        numeric = [
            c
            for c in values
            if all(
                isinstance(row[result.columns.index(c)], (int, float, Decimal))
                for row in result.rows
                if row[result.columns.index(c)] is not None
            )
        ]
        if not numeric:
            problems.append(f"a time series without numeric values: {result.columns}")
    for label in _legend_labels(target):
        lacking = [s for s in result.series_labels if label not in s]
        if lacking:
            problems.append(f"legend label {label!r} is missing on {len(lacking)} series")
    for bucket in target.get("bucketAggs") or []:
        if bucket.get("type") == "terms" and bucket.get("field") not in result.columns:
            problems.append(f"no buckets of {bucket.get('field')!r}")
    return problems


def run_target(stores: Stores, ds_type: str, target: Mapping[str, Any], ctx: Context) -> Result:
    if ds_type == POSTGRES_TYPE:
        sql = expand_sql_macros(interpolate(str(target["rawSql"]), ds_type, ctx), ctx.time_range)
        return run_sql(stores, sql)
    if ds_type == PROMETHEUS_TYPE:
        expr = interpolate(str(target["expr"]), ds_type, ctx)
        return run_promql(stores, expr, ctx, instant=bool(target.get("instant")))
    if ds_type == ELASTICSEARCH_TYPE:
        return run_es(stores, target, interpolate(str(target.get("query", "")), ds_type, ctx), ctx)
    raise QueryFailed(f"data source type {ds_type!r} is not ours")


def resolve_variables(
    dashboard: Mapping[str, Any],
    stores: Stores,
    time_range: TimeRange,
    chosen: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Variable]:
    """Every template variable's values, by running its query in definition order.

    ``chosen`` picks values instead (they must be among the query's own); otherwise a
    multi-value variable takes all its values and a single-value one its first.
    """
    chosen = chosen or {}
    resolved: dict[str, Variable] = {}
    for var in (dashboard.get("templating") or {}).get("list", []):
        name, ds_type = var["name"], (var.get("datasource") or {}).get("type")
        multi, include_all = bool(var.get("multi")), bool(var.get("includeAll"))
        if var.get("type") != "query" or ds_type != POSTGRES_TYPE:
            raise QueryFailed(f"variable {name}: only Postgres query variables are supported")
        ctx = Context(time_range, resolved)
        result = run_target(stores, POSTGRES_TYPE, {"rawSql": var["query"]}, ctx)
        options = [str(row[0]) for row in result.rows if row[0] is not None]
        if name in chosen:
            unknown = [v for v in chosen[name] if v not in options]
            if unknown:
                raise QueryFailed(f"variable {name}: {unknown} are not among its values {options}")
            values = list(chosen[name])
        else:
            values = options if (multi or include_all) else options[:1]
        if not values:
            raise QueryFailed(f"variable {name}: its query returned no values")
        resolved[name] = Variable(name, multi, include_all, tuple(values))
    return resolved


def check_dashboard(
    dashboard: Mapping[str, Any],
    stores: Stores,
    time_range: TimeRange,
    chosen: Mapping[str, Sequence[str]] | None = None,
) -> list[PanelCheck]:
    """Run every panel's queries; one :class:`PanelCheck` per panel."""
    title = str(dashboard.get("title"))
    try:
        variables = resolve_variables(dashboard, stores, time_range, chosen)
    except QueryFailed as exc:
        return [PanelCheck(title, "(variables)", [str(exc)])]
    ctx = Context(time_range, variables)
    checks = []
    for panel in dashboard.get("panels") or []:
        if panel.get("type") == "row":
            continue
        ds_type = str((panel.get("datasource") or {}).get("type"))
        problems: list[str] = []
        rows = 0
        for target in panel.get("targets") or []:
            ref = target.get("refId", "")
            try:
                result = run_target(stores, ds_type, target, ctx)
            except QueryFailed as exc:
                problems.append(f"query {ref}: {exc}")
                continue
            rows += len(result.rows) + len(result.series_labels)
            problems += [f"query {ref} {p}" for p in expected_problems(panel, target, result)]
        checks.append(PanelCheck(title, str(panel.get("title")), problems, rows))
    return checks
