"""``agenttrail validate --server``: the same check through a server's REST API (stdlib HTTP).

``--run`` posts to ``/v1/runs/{id}/validate``; a project window pages through
``/v1/validations`` (failed and incomplete runs), the progress bar following the pages.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

PAGE = 500
TIMEOUT = 120


class RemoteError(ConnectionError):
    """The server refused the request or could not be reached."""


def _post(args, path: str, body: dict) -> dict:
    url = args.server.rstrip("/") + path
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise RemoteError(f"--server must be an http(s) URL, not {args.server!r}")
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if args.api_key:
        headers["x-api-key"] = args.api_key
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read()).get("error", {})
        except ValueError:
            error = {}
        message = error.get("message") or exc.reason
        if exc.code == 404:
            raise LookupError(f"{path}: {message}") from None
        raise RemoteError(f"server answered {exc.code} for {path}: {message}") from None
    except (urllib.error.URLError, TimeoutError, ValueError) as exc:
        raise RemoteError(f"cannot reach {args.server}: {exc}") from None


def validate_remote(args, runbook_text, progress) -> dict:
    """The outcome (see :mod:`.report`) computed by the server."""
    text = runbook_text.decode("utf-8") if isinstance(runbook_text, bytes) else runbook_text
    if args.run:
        runs = []
        for i, run_id in enumerate(args.run):
            runs.append(_post(args, f"/v1/runs/{urllib.parse.quote(run_id, safe='')}/validate",
                              {"runbook_yaml": text, "engine": args.engine}))
            progress.update(i + 1, len(args.run), "runs")
        counts = {s: sum(r["status"] == s for r in runs) for s in ("passed", "failed", "incomplete")}
        first = runs[0] if runs else {}
        header = {"name": first.get("runbook_name", ""), "hash": first.get("runbook_hash", "")}
        return {"runbook": header, "counts": {**counts, "total": len(runs)}, "runs": runs}
    body = {"runbook_yaml": text, "project_id": args.project, "since": args.since, "until": args.until,
            "agent": args.agent, "service": args.service, "statuses": ["failed", "incomplete"], "limit": PAGE}
    runs, offset = [], 0
    while True:
        page = _post(args, "/v1/validations", {**body, "offset": offset})
        runs += page["runs"]
        listed = page["counts"]["failed"] + page["counts"]["incomplete"]
        progress.update(len(runs), max(listed, 1), "runs")
        if page["next_offset"] is None or not page["runs"]:
            return {"runbook": page["runbook"], "counts": page["counts"], "runs": runs}
        offset = page["next_offset"]
