"""``Client``: the agenttrail REST API from Python, with typed results.

    client = Client("http://localhost:8000", api_key="dev-key-123")
    run = client.run("4bf92f3577b34da6a3ce929d0e0e4736")
    verdict = client.validate(run.run_id, runbook_yaml=open("runbook.yaml").read())

Errors are the exceptions of :mod:`agenttrail.sdk.errors`.  Answers 429/502/503/504 and
connection failures are retried (``max_retries`` times) after the server's ``Retry-After``
(capped at ``max_retry_wait``) or an exponential back-off.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any, Iterator

import httpx

from . import errors
from .models import BatchValidation, IngestResult, Project, Run, Summary, Validation

_RETRY_STATUSES = (429, 502, 503, 504)


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None


def _params(filters: dict) -> dict:
    """Query parameters without None, booleans as the API spells them, datetimes as ISO."""
    out = {}
    for key, value in filters.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif hasattr(value, "isoformat"):
            value = value.isoformat()
        out[key] = value
    return out


class Client:
    """A synchronous client; use as a context manager or call :meth:`close`."""

    # The pause between retries; tests replace it to observe the waits without sleeping.
    _sleep = staticmethod(time.sleep)

    def __init__(self, base_url: str = "http://localhost:8000", api_key: str | None = None, *,
                 timeout: float = 10.0, max_retries: int = 3, max_retry_wait: float = 30.0,
                 transport: httpx.BaseTransport | None = None):
        headers = {"user-agent": "agenttrail-sdk"}
        if api_key:
            headers["x-api-key"] = api_key
        self.max_retries = max(0, int(max_retries))
        self.max_retry_wait = max_retry_wait
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout,
                                  transport=transport)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # -- transport ------------------------------------------------------------------------
    def _request(self, method: str, path: str, *, params: dict | None = None, json: Any = None,
                 text: bool = False) -> Any:
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, params=params, json=json)
            except httpx.TimeoutException as exc:
                failure: errors.AgentTrailError = errors.APITimeoutError(f"{method} {path}: no answer in time ({exc})")
                wait = None
            except httpx.TransportError as exc:
                failure = errors.APIConnectionError(f"{method} {path}: {type(exc).__name__}: {exc}")
                wait = None
            else:
                if response.status_code < 400:
                    if text:
                        return response.text
                    return response.json() if response.content else None
                wait = _retry_after(response.headers.get("retry-after"))
                failure = errors.error_for(response.status_code, _body(response), wait)
                if response.status_code not in _RETRY_STATUSES:
                    raise failure
            if attempt >= self.max_retries:
                raise failure
            self._sleep(min(self.max_retry_wait, wait if wait is not None else 0.5 * 2**attempt))
            attempt += 1

    # -- endpoints ------------------------------------------------------------------------
    def health(self) -> dict:
        """``GET /health``: ``{"status": "ok", "storage": "ok"}``."""
        return self._request("GET", "/health")

    def projects(self) -> list[Project]:
        """The projects this key can read."""
        body = self._request("GET", "/v1/projects") or {}
        return [Project.from_dict(p) for p in body.get("projects", [])]

    def summary(self, project: str, *, since=None, until=None) -> Summary:
        """A project's health: runs, rates, latencies, tokens, cost, top tools."""
        body = self._request("GET", f"/v1/projects/{_segment(project)}/summary",
                             params=_params({"since": since, "until": until}))
        return Summary.from_dict({"project_id": project, **(body or {})})

    def runs(self, *, page_size: int = 100, max_runs: int | None = None, **filters) -> Iterator[Run]:
        """Runs newest first, following ``next_cursor`` page by page.

        ``filters`` are the API's: project_id, status, agent, service, session, tool, model,
        since, until, has_errors, min_cost.  ``max_runs`` stops early.
        """
        params = _params({**filters, "limit": page_size})
        seen = 0
        while True:
            body = self._request("GET", "/v1/runs", params=params) or {}
            for item in body.get("runs", []):
                if max_runs is not None and seen >= max_runs:
                    return
                seen += 1
                yield Run.from_dict(item)
            cursor = body.get("next_cursor")
            if not cursor or (max_runs is not None and seen >= max_runs):
                return
            params = {**params, "cursor": cursor}

    def run(self, run_id: str) -> Run:
        """One run with its steps in order (and its latest validation when there is one)."""
        return Run.from_dict(self._request("GET", f"/v1/runs/{_segment(run_id)}"))

    def validate(self, run_id: str, runbook_yaml: str | None = None, *, runbook: str | None = None,
                 engine: str | None = None) -> Validation:
        """Judge a run against a runbook given as YAML text or by its stored name.

        ``engine``: ``"python"`` (the server's default) or ``"sql"`` (the compiled query that
        batches use); both give the same verdict.
        """
        if (runbook_yaml is None) == (runbook is None):
            raise ValueError("give exactly one of runbook_yaml or runbook")
        payload = {"runbook_yaml": runbook_yaml} if runbook_yaml is not None else {"runbook": runbook}
        if engine is not None:
            payload["engine"] = engine
        return Validation.from_dict(self._request("POST", f"/v1/runs/{_segment(run_id)}/validate", json=payload))

    def validations(self, run_id: str, *, limit: int | None = None) -> list[Validation]:
        """A run's validations, newest first."""
        body = self._request("GET", f"/v1/runs/{_segment(run_id)}/validations", params=_params({"limit": limit}))
        items = body.get("validations", []) if isinstance(body, dict) else (body or [])
        return [Validation.from_dict(v) for v in items]

    def validate_batch(self, project: str | None = None, runbook_yaml: str | None = None, *,
                       runbook: str | None = None, since=None, until=None, agent: str | None = None,
                       service: str | None = None, statuses: list[str] | None = None,
                       limit: int | None = None, offset: int | None = None) -> BatchValidation:
        """Judge a project's runs started in ``[since, until)`` (ISO time, or ``"1h"``/``"2d"`` ago).

        Returns counts by status and one page (``limit``/``offset``) of the runs whose status
        is in ``statuses`` (default: failed); nothing is stored.  :meth:`validate_batch_runs`
        walks every page.
        """
        if (runbook_yaml is None) == (runbook is None):
            raise ValueError("give exactly one of runbook_yaml or runbook")
        payload = _params({"project_id": project, "runbook_yaml": runbook_yaml, "runbook": runbook,
                           "since": since, "until": until, "agent": agent, "service": service,
                           "statuses": statuses, "limit": limit, "offset": offset})
        return BatchValidation.from_dict(self._request("POST", "/v1/validations", json=payload))

    def validate_batch_runs(self, project: str | None = None, runbook_yaml: str | None = None,
                            **options) -> Iterator[Validation]:
        """Every run :meth:`validate_batch` selects, page after page."""
        offset = options.pop("offset", 0) or 0
        while True:
            page = self.validate_batch(project, runbook_yaml, offset=offset, **options)
            yield from page.runs
            if page.next_offset is None or page.next_offset <= offset:
                return
            offset = page.next_offset

    def report(self, run_id: str) -> str:
        """``GET /v1/runs/{id}/report``: the run as a Markdown report."""
        return self._request("GET", f"/v1/runs/{_segment(run_id)}/report", text=True)

    def decisions(self, project: str, **filters) -> dict:
        """``GET /v1/projects/{p}/decisions``: decisions per type and option over the runs the
        run-list ``filters`` select (``agent_version=``, ``since=`` …), as the API returns them."""
        return self._request("GET", f"/v1/projects/{_segment(project)}/decisions", params=_params(filters))

    def quality(self, project: str, **filters) -> dict:
        """``GET /v1/projects/{p}/quality``: quality signals and the success rate with and without each."""
        return self._request("GET", f"/v1/projects/{_segment(project)}/quality", params=_params(filters))

    def compare(self, project: str, a: dict, b: dict, *, alpha: float | None = None) -> dict:
        """``GET /v1/projects/{p}/compare``: cohort ``a`` (the baseline) against ``b``, each a dict
        of run-list filters (``{"agent_version": "1.4.0"}``), with differences and significance."""
        params = {**{f"a_{k}": v for k, v in a.items()}, **{f"b_{k}": v for k, v in b.items()}, "alpha": alpha}
        return self._request("GET", f"/v1/projects/{_segment(project)}/compare", params=_params(params))

    def send_events(self, events: list[dict]) -> IngestResult:
        """``POST /v1/events``: seed 000's event API, for agents without OpenTelemetry."""
        return IngestResult.from_dict(self._request("POST", "/v1/events", json={"events": events}))


def _segment(value: str) -> str:
    """A path segment, refusing what would change the path (``/``, ``..``, empty)."""
    text = str(value)
    if not text or "/" in text or text in (".", "..") or "?" in text or "#" in text:
        raise ValueError(f"not a valid id: {value!r}")
    return text


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
