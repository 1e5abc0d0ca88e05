"""A connected service's errors and communication errors, read from Elasticsearch.

Which records are a service's: those naming it as ``connected_service.name`` (on the
record or its resource), and those its own process emitted (``service.name``). Its
**errors** are those of level ERROR or above, and every communication error whatever
its level (a failed call is an error by definition; the probes' checks send them as
WARN). Its **communication errors** are the records with ``event.name`` =
``connected_service.communication_error`` (telemetry contract).

**Error patterns** are a terms aggregation on ``error.fingerprint``, which the
collector computes at ingestion (``b2c_monitoring/error_patterns.py``): the query
costs an aggregation over the matching documents, never a scan in Python.

The search bodies are built by pure functions (tested without a node) and every one
carries the tenant filter of ``storage/logs.py``; the query functions here are the
ones other parts reuse (the alerts' outage grouping, the dashboards).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from elasticsearch import Elasticsearch

from b2c_monitoring import contract as c
from b2c_monitoring.error_patterns import ERROR_SEVERITY, FINGERPRINT_ATTR, PATTERN_ATTR
from b2c_monitoring.storage.logs import (
    JOB_ID_ATTR,
    LogPosition,
    LogRecord,
    LogSearch,
    Order,
    hits,
    record_of,
    tenant_filter,
    text_or_none,
)

METHOD_ATTR: Final = "http.request.method"
STATUS_ATTR: Final = "http.response.status_code"
REQUEST_BODY_ATTR: Final = "communication.request.body"
RESPONSE_BODY_ATTR: Final = "communication.response.body"

# trend buckets: the first of these that gives at most this many buckets over the range
MAX_TREND_BUCKETS: Final = 48
_INTERVALS: Final = (
    ("1m", timedelta(minutes=1)),
    ("5m", timedelta(minutes=5)),
    ("15m", timedelta(minutes=15)),
    ("1h", timedelta(hours=1)),
    ("3h", timedelta(hours=3)),
    ("6h", timedelta(hours=6)),
    ("12h", timedelta(hours=12)),
    ("1d", timedelta(days=1)),
    ("7d", timedelta(days=7)),
)
MAX_JOBS_PER_PATTERN: Final = 20

Trend = Literal["rising", "falling", "steady", "new"]


@dataclass(frozen=True)
class ErrorQuery:
    """Which of a service's records; every filter narrows."""

    tenant_id: str
    service_name: str
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None
    communication_only: bool = False
    min_severity: int = ERROR_SEVERITY
    fingerprint: str | None = None
    status_codes: Sequence[int] = ()
    error_types: Sequence[str] = ()
    job_id: str | None = None


@dataclass(frozen=True)
class ServiceError:
    """One error record of a service, with the contract's communication fields."""

    record: LogRecord
    job_id: str | None
    event_name: str | None
    method: str | None
    url: str | None
    status_code: int | None
    server_address: str | None
    error_type: str | None
    message: str
    request_body: str | None
    response_body: str | None
    duration_s: float | None
    pattern: str | None
    fingerprint: str | None

    @property
    def is_communication_error(self) -> bool:
        return self.event_name == c.COMMUNICATION_ERROR_EVENT


@dataclass(frozen=True)
class ErrorPage:
    items: list[ServiceError]

    @property
    def last(self) -> LogPosition | None:
        return self.items[-1].record.position if self.items else None


@dataclass(frozen=True)
class TrendPoint:
    at: datetime
    count: int


@dataclass(frozen=True)
class ErrorPattern:
    fingerprint: str
    pattern: str
    count: int
    first_seen: datetime
    last_seen: datetime
    trend: Trend
    histogram: list[TrendPoint]
    example: ServiceError | None
    jobs: list[str]  # the most affected first, at most MAX_JOBS_PER_PATTERN
    jobs_affected: int | None  # approximate above a few thousand; None: not asked for


@dataclass(frozen=True)
class PatternReport:
    since: datetime
    until: datetime
    interval: str
    total: int  # communication errors in the range
    without_pattern: int  # stored before the collector computed patterns, or no text
    pattern_count: int  # distinct patterns (approximate above a few thousand)
    patterns: list[ErrorPattern] = field(default_factory=list)


# --------------------------------------------------------------------------------------
# search bodies (pure)


def service_filter(service_name: str) -> dict[str, Any]:
    """Records of the connected service ``service_name``, or emitted by it."""
    return {
        "bool": {
            "should": [
                {"term": {f"Attributes.{c.CONNECTED_SERVICE_NAME}": service_name}},
                {"term": {f"Resource.{c.CONNECTED_SERVICE_NAME}": service_name}},
                {"term": {f"Resource.{c.SERVICE_NAME}": service_name}},
            ],
            "minimum_should_match": 1,
        }
    }


def _is_communication_error() -> dict[str, Any]:
    return {"term": {f"Attributes.{c.EVENT_NAME}": c.COMMUNICATION_ERROR_EVENT}}


def error_filters(query: ErrorQuery, default_tenant: str) -> list[dict[str, Any]]:
    filters: list[dict[str, Any]] = [
        tenant_filter(query.tenant_id, default_tenant),
        service_filter(query.service_name),
    ]
    if query.communication_only:
        filters.append(_is_communication_error())
    else:
        filters.append(
            {
                "bool": {
                    "should": [
                        {"range": {"SeverityNumber": {"gte": query.min_severity}}},
                        _is_communication_error(),
                    ],
                    "minimum_should_match": 1,
                }
            }
        )
    if query.since is not None or query.until is not None:
        bounds: dict[str, str] = {}
        if query.since is not None:
            bounds["gte"] = query.since.isoformat()
        if query.until is not None:
            bounds["lt"] = query.until.isoformat()
        filters.append({"range": {"@timestamp": bounds}})
    if query.fingerprint is not None:
        filters.append({"term": {f"Attributes.{FINGERPRINT_ATTR}": query.fingerprint}})
    if query.status_codes:
        filters.append({"terms": {f"Attributes.{STATUS_ATTR}": list(query.status_codes)}})
    if query.error_types:
        filters.append({"terms": {f"Attributes.{c.ERROR_TYPE}": list(query.error_types)}})
    if query.job_id is not None:
        filters.append({"term": {f"Attributes.{JOB_ID_ATTR}": query.job_id}})
    return filters


def _query(query: ErrorQuery, default_tenant: str) -> dict[str, Any]:
    body: dict[str, Any] = {"bool": {"filter": error_filters(query, default_tenant)}}
    if query.text:
        body["bool"]["must"] = [
            {
                "multi_match": {
                    "query": query.text,
                    "fields": ["Body", f"Attributes.{c.EXCEPTION_MESSAGE}"],
                    "operator": "and",
                }
            }
        ]
    return body


def errors_search(
    query: ErrorQuery,
    *,
    default_tenant: str,
    after: LogPosition | None = None,
    limit: int = 100,
    order: Order = "desc",
) -> dict[str, Any]:
    """One page of a service's errors, ordered like ``storage/logs.py`` pages."""
    body: dict[str, Any] = {
        "query": _query(query, default_tenant),
        "sort": [
            {"@timestamp": {"order": order, "numeric_type": "date_nanos"}},
            {"_index": {"order": order}},
            {"_seq_no": {"order": order}},
        ],
        "size": limit,
        "track_total_hits": False,
    }
    if after is not None:
        body["search_after"] = after.sort_values()
    return body


def trend_interval(since: datetime, until: datetime) -> tuple[str, timedelta]:
    """The shortest interval that gives at most ``MAX_TREND_BUCKETS`` over the range."""
    span = until - since
    for name, width in _INTERVALS:
        if span / width <= MAX_TREND_BUCKETS:
            return name, width
    return _INTERVALS[-1]


def patterns_search(
    query: ErrorQuery,
    *,
    default_tenant: str,
    since: datetime,
    until: datetime,
    limit: int,
    with_jobs: bool = True,
) -> dict[str, Any]:
    """Communication errors of a service in ``since``..``until`` grouped by fingerprint;
    without ``with_jobs`` no jobs per pattern (about half the cost over many errors)."""
    interval, _ = trend_interval(since, until)
    bounded = ErrorQuery(
        tenant_id=query.tenant_id,
        service_name=query.service_name,
        since=since,
        until=until,
        text=query.text,
        communication_only=True,
        status_codes=query.status_codes,
        error_types=query.error_types,
        job_id=query.job_id,
    )
    millis = (int(since.timestamp() * 1000), int(until.timestamp() * 1000) - 1)
    jobs: dict[str, Any] = {
        "jobs": {"terms": {"field": f"Attributes.{JOB_ID_ATTR}", "size": MAX_JOBS_PER_PATTERN}},
        "job_count": {"cardinality": {"field": f"Attributes.{JOB_ID_ATTR}"}},
    }
    return {
        "query": _query(bounded, default_tenant),
        "size": 0,
        "track_total_hits": True,
        "aggs": {
            "patterns": {
                "terms": {
                    "field": f"Attributes.{FINGERPRINT_ATTR}",
                    "size": limit,
                    "order": [{"_count": "desc"}, {"_key": "asc"}],
                },
                "aggs": {
                    "first": {"min": {"field": "@timestamp"}},
                    "last": {"max": {"field": "@timestamp"}},
                    "trend": {
                        "date_histogram": {
                            "field": "@timestamp",
                            "fixed_interval": interval,
                            "min_doc_count": 0,
                            "extended_bounds": {"min": millis[0], "max": millis[1]},
                        }
                    },
                    "example": {
                        "top_hits": {
                            "size": 1,
                            "sort": [
                                {"@timestamp": {"order": "desc", "numeric_type": "date_nanos"}},
                                {"_index": {"order": "desc"}},
                                {"_seq_no": {"order": "desc"}},
                            ],
                        }
                    },
                    **(jobs if with_jobs else {}),
                },
            },
            "pattern_count": {"cardinality": {"field": f"Attributes.{FINGERPRINT_ATTR}"}},
            "without_pattern": {"missing": {"field": f"Attributes.{FINGERPRINT_ATTR}"}},
        },
    }


# --------------------------------------------------------------------------------------
# reading the answers (pure)


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def error_of(hit: Mapping[str, Any]) -> ServiceError:
    """A hit sorted like ``errors_search``'s as a ``ServiceError``."""
    source: Mapping[str, Any] = hit.get("_source") or {}
    record = record_of(hit)

    def attr(name: str) -> object:
        return source.get(f"Attributes.{name}")

    return ServiceError(
        record=record,
        job_id=text_or_none(attr(JOB_ID_ATTR)),
        event_name=text_or_none(attr(c.EVENT_NAME)),
        method=text_or_none(attr(METHOD_ATTR)),
        url=text_or_none(attr(c.URL_FULL)),
        status_code=_int(attr(STATUS_ATTR)),
        server_address=text_or_none(attr(c.SERVER_ADDRESS)),
        error_type=text_or_none(attr(c.ERROR_TYPE)),
        message=text_or_none(attr(c.EXCEPTION_MESSAGE)) or record.body,
        request_body=text_or_none(attr(REQUEST_BODY_ATTR)),
        response_body=text_or_none(attr(RESPONSE_BODY_ATTR)),
        duration_s=_float(attr(c.COMMUNICATION_DURATION)),
        pattern=text_or_none(attr(PATTERN_ATTR)),
        fingerprint=text_or_none(attr(FINGERPRINT_ATTR)),
    )


def _millis(value: object) -> datetime | None:
    if not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value / 1000, UTC)


def trend_of(counts: Sequence[int]) -> Trend:
    """``new`` when nothing came in the range's first half; ``rising`` / ``falling`` when
    the second half has at least half as many again / a third fewer; else ``steady``."""
    half = len(counts) // 2
    first, second = sum(counts[:half]), sum(counts[half:])
    if first == 0:
        return "new" if second > 0 else "steady"
    if second >= first * 1.5:
        return "rising"
    if second <= first * 2 / 3:
        return "falling"
    return "steady"


def pattern_report(response: Mapping[str, Any], since: datetime, until: datetime) -> PatternReport:
    interval, _ = trend_interval(since, until)
    aggregations: Mapping[str, Any] = response.get("aggregations") or {}
    patterns = []
    for bucket in (aggregations.get("patterns") or {}).get("buckets", []):
        example_hits = bucket["example"]["hits"]["hits"]
        example = error_of(example_hits[0]) if example_hits else None
        histogram = [
            TrendPoint(at=datetime.fromtimestamp(b["key"] / 1000, UTC), count=b["doc_count"])
            for b in bucket["trend"]["buckets"]
        ]
        first = _millis(bucket["first"].get("value"))
        last = _millis(bucket["last"].get("value"))
        patterns.append(
            ErrorPattern(
                fingerprint=str(bucket["key"]),
                pattern=(example.pattern if example is not None else None) or "",
                count=int(bucket["doc_count"]),
                first_seen=first or since,
                last_seen=last or until,
                trend=trend_of([p.count for p in histogram]),
                histogram=histogram,
                example=example,
                jobs=[str(j["key"]) for j in (bucket.get("jobs") or {}).get("buckets", [])],
                jobs_affected=(
                    int(bucket["job_count"].get("value") or 0) if "job_count" in bucket else None
                ),
            )
        )
    total = (response.get("hits") or {}).get("total") or {}
    return PatternReport(
        since=since,
        until=until,
        interval=interval,
        total=int(total.get("value", 0)) if isinstance(total, Mapping) else int(total),
        without_pattern=int((aggregations.get("without_pattern") or {}).get("doc_count", 0)),
        pattern_count=int((aggregations.get("pattern_count") or {}).get("value", 0)),
        patterns=patterns,
    )


# --------------------------------------------------------------------------------------
# the store


class ErrorStore:
    """A service's errors in the log indices matching ``index_pattern``."""

    def __init__(self, client: Elasticsearch, index_pattern: str, *, default_tenant: str) -> None:
        self._search = LogSearch(client, index_pattern)
        self._default_tenant = default_tenant

    def errors(
        self,
        query: ErrorQuery,
        *,
        after: LogPosition | None = None,
        limit: int = 100,
        order: Order = "desc",
    ) -> ErrorPage:
        body = errors_search(
            query, default_tenant=self._default_tenant, after=after, limit=limit, order=order
        )
        return ErrorPage([error_of(hit) for hit in hits(self._search(body))])

    def scan(
        self, query: ErrorQuery, *, batch: int = 1000, max_items: int | None = None
    ) -> Iterator[ServiceError]:
        """Every matching error, oldest first, a page of ``batch`` at a time; stops after
        ``max_items``. Pages continue by ``search_after``, so nothing is held open."""
        after: LogPosition | None = None
        served = 0
        while max_items is None or served < max_items:
            size = batch if max_items is None else min(batch, max_items - served)
            page = self.errors(query, after=after, limit=size, order="asc")
            yield from page.items
            served += len(page.items)
            if len(page.items) < size:
                return
            after = page.last

    def patterns(
        self,
        query: ErrorQuery,
        *,
        since: datetime,
        until: datetime,
        limit: int = 20,
        with_jobs: bool = True,
    ) -> PatternReport:
        body = patterns_search(
            query,
            default_tenant=self._default_tenant,
            since=since,
            until=until,
            limit=limit,
            with_jobs=with_jobs,
        )
        return pattern_report(self._search(body), since, until)
