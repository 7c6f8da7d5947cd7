"""The run explorer in a real browser (Debian's Chromium driven by Playwright) against a real
server fed by the OpenTelemetry SDK's own exporter."""

from __future__ import annotations

import re

import pytest

from api_helpers import ADMIN, KEYS, READ_A
from otel_helpers import record_support_run
from ui_helpers import record_long_run, seed, send

CHROMIUM = "/usr/bin/chromium"  # Debian's package; .ci/run installs it when missing
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
WAIT_MS = 20_000  # a hang guard for each wait, not a speed check (bench/ui_bench.py measures)



@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, errors


def run_ids(page) -> list[str]:
    return page.eval_on_selector_all("table.runs tbody tr", "rows => rows.map(r => r.dataset.run)")


def wait_rows(page, count: int) -> None:
    page.wait_for_function("n => document.querySelectorAll('table.runs tbody tr').length === n", arg=count)


def test_runs_page_lists_runs_and_filters_narrow_them(server, page):
    runs = seed(server)
    page.goto(server.api_url + "/")
    wait_rows(page, 4)
    assert set(run_ids(page)) == set(runs.values())
    page.select_option("select[name=has_errors]", "true")
    page.wait_for_url(re.compile(r"has_errors=true"))
    wait_rows(page, 2)
    assert set(run_ids(page)) == {runs["failed"], runs["long"]}
    page.fill("input[name=tool]", "order_lookup")
    page.press("input[name=tool]", "Enter")
    page.wait_for_url(re.compile(r"tool=order_lookup"))
    wait_rows(page, 1)
    assert run_ids(page) == [runs["failed"]]
    page.go_back()  # the filters live in the URL: back restores the previous list
    wait_rows(page, 2)
    page.goto(server.api_url + "/runs?project_id=billing")  # a shared link opens filtered
    wait_rows(page, 1)
    assert run_ids(page) == [runs["billing"]]
    assert page.eval_on_selector("select[name=project_id]", "s => s.value") == "billing"
    page.goto(server.api_url + "/runs?sort=-step_count&limit=1")
    wait_rows(page, 1)
    assert run_ids(page) == [runs["long"]]
    page.click("text=Next page")
    page.wait_for_url(re.compile(r"cursor="))
    wait_rows(page, 1)
    assert run_ids(page)[0] != runs["long"]


def test_a_live_run_appears_without_a_reload(server, page):
    seed(server)
    page.goto(server.api_url + "/runs")
    wait_rows(page, 4)
    page.wait_for_selector(".live[data-state=live]")
    page.evaluate("window.notReloaded = true")
    spans, run_id = record_support_run(project="shop", fail_tool=True)
    send(server, spans)
    page.wait_for_selector(f"tr[data-run='{run_id}']")
    assert run_ids(page)[0] == run_id and page.evaluate("window.notReloaded")
    assert page.inner_text(f"tr[data-run='{run_id}'] td:nth-child(7)") == "1"


def test_run_page_draws_one_bar_per_step_and_shows_the_failed_step(server, page):
    runs = seed(server)
    page.goto(server.api_url + f"/runs/{runs['failed']}")
    page.wait_for_selector("[data-ready=true]")
    assert page.locator(".wf-row .wf-bar").count() == 5
    failed = page.locator(".wf-row.wf-failed")
    assert failed.count() == 1 and "execute_tool order_lookup" in failed.inner_text()
    # Failure analysis: the failed tool is the root cause, highlighted and named in the card.
    assert "order_lookup" in page.locator(".wf-row.wf-root-cause").inner_text()
    assert "Root cause" in page.locator("section.failure").inner_text()
    # The failed step is selected on arrival; its panel shows the error and the arguments.
    panel = page.locator(".step-panel")
    assert "TimeoutError: timeout" in panel.locator(".error-box").inner_text()
    assert '"order_id": "12345"' in panel.inner_text()
    page.click(".wf-row:has-text('shipping_status')")
    assert "shipping_status" in panel.locator("h2").inner_text()
    assert "step=" in page.url
    # Keyboard: the timeline takes focus, arrows move the selection.
    page.focus(".wf-scroll")
    page.keyboard.press("Home")
    assert "invoke_agent" in panel.locator("h2").inner_text()
    page.keyboard.press("ArrowDown")
    assert "chat gpt-4o-mini" in panel.locator("h2").inner_text()


def test_a_long_run_renders_only_visible_rows_and_every_step_is_reachable(server, page):
    spans, run_id = record_long_run(301, fail_at=(90,))
    send(server, spans)
    page.goto(server.api_url + f"/runs/{run_id}")
    page.wait_for_selector("[data-ready=true]")
    rendered = page.locator(".wf-row").count()
    assert 0 < rendered < 100
    seen = set()
    height = page.eval_on_selector(".wf-canvas", "c => c.offsetHeight")
    assert height == len(spans) * 24
    for top in range(0, height, 400):
        page.eval_on_selector(".wf-scroll", "(s, top) => { s.scrollTop = top; s.dispatchEvent(new Event('scroll')); }", top)
        seen.update(page.eval_on_selector_all(".wf-row", "rows => rows.map(r => r.dataset.step)"))
    assert seen == {format(s.context.span_id, "016x") for s in spans}
    # Collapsing the root leaves one row, marked as holding a failure.
    page.eval_on_selector(".wf-scroll", "s => { s.scrollTop = 0; s.dispatchEvent(new Event('scroll')); }")
    page.click(".wf-row[aria-level='1'] .wf-toggle")
    assert page.locator(".wf-row").count() == 1
    assert page.locator(".wf-row.wf-failed-inside").count() == 1


def test_failures_page_groups_failed_steps_and_links_to_their_runs(server, page):
    runs = seed(server)
    page.goto(server.api_url + "/failures?project=research")
    page.wait_for_selector("[data-ready=true]")
    row = page.locator("table.errors tbody tr")
    assert row.count() == 1 and "HTTP 429: rate limit exceeded" in row.inner_text()
    page.select_option("select[name=group_by]", "tool")
    page.wait_for_url(re.compile(r"group_by=tool"))
    page.wait_for_selector("table.errors a:text('web_search')")
    page.click(f"table.errors a[href='/runs/{runs['long']}']")
    page.wait_for_selector("section.failure")
    assert "tried 2 times" in page.inner_text("section.failure")  # the failed searches were retried


def test_a_key_limited_to_one_project_sees_only_that_project(make_server, page):
    server = make_server(api_keys=KEYS)
    mine, other = [], []
    for project, ids in (("proj-a", mine), ("proj-b", other), ("proj-a", mine)):
        spans, run_id = record_support_run(project=project)
        send(server, spans, ADMIN)
        ids.append(run_id)
    page.goto(server.api_url + "/")
    page.wait_for_selector("#key-dialog[open]")
    page.fill("#key-input", READ_A)
    page.click("#key-form button[value=save]")
    wait_rows(page, 2)
    assert set(run_ids(page)) == set(mine)
    page.wait_for_selector(".live[data-state=live]")
    spans, hidden = record_support_run(project="proj-b")
    send(server, spans, ADMIN)
    spans, shown = record_support_run(project="proj-a")
    send(server, spans, ADMIN)
    page.wait_for_selector(f"tr[data-run='{shown}']")
    assert hidden not in run_ids(page) and other[0] not in run_ids(page)
    page.goto(server.api_url + f"/runs/{other[0]}")  # another project's run is simply not found
    page.wait_for_selector(".notice-error")
    assert "not found" in page.inner_text("main")
    page.goto(server.api_url + "/overview")
    page.wait_for_selector("[data-ready=true]")
    assert page.eval_on_selector_all("select[name=project] option", "o => o.map(x => x.value)") == ["proj-a"]


def _events(server, *events):
    import httpx
    answer = httpx.post(server.api_url + "/v1/events", json={"events": list(events)}, timeout=30)
    assert answer.status_code == 200 and answer.json()["failed"] == 0, answer.text
    return answer.json()["run_ids"]


def test_a_run_in_progress_is_redrawn_as_its_steps_arrive(server, page):
    run_id = _events(server, {"type": "run.start", "run_id": "live-run", "project_id": "shop", "agent": "tailer"},
                     {"type": "step.start", "run_id": "live-run", "step_id": "s1", "name": "fetch", "tool": "http"})["live-run"]
    page.goto(server.api_url + f"/runs/{run_id}")
    page.wait_for_selector(".run-header .live[data-state=live]")
    assert page.locator(".wf-row").count() == 2
    _events(server, {"type": "step.end", "run_id": "live-run", "step_id": "s1", "status": "error", "error": "HTTP 503"},
            {"type": "step.start", "run_id": "live-run", "step_id": "s2", "name": "retry fetch", "tool": "http"})
    page.wait_for_function("() => document.querySelectorAll('.wf-row').length === 3")
    _events(server, {"type": "run.end", "run_id": "live-run", "status": "error"})
    page.wait_for_selector(".run-header .badge-error")
    assert page.locator(".run-header .live").count() == 0  # finished: no longer followed


def test_hostile_names_and_attributes_render_as_text(server, page):
    hostile = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
    run_id = _events(server,
                     {"type": "run.start", "run_id": "hostile", "project_id": "shop", "agent": hostile},
                     {"type": "step.start", "run_id": "hostile", "step_id": "s1", "name": hostile, "tool": hostile,
                      "input": {"q": hostile}, "attributes": {hostile[:60]: hostile}},
                     {"type": "step.end", "run_id": "hostile", "step_id": "s1", "status": "error", "error": hostile},
                     {"type": "run.end", "run_id": "hostile", "status": "error"})["hostile"]
    page.goto(server.api_url + "/runs?project_id=shop")
    wait_rows(page, 1)
    assert hostile in page.inner_text("table.runs")
    page.goto(server.api_url + f"/runs/{run_id}?step=" + "x" * 3000)
    page.wait_for_selector("[data-ready=true]")
    page.click(".wf-row.wf-failed[aria-level='2']")
    assert hostile in page.inner_text(".step-panel .error-box")
    assert hostile in page.inner_text(".step-panel h2")
    assert page.evaluate("window.pwned") is None and page.locator("main img, main script").count() == 0


def test_validate_from_the_run_page_and_follow_a_reason_to_its_step(server, page):
    runs = seed(server)
    import httpx
    stored = httpx.post(server.api_url + "/v1/runbooks", timeout=30, json={
        "project_id": "shop", "yaml": "name: no-errors\nbudgets: {max_errors: 0}\n"})
    assert stored.status_code == 201, stored.text
    page.goto(server.api_url + f"/runs/{runs['failed']}?step=")
    page.wait_for_selector("[data-ready=true]")
    page.click("text=Validate against runbook…")
    page.wait_for_selector("select[name=runbook] option[value=no-errors]", state="attached")
    page.select_option("select[name=runbook]", "no-errors")
    page.click(".validate-form button[type=submit]")
    page.wait_for_selector(".reasons .step-link")
    assert "failed" in page.inner_text(".card:has(.reasons)") and "budgets.max_errors" in page.inner_text(".reasons")
    page.click(".wf-row[aria-level='1']")  # select the root, then follow the reason's link
    page.click(".reasons .step-link")
    assert "order_lookup" in page.inner_text(".step-panel h2")
    bad = page.locator(".validate-form")
    page.select_option("select[name=runbook]", "")
    page.fill("textarea[name=yaml]", "budgets: [not, a, mapping")
    bad.locator("button[type=submit]").click()
    page.wait_for_selector(".validate-form .error-text")  # a bad runbook is a readable error, not a crash
