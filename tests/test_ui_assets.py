"""How the API serves the run explorer: the page at its addresses, assets under /ui/, and
nothing of the API's own answers changed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from api_helpers import KEYS, client

STATIC = Path(__file__).resolve().parents[1] / "ui" / "static"


@pytest.fixture
def keyed(make_server):
    return make_server(api_keys=KEYS)


@pytest.mark.parametrize("path", ["/", "/runs", "/runs?status=error", "/runs/0123456789abcdef0123456789abcdef",
                                  "/overview?project=shop", "/failures", "/runbooks"])
def test_every_page_address_answers_the_app_without_a_key(keyed, path):
    with client(keyed, None) as c:
        answer = c.get(path)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/ui/js/main.js">' in answer.text
    csp = answer.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_assets_are_served_and_revalidated(server):
    with client(server, None) as c:
        script = c.get("/ui/js/main.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert script.headers["cache-control"] == "no-cache" and script.headers["etag"]
        assert c.get("/ui/js/main.js", headers={"if-none-match": script.headers["etag"]}).status_code == 304
        assert c.get("/ui/app.css").headers["content-type"].startswith("text/css")


@pytest.mark.parametrize("path", ["/v1/nothing", "/v1/runs/stream/extra", "/ui/../api/app.py", "/ui/%2e%2e/api/app.py",
                                  "/ui/js/missing.js", "/runs/a/b", "/etc/passwd", "/" + "x" * 5000])
def test_other_paths_stay_404_and_never_leak_files(keyed, path):
    with client(keyed, None) as c:
        answer = c.get(path)
        assert answer.status_code in (404, 401), (path, answer.status_code)
        assert "def create_app" not in answer.text and "root:" not in answer.text
        if path.startswith("/v1/"):
            assert answer.json()["error"]["code"] in ("not_found", "unauthorized")
        assert c.get("/health").status_code == 200


def test_api_answers_and_schema_unchanged(keyed):
    with client(keyed, None) as c:
        assert c.get("/v1/runs").status_code == 401
        assert c.post("/", json={}).status_code == 405
        schema = c.get("/openapi.json").json()
    assert not [p for p in schema["paths"] if not p.startswith(("/v1/", "/health"))]
    assert "/v1/runs/stream" in schema["paths"]


def test_shipped_assets_are_small_and_load_nothing_remote():
    files = [p for p in STATIC.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 500 * 1024
    for path in files:
        text = path.read_text()
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), path
        assert not re.search(r"""(import|fetch)\s*\(?\s*["'](https?:)?//""", text), path
