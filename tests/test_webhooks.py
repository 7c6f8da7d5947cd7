"""Webhooks: signed deliveries to a real local HTTP receiver, retried with backoff, bounded,
counted; their config checked key by key; events found by a running server."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time

import httpx
import pytest

from agenttrail import sdk
from agenttrail.notify import Dispatcher, Webhook, parse_webhooks
from agenttrail.service.settings import SettingsError, load_settings
from webhook_helpers import Receiver


@pytest.fixture
def receivers():
    made = []

    def make(*args, **kwargs):
        made.append(Receiver(*args, **kwargs))
        return made[-1]

    yield make
    for r in made:
        r.close()


def wait_until(check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_delivery_is_signed_and_retried_until_the_receiver_answers(receivers):
    receiver = receivers([500, 503, 302])  # two errors and a redirect, then 200
    dispatcher = Dispatcher((Webhook(receiver.url, secret="s3cret"),), base_delay=0.05, max_attempts=5)
    try:
        assert dispatcher.publish("validation.failed", "shop", {"run_id": "r1"}) == 1
        posts = receiver.wait_for(4)
        wait_until(lambda: dispatcher.counts.delivered == 1)
    finally:
        dispatcher.close()
    assert (dispatcher.counts.retried, dispatcher.counts.failed, dispatcher.pending) == (3, 0, 0)
    bodies = {body for _, body in posts}
    assert len(bodies) == 1  # every attempt sends the same bytes, so the same signature
    headers, body = posts[-1]
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Agenttrail-Signature"] == expected
    assert headers["X-Agenttrail-Event"] == "validation.failed" and headers["Content-Type"] == "application/json"
    event = json.loads(body)
    assert (event["event"], event["project_id"], event["data"]) == ("validation.failed", "shop", {"run_id": "r1"})
    assert event["delivery_id"] == headers["X-Agenttrail-Delivery"]


def test_gives_up_after_max_attempts_and_waits_longer_each_time(receivers):
    receiver = receivers([500] * 10)
    dispatcher = Dispatcher((Webhook(receiver.url),), base_delay=0.1, max_attempts=4)
    try:
        dispatcher.publish("failure.new_group", "shop", {})
        wait_until(lambda: dispatcher.counts.failed == 1)
    finally:
        dispatcher.close()
    assert len(receiver.received) == 4 and dispatcher.counts.delivered == 0
    assert "X-Agenttrail-Signature" not in receiver.received[0][0]  # no secret, no signature


def test_unreachable_receiver_is_retried_then_failed():
    dispatcher = Dispatcher((Webhook("http://127.0.0.1:9/nothing-listens"),), base_delay=0.01, max_attempts=3)
    try:
        dispatcher.publish("validation.failed", "shop", {})
        wait_until(lambda: dispatcher.counts.failed == 1)
    finally:
        dispatcher.close()
    assert dispatcher.counts.retried == 2


def test_a_full_queue_drops_and_publish_never_blocks(receivers):
    hold = threading.Event()
    receiver = receivers(hold=hold)  # holds the first delivery until released
    dispatcher = Dispatcher((Webhook(receiver.url),), max_pending=3)
    try:
        sent = [dispatcher.publish("validation.failed", "shop", {"n": i}) for i in range(10)]
        assert sent == [1, 1, 1] + [0] * 7 and dispatcher.counts.dropped == 7
        hold.set()
        wait_until(lambda: dispatcher.counts.delivered == 3)
    finally:
        dispatcher.close()
    assert sorted(e["data"]["n"] for e in receiver.events()) == [0, 1, 2]


def test_project_and_event_filters(receivers):
    shop, other = receivers(), receivers()
    dispatcher = Dispatcher((Webhook(shop.url, events=("failure.new_group",), projects=frozenset({"shop"})),
                             Webhook(other.url, projects=frozenset({"other"}))))
    try:
        assert dispatcher.publish("validation.failed", "shop", {}) == 0
        assert dispatcher.publish("failure.new_group", "shop", {}) == 1
        assert dispatcher.publish("validation.failed", "other", {}) == 1
        shop.wait_for(1), other.wait_for(1)
    finally:
        dispatcher.close()
    assert [e["event"] for e in shop.events()] == ["failure.new_group"]


@pytest.mark.parametrize("entry, message", [
    ("not a list", "webhooks: invalid value 'not a list': expected a list"),
    (["https://x"], "webhooks[0]: expected a mapping"),
    ([{"events": ["validation.failed"]}], "webhooks[0]: url is required"),
    ([{"url": "ftp://x/y"}], "webhooks[0].url: expected an http(s) URL"),
    ([{"url": "http://"}], "webhooks[0].url: expected an http(s) URL"),
    ([{"url": "http://a/" + "x" * 3000}], "at most 2048 characters"),
    ([{"url": "http://a/b", "event": ["validation.failed"]}], "webhooks[0] has invalid keys: event"),
    ([{"url": "http://a/b", "events": ["run.done"]}], "webhooks[0].events[0]: unknown event 'run.done'"),
    ([{"url": "http://a/b", "events": []}], "webhooks[0].events: expected a non-empty list"),
    ([{"url": "http://a/b", "projects": [""]}], "webhooks[0].projects[0]"),
    ([{"url": "http://a/b", "secret": 12345}], "webhooks[0].secret"),
    ([{"url": "http://a/b", "secret": "s" * 5000}], "webhooks[0].secret"),
    ([{"url": "http://a/b"}] * 51, "at most 50 entries"),
])
def test_bad_config_is_refused_by_name(tmp_path, entry, message):
    path = tmp_path / "agenttrail.yaml"
    path.write_text(json.dumps({"webhooks": entry}))  # JSON is YAML
    with pytest.raises(SettingsError) as err:
        load_settings({}, environ={}, config_path=str(path))
    assert message in str(err.value)


def test_config_file_form_and_no_environment_form(tmp_path):
    path = tmp_path / "agenttrail.yaml"
    path.write_text("webhooks:\n  - url: https://hooks.example.com/a\n    projects: [shop]\n    secret: k\n")
    settings = load_settings({}, environ={}, config_path=str(path))
    [hook] = parse_webhooks(list(settings.webhooks))
    assert hook.events == ("validation.failed", "failure.new_group") and hook.projects == {"shop"}
    with pytest.raises(SettingsError, match="AGENTTRAIL_WEBHOOKS.*config file"):
        load_settings({}, environ={"AGENTTRAIL_WEBHOOKS": "https://x"})


KEY = "admin-key-123456"


def _failing_sdk_run(server, message: str) -> str:
    """One SDK run whose orders_api step timed out, exported to ``server``; its run id."""
    sdk.configure(endpoint=server.grpc_endpoint, project="shop", api_key=KEY, set_global=False)
    try:
        with sdk.run(agent="support-agent") as r:
            try:
                with r.step("lookup", tool="orders_api"):
                    raise TimeoutError(message)
            except TimeoutError:
                pass
        assert sdk.flush(20)
    finally:
        sdk.shutdown()
    return r.run_id


def test_a_running_server_announces_failed_validations_and_new_failure_groups(make_server, receivers):
    receiver = receivers([503])  # the first delivery fails once and is retried
    elsewhere = receivers()
    server = make_server(api_keys=({"key": KEY, "scopes": ["admin"], "projects": ["*"]},), webhooks=(
        {"url": receiver.url, "secret": "s3cret", "projects": ["shop"]},
        {"url": elsewhere.url, "projects": ["other"]}))
    wait_until(lambda: server.event_watcher is not None and server.event_watcher.started)
    run_id = _failing_sdk_run(server, "orders_api timed out after 30s")
    with httpx.Client(base_url=server.api_url, headers={"x-api-key": KEY}, timeout=30) as c:
        verdict = c.post(f"/v1/runs/{run_id}/validate", json={"runbook_yaml": "name: strict\nmax_retries: 0\n"
                                                                              "budgets: {max_errors: 0}\n"})
        assert verdict.json()["status"] == "failed"
        receiver.wait_for(3)  # new group (refused once, then delivered) and the failed validation
        wait_until(lambda: server.webhooks.counts.delivered == 2)
        metrics = c.get("/metrics").text
    events = {e["event"]: e for e in receiver.events()}
    group = events["failure.new_group"]["data"]
    assert (group["category"], group["run_id"], group["tool"]) == ("timeout", run_id, "orders_api")
    assert group["fingerprint"] and group["message"].startswith("TimeoutError")
    failed = events["validation.failed"]["data"]
    assert failed["run_id"] == run_id and failed["runbook_name"] == "strict"
    assert [x["rule"] for x in failed["reasons"]] == ["budgets.max_errors"]
    for headers, body in receiver.received:
        assert headers["X-Agenttrail-Signature"] == "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert elsewhere.received == []
    assert 'agenttrail_webhook_deliveries_total{event="validation.failed",outcome="delivered"} 1.0' in metrics
    assert 'agenttrail_webhook_deliveries_total{event="failure.new_group",outcome="delivered"} 1.0' in metrics
    assert "agenttrail_webhook_retries_total 1.0" in metrics
    # The same group again is not new: a second failing run announces nothing more.
    _failing_sdk_run(server, "orders_api timed out after 31s")
    time.sleep(2.5)  # two watcher passes
    assert len(receiver.received) == 3


def test_a_hanging_receiver_does_not_hold_up_ingest(make_server, receivers):
    hold = threading.Event()
    receiver = receivers(hold=hold)
    server = make_server(webhooks=({"url": receiver.url},))
    wait_until(lambda: server.event_watcher is not None and server.event_watcher.started)
    sdk.configure(endpoint=server.grpc_endpoint, project="shop", set_global=False)
    try:
        ids = []
        for i, word in enumerate(("alpha", "beta", "gamma")):  # three messages, three groups
            with sdk.run(agent="a") as r:
                try:
                    with r.step("lookup", tool="tool"):
                        raise ValueError(f"broken {word}")
                except ValueError:
                    pass
            ids.append(r.run_id)
            assert sdk.flush(20)
            if i == 0:
                receiver.wait_for(1)  # the first announcement is now stuck in the receiver
    finally:
        sdk.shutdown()
    with httpx.Client(base_url=server.api_url, timeout=30) as c:
        assert all(c.get(f"/v1/runs/{run_id}").status_code == 200 for run_id in ids)
    assert server.webhooks.counts.delivered == 0
    hold.set()
    wait_until(lambda: server.webhooks.counts.delivered == 3)
