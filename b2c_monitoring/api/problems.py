"""Errors as RFC 9457 problem details; the only place domain errors become HTTP."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from b2c_monitoring.errors import (
    B2CError,
    Conflict,
    Forbidden,
    InvalidCursor,
    NotFound,
    StorageUnavailable,
    Unauthenticated,
)

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
_TYPE_BASE = "urn:b2c-monitoring:problem:"


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=[f"{_TYPE_BASE}not-found"])
    title: str = Field(examples=["Not found"])
    status: int = Field(examples=[404])
    detail: str | None = Field(default=None, examples=["no job 'j-42' in your tenants"])
    instance: str | None = Field(default=None, examples=["/api/admin/jobs/j-42"])


# (status, slug, title) per domain error
_MAPPING: list[tuple[type[B2CError], int, str, str]] = [
    (NotFound, 404, "not-found", "Not found"),
    (Conflict, 409, "conflict", "Conflict"),
    (Unauthenticated, 401, "unauthenticated", "Unauthenticated"),
    (Forbidden, 403, "forbidden", "Forbidden"),
    (StorageUnavailable, 503, "unavailable", "Service unavailable"),
]
# Anything else (a store refusing our own query, a setting that cannot work, ...) is
# our bug or our operator's: logged with its text, answered as a 500 without it.
_INTERNAL_DETAIL = "an unexpected error; see the API's log"

_STATUS_SLUGS = {
    400: "bad-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "too-large",
    422: "invalid-request",
}


def problem_response(
    request: Request, status: int, slug: str, title: str, detail: str | None, **extra: Any
) -> JSONResponse:
    body = Problem(
        type=_TYPE_BASE + slug,
        title=title,
        status=status,
        detail=detail,
        instance=request.url.path,
        **extra,
    )
    headers = {"WWW-Authenticate": 'Bearer realm="b2c-monitoring"'} if status == 401 else None
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def invalid_request(request: Request, errors: list[dict[str, str]]) -> JSONResponse:
    """A 422 naming each invalid value (``location``: where, ``message``: why)."""
    return problem_response(
        request,
        422,
        "invalid-request",
        "Invalid request",
        "; ".join(f"{e['location']}: {e['message']}" for e in errors),
        errors=errors,
    )


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem responses a route can give (see ``problem_media_type``)."""
    return {s: {"model": Problem, "description": _STATUS_SLUGS.get(s, "error")} for s in statuses}


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of this path answers (RFC 9110: ``Allow`` of a 405).

    Starlette's own ``Allow`` names the methods of the first route that matched the
    path, and a path here is often several routes (``GET`` and ``POST`` of a list).
    """
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.path_regex.match(request.url.path):
            methods |= route.methods or set()
    return sorted(methods)


def problem_media_type(schema: dict[str, Any]) -> dict[str, Any]:
    """Error responses are documented as application/problem+json, as they are sent.

    FastAPI files a response ``model`` under application/json; this moves it.
    """
    for operation in (op for path in schema.get("paths", {}).values() for op in path.values()):
        for status, response in operation.get("responses", {}).items():
            content = response.get("content", {})
            if status[:1] in ("4", "5") and "application/json" in content:
                content[PROBLEM_JSON] = content.pop("application/json")
    return schema


def edge_responses(schema: dict[str, Any]) -> dict[str, Any]:
    """The problems every operation can give before its route runs, documented once.

    422: a string no store can hold (``storable_text``), on any operation; 400: a body
    that is not JSON, 413: a body over ``storable_text.MAX_BODY_BYTES``, on those
    that take one.
    """
    problem = {"$ref": "#/components/schemas/Problem"}
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            edge = [422] + ([400, 413] if "requestBody" in operation else [])
            answers = operation.setdefault("responses", {})
            for status in edge:
                answers.setdefault(
                    str(status),
                    {
                        "description": _STATUS_SLUGS.get(status, "error"),
                        "content": {PROBLEM_JSON: {"schema": problem}},
                    },
                )
    schema.setdefault("components", {}).setdefault("schemas", {}).setdefault(
        "Problem", Problem.model_json_schema()
    )
    return schema


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = edge_responses(problem_media_type(FastAPI.openapi(app)))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    async def domain_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, B2CError)
        if isinstance(exc, InvalidCursor):
            # a cursor the client did not get from us: a 422 like any invalid parameter
            return invalid_request(request, [{"location": "query.cursor", "message": exc.message}])
        for kind, status, slug, title in _MAPPING:
            if isinstance(exc, kind):
                return problem_response(request, status, slug, title, exc.message)
        log.error(
            "%s on %s %s: %s",
            type(exc).__name__,
            request.method,
            request.url.path,
            exc.message,
            exc_info=exc,
        )
        return problem_response(request, 500, "internal", "Internal error", _INTERNAL_DETAIL)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return invalid_request(
            request,
            [
                {"location": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                for e in exc.errors()
            ],
        )

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        slug = _STATUS_SLUGS.get(exc.status_code, "error")
        response = problem_response(
            request, exc.status_code, slug, slug.replace("-", " ").capitalize(), str(exc.detail)
        )
        if exc.headers:
            response.headers.update(exc.headers)
        if exc.status_code == 405 and (methods := allowed_methods(request)):
            response.headers["Allow"] = ", ".join(methods)
        return response

    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem_response(request, 500, "internal", "Internal error", _INTERNAL_DETAIL)

    app.add_exception_handler(Exception, unexpected_error)
    app.add_exception_handler(B2CError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
