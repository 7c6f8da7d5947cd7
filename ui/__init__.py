"""The run explorer: a static browser app, served by the API at ``/``, that reads only the
public REST API (what it shows, a script can fetch).

:func:`mount_ui` adds the assets under ``/ui/`` and answers the app's own page addresses
(``/``, ``/runs/…``, ``/overview``, ``/failures``, ``/runbooks``) with ``index.html``, so a
shared or reloaded link opens the same view.  Only those addresses fall back to the page:
unknown ``/v1`` paths stay JSON 404s.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
PAGES = ("/", "/runs", "/runs/{run_id}", "/overview", "/failures", "/runbooks")

# The page loads nothing from elsewhere and runs no inline script: a step attribute that holds
# markup can never execute, whatever slips through the rendering.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class _Assets(StaticFiles):
    """Static files that revalidate (``no-cache`` + ETag): an upgrade never serves stale code."""

    def file_response(self, *args, **kwargs):
        response = super().file_response(*args, **kwargs)
        response.headers.update(HEADERS)
        return response


def mount_ui(app: FastAPI) -> None:
    """Serve the run explorer from ``app``: assets at ``/ui/``, the page at its addresses."""
    app.mount("/ui", _Assets(directory=STATIC), name="ui")

    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=HEADERS, media_type="text/html")

    for path in PAGES:
        app.add_api_route(path, page, methods=["GET"], include_in_schema=False)
