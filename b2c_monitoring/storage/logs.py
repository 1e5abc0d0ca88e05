"""Reading log records from Elasticsearch; the client's errors are translated here, once.

The documents are those of the collector's elasticsearch exporter in mapping mode
``none`` (see ``stack/elasticsearch.py``, :func:`log_template`): ``@timestamp``
(date_nanos), ``Body``, ``SeverityText``, ``SeverityNumber``, ``TraceId``, ``SpanId``,
``Attributes.<attr>``, ``Resource.<attr>`` as flat dotted keys.

Tenant isolation is part of every query built here, never left to the caller. The
tenant of a record is its own ``tenant.id`` attribute, else its resource's, else the
configured default tenant (the contract's rule), so a record that names tenant B on
itself is never tenant A's even when its resource says A.

Pages are ordered by ``(@timestamp, _index, _seq_no)`` and continued with
``search_after``. ``_seq_no`` is unique within a shard and the ``b2c-logs`` template
gives every index one primary shard, so the key is unique without a point in time
(which would freeze the view and hide the new lines a follower is waiting for). A
record that arrives with a time before a position already served is not seen by a
reader continuing from that position.

The collector writes each record into the daily index ``<prefix>-YYYY.MM.DD`` of its
own time (UTC), so readers search ``<prefix>*`` (the single ``<prefix>`` index of the
first version included). :class:`LogIndices` keeps them: it creates today's and
tomorrow's index ahead (a search racing the creation by a first write would fail on a
shard not yet started) and deletes whole indices past the retention, by the date in
their name; the single index of the first version has no date and is never deleted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Literal

import elasticsearch
from elasticsearch import Elasticsearch

from b2c_monitoring.errors import StorageRejected, StorageUnavailable
from b2c_monitoring.unix_time import from_unix_nanos

Order = Literal["asc", "desc"]

TENANT_ATTR: Final = "tenant.id"
JOB_ID_ATTR: Final = "scheduler.job.id"
# Shown as fields of their own or implied by the job the lines belong to; and the
# collector's routing of a record to its daily index, which is no part of the record.
_WELL_KNOWN_ATTRS: Final = frozenset(
    {TENANT_ATTR, JOB_ID_ATTR, "scheduler.job.type", "elasticsearch.index"}
)

DAY_FORMAT: Final = "%Y.%m.%d"  # the collector's FormatTime(..., "%Y.%m.%d")


@dataclass(frozen=True)
class LogPosition:
    """Where a record sits in the sort order; a page continues after it."""

    timestamp_ns: int
    index: str
    seq_no: int

    def sort_values(self) -> list[Any]:
        return [self.timestamp_ns, self.index, self.seq_no]


@dataclass(frozen=True)
class LogRecord:
    time: datetime  # to the microsecond; ``position.timestamp_ns`` has the nanoseconds
    severity_text: str | None
    severity_number: int | None
    body: str
    trace_id: str | None
    span_id: str | None
    service_name: str | None
    attributes: dict[str, Any]  # record attributes other than the well-known ones
    position: LogPosition


@dataclass(frozen=True)
class LogPage:
    records: list[LogRecord]

    @property
    def last(self) -> LogPosition | None:
        return self.records[-1].position if self.records else None


def make_client(url: str, *, timeout: float = 10.0) -> Elasticsearch:
    """A client for the API's reads: short timeouts, so a dead node costs seconds."""
    return Elasticsearch(url, request_timeout=timeout, max_retries=1, retry_on_timeout=False)


@contextmanager
def translate_errors() -> Iterator[None]:
    """The elasticsearch client's errors as ``StorageError``: the one place they are mapped."""
    try:
        yield
    except elasticsearch.ApiError as exc:
        status = exc.meta.status
        if status == 429 or status >= 500:
            raise StorageUnavailable(f"Elasticsearch answered {status}: {exc.message}") from exc
        raise StorageRejected(f"Elasticsearch refused the query ({status}): {exc.message}") from exc
    except elasticsearch.TransportError as exc:  # ConnectionError, ConnectionTimeout, ...
        raise StorageUnavailable(f"Elasticsearch cannot be reached: {exc}") from exc


@dataclass(frozen=True)
class LogSearch:
    """Searches of the log indices ``index`` (a pattern: ``b2c-logs*``): the one place a
    search runs, for the log, the error and the alert readers alike. ``timeout``:
    seconds, None for the client's own."""

    client: Elasticsearch
    index: str
    timeout: float | None = None

    def __call__(self, body: Mapping[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        seconds = self.timeout if timeout is None else timeout
        client = self.client if seconds is None else self.client.options(request_timeout=seconds)
        with translate_errors():
            response = client.search(
                index=self.index,
                **body,
                # before the first record is written there is no index yet: nothing found
                ignore_unavailable=True,
                allow_no_indices=True,
            )
        result: dict[str, Any] = response.body
        return result


def hits(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = response.get("hits", {}).get("hits", [])
    return found


def tenant_filter(tenant_id: str, default_tenant: str) -> dict[str, Any]:
    """Records of ``tenant_id`` by the contract's rule: the record's own tenant.id wins."""
    record, resource = f"Attributes.{TENANT_ATTR}", f"Resource.{TENANT_ATTR}"
    should: list[dict[str, Any]] = [
        {"term": {record: tenant_id}},
        {
            "bool": {
                "filter": [{"term": {resource: tenant_id}}],
                "must_not": [{"exists": {"field": record}}],
            }
        },
    ]
    if tenant_id == default_tenant:
        should.append(
            {"bool": {"must_not": [{"exists": {"field": record}}, {"exists": {"field": resource}}]}}
        )
    return {"bool": {"should": should, "minimum_should_match": 1}}


def job_logs_search(
    tenant_id: str,
    job_id: str,
    *,
    default_tenant: str,
    min_severity: int | None = None,
    severities: Sequence[str] = (),
    text: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: LogPosition | None = None,
    limit: int = 100,
    order: Order = "asc",
) -> dict[str, Any]:
    """The search body of one page of a job's log (pure; every filter narrows)."""
    filters: list[dict[str, Any]] = [
        {"term": {f"Attributes.{JOB_ID_ATTR}": job_id}},
        tenant_filter(tenant_id, default_tenant),
    ]
    if min_severity is not None:
        filters.append({"range": {"SeverityNumber": {"gte": min_severity}}})
    if severities:
        # SDKs disagree on the spelling's case (WARN, Warning): compare without it
        filters.append(
            {
                "bool": {
                    "should": [
                        {"term": {"SeverityText": {"value": s, "case_insensitive": True}}}
                        for s in severities
                    ],
                    "minimum_should_match": 1,
                }
            }
        )
    if since is not None or until is not None:
        bounds: dict[str, str] = {}
        if since is not None:
            bounds["gte"] = since.isoformat()
        if until is not None:
            bounds["lt"] = until.isoformat()
        filters.append({"range": {"@timestamp": bounds}})
    query: dict[str, Any] = {"bool": {"filter": filters}}
    if text:
        query["bool"]["must"] = [{"match": {"Body": {"query": text, "operator": "and"}}}]
    body: dict[str, Any] = {
        "query": query,
        # date_nanos everywhere, even if an index ever maps @timestamp as a date
        "sort": [
            {"@timestamp": {"order": order, "numeric_type": "date_nanos"}},
            {"_index": {"order": order}},
            {"_seq_no": {"order": order}},
        ],
        "size": limit,
        "track_total_hits": False,
        "seq_no_primary_term": False,
    }
    if after is not None:
        body["search_after"] = after.sort_values()
    return body


def _flat(source: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :]: v for k, v in source.items() if k.startswith(prefix)}


def _body(source: Mapping[str, Any]) -> str:
    body = source.get("Body")
    if isinstance(body, str):
        return body
    if body is None:
        # a map body is written as Body.<key> fields
        parts = _flat(source, "Body.")
        return json.dumps(parts, sort_keys=True, default=str) if parts else ""
    return json.dumps(body, sort_keys=True, default=str)


def text_or_none(value: object) -> str | None:
    """A non-empty string from a document, else None."""
    return value if isinstance(value, str) and value else None


def record_of(hit: Mapping[str, Any]) -> LogRecord:
    source: Mapping[str, Any] = hit.get("_source") or {}
    timestamp_ns, index, seq_no = hit["sort"]
    severity = source.get("SeverityNumber")
    attributes = {
        k: v for k, v in _flat(source, "Attributes.").items() if k not in _WELL_KNOWN_ATTRS
    }
    return LogRecord(
        time=from_unix_nanos(int(timestamp_ns)),
        severity_text=text_or_none(source.get("SeverityText")),
        severity_number=severity if isinstance(severity, int) and severity > 0 else None,
        body=_body(source),
        trace_id=text_or_none(source.get("TraceId")),
        span_id=text_or_none(source.get("SpanId")),
        service_name=text_or_none(source.get("Resource.service.name")),
        attributes=attributes,
        position=LogPosition(int(timestamp_ns), str(index), int(seq_no)),
    )


class LogStore:
    """Log records in the indices matching ``index_pattern`` (e.g. ``b2c-logs*``)."""

    def __init__(self, client: Elasticsearch, index_pattern: str, *, default_tenant: str) -> None:
        self._search = LogSearch(client, index_pattern)
        self._default_tenant = default_tenant

    def job_logs(
        self,
        tenant_id: str,
        job_id: str,
        *,
        min_severity: int | None = None,
        severities: Sequence[str] = (),
        text: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: LogPosition | None = None,
        limit: int = 100,
        order: Order = "asc",
    ) -> LogPage:
        """One page of the log of job ``job_id`` of tenant ``tenant_id``, in ``order``
        of time; ``after`` is the position of the previous page's last record."""
        body = job_logs_search(
            tenant_id,
            job_id,
            default_tenant=self._default_tenant,
            min_severity=min_severity,
            severities=severities,
            text=text,
            since=since,
            until=until,
            after=after,
            limit=limit,
            order=order,
        )
        return LogPage([record_of(hit) for hit in hits(self._search(body))])

    def recent_job_logs(
        self, tenant_id: str, job_id: str, n: int = 20, *, timeout: float | None = None
    ) -> list[LogRecord]:
        """The last ``n`` records of a job's log, oldest first."""
        body = job_logs_search(
            tenant_id, job_id, default_tenant=self._default_tenant, limit=n, order="desc"
        )
        return [record_of(hit) for hit in hits(self._search(body, timeout=timeout))][::-1]


# --------------------------------------------------------------------------------------
# daily indices and their retention


def daily_index(prefix: str, day: date) -> str:
    """The index of the records of ``day`` (UTC), as the collector names it."""
    return f"{prefix}-{day.strftime(DAY_FORMAT)}"


def index_day(prefix: str, index: str) -> date | None:
    """The day in a daily index's name; None for any other index (``<prefix>`` itself,
    ``<prefix>-bench-...``), which retention leaves alone."""
    head = f"{prefix}-"
    if not index.startswith(head):
        return None
    try:
        return datetime.strptime(index[len(head) :], DAY_FORMAT).date()
    except ValueError:
        return None


def expired_indices(
    indices: Sequence[str], prefix: str, retention: timedelta, now: datetime
) -> list[str]:
    """The daily indices whose every record is older than ``retention`` at ``now``: the
    day ended before ``now - retention``. Today's index never is (retention >= 1 day)."""
    cutoff = now.astimezone(UTC) - retention
    expired = []
    for index in indices:
        day = index_day(prefix, index)
        if day is None:
            continue
        day_end = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)
        if day_end <= cutoff:
            expired.append(index)
    return sorted(expired)


@dataclass(frozen=True)
class LogIndicesReport:
    created: list[str]
    deleted: list[str]


class LogIndices:
    """The daily log indices ``<prefix>-YYYY.MM.DD``: created ahead, deleted past
    ``retention`` (whole indices; the zip's Elasticsearch has no ILM)."""

    def __init__(self, client: Elasticsearch, prefix: str, retention: timedelta) -> None:
        if retention < timedelta(days=1):
            raise ValueError("log retention must be at least one day")
        self._es = client
        self._prefix = prefix
        self._retention = retention

    def maintain(self, now: datetime) -> LogIndicesReport:
        """Create today's and tomorrow's index if missing, delete the expired ones."""
        today = now.astimezone(UTC).date()
        ahead = (daily_index(self._prefix, today + timedelta(days=d)) for d in (0, 1))
        created = [index for index in ahead if self._create(index)]
        with translate_errors():
            rows = self._es.cat.indices(index=f"{self._prefix}-*", h="index", format="json")
        names = [str(row["index"]) for row in rows.body if isinstance(row, dict)]
        expired = expired_indices(names, self._prefix, self._retention, now)
        if expired:
            with translate_errors():
                # explicit names: action.destructive_requires_name refuses wildcards
                self._es.indices.delete(index=",".join(expired), ignore_unavailable=True)
        return LogIndicesReport(created=created, deleted=expired)

    def _create(self, index: str) -> bool:
        with translate_errors():
            try:
                self._es.indices.create(index=index, wait_for_active_shards="1")
            except elasticsearch.BadRequestError as exc:
                # created meanwhile, e.g. by the collector's first write of the day
                if exc.message == "resource_already_exists_exception":
                    return False
                raise
        return True
