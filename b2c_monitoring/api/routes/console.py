"""/console/: the admin console, a built single-page app served from the API's own
origin, so that it and the hub need no CORS and the bearer token never leaves it.

Files under ``assets/`` carry a content hash in their names and are cached for a year;
every other path answers ``index.html`` (the app routes in the browser) uncached, so a
new build is picked up on the next load. The policy headers keep the page to its own
origin: no inline script, no framing, no referrer that could carry a path elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from b2c_monitoring.api.state import state_of
from b2c_monitoring.errors import NotFound

router = APIRouter(include_in_schema=False)

_POLICY = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; connect-src 'self' ws: wss:; frame-ancestors 'none'; "
        "base-uri 'self'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_IMMUTABLE = "public, max-age=31536000, immutable"


def console_file(root: Path, path: str) -> tuple[Path, bool]:
    """The file that answers ``/console/<path>`` and whether it is a hashed asset; any
    path that is not a file inside ``root`` (``..`` included) is the app's index."""
    index = root / "index.html"
    if not index.is_file():
        raise NotFound(
            f"the console is not built in {root}: run 'b2c stack install' "
            "(or 'npm ci && npm run build' in console/)"
        )
    candidate = (root / path).resolve()
    if path and candidate.is_file() and candidate.is_relative_to(root.resolve()):
        return candidate, path.startswith("assets/")
    return index, False


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/console/")


@router.get("/console")
def console_bare() -> RedirectResponse:
    return RedirectResponse("/console/")


@router.get("/console/{path:path}")
def console(path: str, request: Request) -> Response:
    file, immutable = console_file(state_of(request.app).console_dir, path)
    cache = _IMMUTABLE if immutable else "no-cache"
    return FileResponse(file, headers={**_POLICY, "Cache-Control": cache})
