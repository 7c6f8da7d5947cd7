"""``agenttrail validate`` end to end: exit codes, reports, JUnit/JSON, --storage and --server."""

from __future__ import annotations

import json
import socket
import threading
import time
import xml.etree.ElementTree as ET

import pytest
import uvicorn

from agenttrail.service.cli import main
from validator_helpers import step, write_runs

T0 = 1_700_000_000_000_000_000
GOOD, BAD, OPEN = ("0" * 31 + "1", "0" * 31 + "2", "0" * 31 + "3")
RB = "name: tools\nallowed_tools: [search]\nrequired_steps: [{tool: search}]\n"


def _run(tool="search", root=True):
    steps = [step("c1", parent_step_id="r", kind="tool", tool_name=tool, start_time=T0 + 1)]
    return ([step("r", kind="agent", name="support", start_time=T0)] if root else []) + steps


@pytest.fixture
def seeded(store, tmp_path):
    write_runs(store, "p1", {GOOD: _run(), BAD: _run(tool="shell"), OPEN: _run(root=False)})
    path = tmp_path / "rb.yaml"
    path.write_text(RB)
    return str(path)


def cli(capsys, *argv):
    code = main(["validate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_single_runs_exit_codes(seeded, storage_dsn, database, capsys, tmp_path):
    local = ["--storage", storage_dsn, "--database", database]
    assert cli(capsys, "--runbook", seeded, "--run", GOOD, *local)[0] == 0
    code, out, _ = cli(capsys, "--runbook", seeded, "--run", GOOD, "--run", BAD, *local)
    assert code == 1 and "FAIL" in out and "allowed_tools" in out and "steps: c1" in out
    assert cli(capsys, "--runbook", seeded, "--run", OPEN, *local)[0] == 1
    assert cli(capsys, "--runbook", seeded, "--run", OPEN, "--allow-incomplete", *local)[0] == 0
    code, _, err = cli(capsys, "--runbook", seeded, "--run", "missing", *local)
    assert code == 2 and "missing" in err
    renamed = tmp_path / "renamed.yaml"  # another runbook hash: judged afresh, not reused
    renamed.write_text(RB.replace("name: tools", "name: tools-by-sql"))
    code, out, _ = cli(capsys, "--runbook", str(renamed), "--run", BAD, "--engine", "sql", *local)
    assert code == 1 and "allowed_tools" in out and "steps: c1" in out  # the compiled query agrees
    with pytest.raises(SystemExit) as exit_info:  # argparse: not one of the choices
        main(["validate", "--runbook", seeded, "--run", GOOD, "--engine", "fast", *local])
    assert exit_info.value.code == 2 and "--engine" in capsys.readouterr().err


def test_project_window_with_junit_and_json(seeded, storage_dsn, database, capsys, tmp_path):
    junit, js = tmp_path / "out.xml", tmp_path / "out.json"
    code, out, err = cli(capsys, "--runbook", seeded, "--project", "p1", "--since", "2023-01-01T00:00:00Z",
                         "--storage", storage_dsn, "--database", database, "--junit", str(junit),
                         "--json", str(js), "--progress")
    assert code == 1 and "3 run(s) judged — 1 passed, 1 failed, 1 incomplete" in out
    assert "buckets" in err  # the forced progress bar
    suite = ET.parse(junit).getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    assert [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None] == [BAD]
    doc = json.loads(js.read_text())
    assert doc["counts"]["failed"] == 1 and doc["runs"][0]["reasons"][0]["step_ids"] == ["c1"]
    code, out, _ = cli(capsys, "--runbook", seeded, "--project", "p1", "--since", "1h",
                       "--storage", storage_dsn, "--database", database, "--json", "-")
    assert code == 1 and json.loads(out)["counts"]["total"] == 0  # nothing in the last hour
    assert cli(capsys, "--runbook", seeded, "--project", "p1", "--since", "1h", "--allow-empty",
               "--storage", storage_dsn, "--database", database)[0] == 0


@pytest.mark.parametrize("argv, message", [
    (["--run", "x"], "exactly one of --server"),
    (["--since", "1h", "--storage", "STORE"], "--since needs --project"),
    (["--since", "yesterday", "--project", "p", "--storage", "STORE"], "cannot read time"),
    (["--since", "99999999999d", "--project", "p", "--storage", "STORE"], "outside 1970"),
    (["--run", "x", "--storage", "ftp://nowhere"], "unsupported storage DSN"),
    (["--run", "x", "--server", "file:///etc/passwd"], "http(s) URL"),
    (["--run", "x", "--server", "http://127.0.0.1:9"], "cannot reach"),
])
def test_bad_arguments_exit_2(seeded, storage_dsn, capsys, argv, message):
    argv = [storage_dsn if a == "STORE" else a for a in argv]
    code, _, err = cli(capsys, "--runbook", seeded, *argv)
    assert code == 2 and message in err


def test_bad_runbook_exits_2_with_position(tmp_path, capsys):
    # the runbook is read before any storage is opened: this DSN is never touched
    path = tmp_path / "bad.yaml"
    path.write_text("allowed_tools: [search]\nbudgets: {max_tokens: 5}\n")
    code, _, err = cli(capsys, "--runbook", str(path), "--run", "x", "--storage", f"chdb://{tmp_path}/untouched")
    assert code == 2 and "line 2, column 11" in err and "budgets.max_tokens" in err
    code, _, err = cli(capsys, "--runbook", str(tmp_path / "absent.yaml"), "--run", "x", "--storage", f"chdb://{tmp_path}/untouched")
    assert code == 2 and "cannot read runbook" in err
    with pytest.raises(SystemExit) as exit_info:  # argparse: --runbook is required
        main(["validate", "--run", "x"])
    assert exit_info.value.code == 2


@pytest.fixture
def server(store):
    from agenttrail.api import runbooks
    from agenttrail.api.app import create_app

    app = create_app(store)
    if not any(getattr(r, "path", "") == "/v1/runbooks" for r in app.routes):
        app.include_router(runbooks.router)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not srv.started and time.time() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(5)


def test_server_mode_matches_storage_mode(seeded, server, capsys, tmp_path):
    code, out, _ = cli(capsys, "--runbook", seeded, "--run", BAD, "--server", server, "--api-key", "k")
    assert code == 1 and "allowed_tools" in out
    renamed = tmp_path / "renamed.yaml"  # another runbook hash: judged afresh, not reused
    renamed.write_text(RB.replace("name: tools", "name: tools-by-sql"))
    code, out, _ = cli(capsys, "--runbook", str(renamed), "--run", BAD, "--server", server, "--engine", "sql")
    assert code == 1 and "allowed_tools" in out  # the server's compiled query agrees
    js = tmp_path / "remote.json"
    code, out, _ = cli(capsys, "--runbook", seeded, "--project", "p1", "--since", "2023-01-01T00:00:00Z",
                       "--server", server, "--json", str(js))
    assert code == 1 and "1 passed, 1 failed, 1 incomplete" in out
    assert sorted(r["run_id"] for r in json.loads(js.read_text())["runs"]) == [BAD, OPEN]
    code, _, err = cli(capsys, "--runbook", seeded, "--run", "f" * 32, "--server", server)
    assert code == 2 and "not found" in err
    code, _, err = cli(capsys, "--runbook", seeded, "--run", "nope", "--server", server)
    assert code == 2 and "answered 422" in err
