"""Panel builders shared by the dashboards: one function per kind of panel we use.

Each panel's description is the question it answers (the dashboards' README lists
them). Each panel also says, in plain Grafana terms, which columns it reads, so that
``check`` can hold the query to them:

- a table lists its columns in an ``organize`` transformation (``indexByName``);
- a stat names its field in ``reduceOptions.fields`` (``/^name$/``);
- a SQL time series reads ``time`` and numeric columns; a Prometheus panel reads the
  labels its legend names; an Elasticsearch panel reads its terms fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, TypeVar

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import elasticsearch as esb
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import elasticsearch as esm

from b2c_monitoring.dashboards.datasources import ELASTICSEARCH, POSTGRES, PROMETHEUS, Sql

REF_IDS: Final = "ABCDEFGHIJ"

_Panel = TypeVar("_Panel", stat.Panel, table.Panel, timeseries.Panel)

# status colours used everywhere: the contract's states
GOOD: Final = "green"
WARN: Final = "orange"
BAD: Final = "red"
IDLE: Final = "text"


def _organize(columns: Sequence[str], renames: Mapping[str, str]) -> dm.DataTransformerConfig:
    return dm.DataTransformerConfig(
        id_val="organize",
        options={
            "indexByName": {name: i for i, name in enumerate(columns)},
            "renameByName": dict(renames),
            "excludeByName": {},
        },
    )


def _thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


def text_map(values: Mapping[str, str]) -> list[dm.ValueMapping]:
    """Colour each state spelled as in the contract (``{"failed": "red", ...}``)."""
    return [
        dm.ValueMap(
            options={
                value: dm.ValueMappingResult(color=color, index=i)
                for i, (value, color) in enumerate(values.items())
            }
        )
    ]


JOB_STATUS_COLOURS: Final = {
    "pending": IDLE,
    "running": "blue",
    "succeeded": GOOD,
    "failed": BAD,
    "cancelled": WARN,
    "stalled": BAD,
    "overdue": WARN,
}
SERVICE_STATUS_COLOURS: Final = {"up": GOOD, "degraded": WARN, "down": BAD, "unknown": IDLE}
HEALTH_COLOURS: Final = {"healthy": GOOD, "degraded": WARN, "unhealthy": BAD, "unknown": IDLE}
SEVERITY_COLOURS: Final = {"info": "blue", "warning": WARN, "critical": BAD}


def _titled(panel: _Panel, title: str, question: str, datasource: dm.DataSourceRef) -> _Panel:
    return panel.title(title).description(question).datasource(datasource)


def _big_value(
    panel: stat.Panel, reduce: cb.ReduceDataOptions, thresholds: Sequence[tuple[float | None, str]]
) -> stat.Panel:
    """The look of every stat: a tile coloured by its last value, without a sparkline."""
    return (
        panel.height(5)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(reduce.calcs(["lastNotNull"]))
        .thresholds(_thresholds(*thresholds))
    )


def link(title: str, url: str) -> dm.DynamicConfigValue:
    """A data link on a table column (``${__value.raw}``, ``${__data.fields.x}`` work)."""
    return dm.DynamicConfigValue(id_val="links", value=[{"title": title, "url": url}])


def sql_stat(
    title: str,
    question: str,
    sql: str,
    *,
    field: str,
    unit: str = "none",
    thresholds: Sequence[tuple[float | None, str]] = ((None, GOOD),),
    mappings: list[dm.ValueMapping] | None = None,
    span: int = 4,
) -> stat.Panel:
    panel = _big_value(
        _titled(stat.Panel(), title, question, POSTGRES)
        .with_target(Sql(sql).ref_id("A"))
        .unit(unit)
        .span(span),
        cb.ReduceDataOptions().fields(f"/^{field}$/"),
        thresholds,
    )
    if mappings:
        panel = panel.mappings(mappings)
    return panel


def sql_table(
    title: str,
    question: str,
    sql: str,
    *,
    columns: Sequence[str],
    renames: Mapping[str, str] | None = None,
    colours: Mapping[str, Mapping[str, str]] | None = None,
    links: Mapping[str, dm.DynamicConfigValue] | None = None,
    units: Mapping[str, str] | None = None,
    span: int = 24,
    height: int = 9,
) -> table.Panel:
    panel = (
        _titled(table.Panel(), title, question, POSTGRES)
        .with_target(Sql(sql).ref_id("A"))
        .with_transformation(_organize(columns, renames or {}))
        .span(span)
        .height(height)
    )
    for column, values in (colours or {}).items():
        panel = panel.override_by_name(
            column,
            [
                dm.DynamicConfigValue(id_val="mappings", value=text_map(values)),
                dm.DynamicConfigValue(
                    id_val="custom.cellOptions", value={"type": "color-background"}
                ),
            ],
        )
    for column, data_link in (links or {}).items():
        panel = panel.override_by_name(column, [data_link])
    for column, unit in (units or {}).items():
        panel = panel.override_by_name(column, [dm.DynamicConfigValue(id_val="unit", value=unit)])
    return panel


def sql_timeseries(
    title: str,
    question: str,
    sql: str,
    *,
    unit: str = "none",
    bars: bool = False,
    span: int = 12,
) -> timeseries.Panel:
    panel = (
        _titled(timeseries.Panel(), title, question, POSTGRES)
        .with_target(Sql(sql, "time_series").ref_id("A"))
        .unit(unit)
        .span(span)
        .height(8)
    )
    if bars:
        panel = panel.draw_style(common.GraphDrawStyle.BARS).fill_opacity(60)
    return panel


def _promql(expr: str, legend: str, ref: str) -> prometheus.Dataquery:
    return (
        prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(PROMETHEUS)
    )


def prom_timeseries(
    title: str,
    question: str,
    targets: Sequence[tuple[str, str]],
    *,
    unit: str = "none",
    span: int = 12,
    stacked: bool = False,
) -> timeseries.Panel:
    """``targets`` are (PromQL, legend format) pairs."""
    panel = _titled(timeseries.Panel(), title, question, PROMETHEUS).unit(unit).span(span).height(8)
    for ref, (expr, legend) in zip(REF_IDS, targets, strict=False):
        panel = panel.with_target(_promql(expr, legend, ref).range())
    if stacked:
        panel = panel.stacking(cb.StackingConfig().mode(common.StackingMode.NORMAL))
    return panel


def _terms(agg_id: str, field: str, size: int) -> esb.Terms:
    return (
        esb.Terms()
        .id(agg_id)
        .field(field)
        .settings(
            esb.ElasticsearchTermsSettings()
            .size(str(size))
            .order(esm.TermsOrder.DESC)
            .order_by("_count")
            .min_doc_count("1")
        )
    )


def _es_query(
    lucene: str,
    metric: Builder[esm.MetricAggregation],
    buckets: list[Builder[esm.BucketAggregation]],
) -> esb.Dataquery:
    return (
        esb.Dataquery()
        .query(lucene)
        .time_field("@timestamp")
        .metrics([metric])
        .bucket_aggs(buckets)
        .ref_id("A")
        .datasource(ELASTICSEARCH)
    )


def es_timeseries(
    title: str,
    question: str,
    lucene: str,
    *,
    split_by: str,
    size: int = 10,
    span: int = 12,
) -> timeseries.Panel:
    """Documents per interval, one series per value of ``split_by``."""
    per_interval = (
        esb.DateHistogram()
        .id("3")
        .field("@timestamp")
        .settings(esb.ElasticsearchDateHistogramSettings().interval("auto").min_doc_count("0"))
    )
    return (
        _titled(timeseries.Panel(), title, question, ELASTICSEARCH)
        .with_target(
            _es_query(lucene, esb.Count().id("1"), [_terms("2", split_by, size), per_interval])
        )
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(60)
        .stacking(cb.StackingConfig().mode(common.StackingMode.NORMAL))
        .span(span)
        .height(8)
    )


def _es_table(
    title: str,
    question: str,
    query: esb.Dataquery,
    columns: Sequence[str],
    renames: Mapping[str, str],
    span: int,
    height: int,
) -> table.Panel:
    return (
        _titled(table.Panel(), title, question, ELASTICSEARCH)
        .with_target(query)
        .with_transformation(_organize(columns, renames))
        .span(span)
        .height(height)
    )


def es_terms_table(
    title: str,
    question: str,
    lucene: str,
    *,
    group_by: Sequence[str],
    renames: Mapping[str, str],
    size: int = 20,
    span: int = 12,
    height: int = 9,
) -> table.Panel:
    """Document counts per combination of ``group_by`` values (nested terms)."""
    buckets: list[Builder[esm.BucketAggregation]] = [
        _terms(str(i + 2), f, size) for i, f in enumerate(group_by)
    ]
    query = _es_query(lucene, esb.Count().id("1"), buckets)
    return _es_table(title, question, query, [*group_by, "Count"], renames, span, height)


def es_documents_table(
    title: str,
    question: str,
    lucene: str,
    *,
    columns: Sequence[str],
    renames: Mapping[str, str],
    size: int = 100,
    span: int = 24,
    height: int = 10,
) -> table.Panel:
    """The newest matching documents, with ``columns`` shown."""
    newest = esb.RawData().id("1").settings(esb.ElasticsearchRawDataSettings().size(str(size)))
    query = _es_query(lucene, newest, [])
    return _es_table(title, question, query, columns, renames, span, height)


def row(title: str) -> db.Row:
    return db.Row(title)
