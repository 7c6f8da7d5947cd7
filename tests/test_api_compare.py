"""Comparing two cohorts of runs: figures, differences and significance, by the real engine."""

from __future__ import annotations

import math

import pytest

from agenttrail.storage.compare import two_proportion_test
from api_helpers import KEYS, READ_A, READ_B, add_run, client, hours_ago


@pytest.fixture
def api(make_server):
    return make_server(api_keys=KEYS)


def mann_whitney(a: list[float], b: list[float]) -> tuple[float, float]:
    """U of sample a and the two-sided p (normal approximation, tie and continuity corrected),
    written from the textbook formulas as an independent reference."""
    pooled = sorted(a + b)
    ranks, i = {}, 0
    while i < len(pooled):
        j = i
        while j < len(pooled) and pooled[j] == pooled[i]:
            j += 1
        ranks[pooled[i]] = (i + 1 + j) / 2
        i = j
    n_a, n_b, n = len(a), len(b), len(a) + len(b)
    u = sum(ranks[x] for x in a) - n_a * (n_a + 1) / 2
    ties = sum(t ** 3 - t for t in (pooled.count(v) for v in set(pooled)))
    sigma = math.sqrt(n_a * n_b / 12 * ((n + 1) - ties / (n * (n - 1))))
    z = (abs(u - n_a * n_b / 2) - 0.5) / sigma
    return u, math.erfc(z / math.sqrt(2))


def _fill(store) -> tuple[list[float], list[float]]:
    """Version 1: 30 runs, 27 ok, fast.  Version 2: 30 runs, 15 ok, slower, more refund calls."""
    durations = {"1": [], "2": []}
    for i in range(30):
        for version, failing, latency in (("1", i < 3, 40 + i), ("2", i < 15, 60 + i * 2)):
            tools = (("search", "ok", latency),) + ((("refund", "error", 10),) if version == "2" and i % 2 else ())
            add_run(store, "proj-a", hours_ago(1 + i / 100), status="error" if failing else "ok", tools=tools,
                    root_attributes={"gen_ai.agent.version": version}, cost=0.001 if version == "1" else 0.002,
                    tokens=(100, 20 + i))
            durations[version].append(220 + latency + 5 + (15 if len(tools) == 2 else 0))
    add_run(store, "proj-b", hours_ago(1), root_attributes={"gen_ai.agent.version": "1"}, tools=(("secret", "ok", 5),))
    return durations["1"], durations["2"]


def test_two_proportion_test_matches_the_formula():
    # 27/30 against 15/30: pooled 0.7, se = sqrt(0.7 * 0.3 * (2/30)).
    z = (0.5 - 0.9) / math.sqrt(0.7 * 0.3 * (2 / 30))
    result = two_proportion_test(27, 30, 15, 30)
    assert result["z"] == pytest.approx(z, abs=1e-4)
    assert result["p_value"] == pytest.approx(math.erfc(abs(z) / math.sqrt(2)), rel=1e-5)
    assert two_proportion_test(0, 0, 1, 2) == {"z": None, "p_value": None}
    assert two_proportion_test(3, 3, 5, 5) == {"z": 0.0, "p_value": 1.0}


def test_compare_agent_versions(api):
    durations_a, durations_b = _fill(api.store)
    with client(api) as c:
        body = c.get("/v1/projects/proj-a/compare", params={"a_agent_version": "1", "b_agent_version": "2"}).json()
        listed = c.get("/v1/runs", params={"agent_version": "2", "limit": 500}).json()["runs"]
    assert len(listed) == 30 and {r["project_id"] for r in listed} == {"proj-a"}
    assert body["a"]["filters"] == {"agent_version": "1"} and body["a"]["runs"] == 30 and body["b"]["runs"] == 30
    success = body["metrics"]["success_rate"]
    assert (success["a"], success["b"], success["difference"]) == (0.9, 0.5, -0.4)
    assert success["p_value"] == pytest.approx(two_proportion_test(27, 30, 15, 30)["p_value"])
    assert success["significant"] is True and success["test"] == "two_proportion_z"
    duration = body["metrics"]["duration_ms"]
    u, p = mann_whitney(durations_a, durations_b)
    assert duration["u"] == pytest.approx(u) and duration["p_value"] == pytest.approx(p, rel=1e-4)
    assert duration["significant"] and duration["difference"]["p50"] > 0
    assert duration["a"]["p50"] == pytest.approx(sorted(durations_a)[15], abs=2)
    tokens = body["metrics"]["tokens_per_run"]
    assert tokens["a"] == tokens["b"] == pytest.approx(120 + 14.5) and tokens["significant"] is False
    cost = body["metrics"]["cost_per_run"]
    assert (cost["a"], cost["b"], cost["difference"]) == (0.001, 0.002, 0.001) and cost["significant"]
    tools = {t["tool"]: t for t in body["tools"]}
    assert tools["search"]["a"] == {"runs": 30, "calls": 30, "errors": 0, "share_of_runs": 1.0}
    assert tools["refund"]["b"]["runs"] == 15 and tools["refund"]["a"]["share_of_runs"] == 0.0
    assert tools["refund"]["difference"] == 0.5 and tools["refund"]["significant"]
    assert "secret" not in str(body)


def test_a_failure_category_that_rose_is_a_prompt_regression(api):
    for i in range(30):
        a_tools = (("search", "error", 5, "rate_limited"),) if i == 0 else (("search", "ok", 5),)
        b_tools = (("search", "error", 5, "tool_schema_mismatch"), ("search", "error", 5, "tool_schema_mismatch")) \
            if i < 12 else a_tools
        for version, tools in (("1", a_tools), ("2", b_tools)):
            add_run(api.store, "proj-a", hours_ago(1), status="error" if tools[0][1] == "error" else "ok",
                    tools=tools, root_attributes={"gen_ai.agent.version": version})
    with client(api) as c:
        body = c.get("/v1/projects/proj-a/compare", params={"a_agent_version": "1", "b_agent_version": "2"}).json()
    categories = {c["category"]: c for c in body["failure_categories"]}
    schema = categories["tool_schema_mismatch"]
    assert schema["a"] == {"runs": 0, "steps": 0, "share_of_runs": 0.0}
    assert schema["b"] == {"runs": 12, "steps": 24, "share_of_runs": 0.4}
    assert schema["p_value"] == pytest.approx(two_proportion_test(0, 30, 12, 30)["p_value"])
    assert schema["rose_significantly"] and not categories["rate_limited"]["rose_significantly"]
    assert categories["rate_limited"]["difference"] == pytest.approx(-1 / 30, abs=1e-6)
    assert body["prompt_regression"] == {"detected": True, "categories": ["tool_schema_mismatch"]}
    with client(api) as c:
        reverse = c.get("/v1/projects/proj-a/compare", params={"a_agent_version": "2", "b_agent_version": "1"}).json()
    assert reverse["prompt_regression"]["detected"] is False  # categories that fell are not regressions


def test_identical_cohorts_are_not_significant_and_empty_cohorts_have_no_figures(api):
    _fill(api.store)
    with client(api) as c:
        same = c.get("/v1/projects/proj-a/compare", params={"a_agent_version": "1", "b_agent_version": "1"}).json()
        empty = c.get("/v1/projects/proj-a/compare", params={"a_agent_version": "9", "b_model": "nothing"}).json()
    assert same["metrics"]["success_rate"]["p_value"] == 1.0 and same["metrics"]["duration_ms"]["p_value"] > 0.9
    assert not any(m.get("significant") for m in same["metrics"].values())
    assert same["prompt_regression"] == {"detected": False, "categories": []}
    assert empty["a"]["runs"] == 0 and empty["metrics"]["success_rate"]["p_value"] is None
    assert empty["metrics"]["duration_ms"]["u"] is None and empty["tools"] == []


def test_cohorts_by_window_status_and_tool(api):
    _fill(api.store)
    add_run(api.store, "proj-a", hours_ago(30), status="error")
    with client(api) as c:
        body = c.get("/v1/projects/proj-a/compare", params={
            "a_since": hours_ago(48).isoformat(), "a_until": hours_ago(24).isoformat(),
            "b_tool": "refund", "b_status": "error"}).json()
    assert body["a"]["runs"] == 1 and body["a"]["success_rate"] == 0.0
    assert body["b"]["runs"] == 7 and body["b"]["filters"] == {"tool": "refund", "status": "error"}
    assert body["a"]["since"] < body["a"]["until"] < body["b"]["until"]


def test_access_bad_and_hostile_parameters(api):
    _fill(api.store)
    with client(api, READ_B) as c:
        assert c.get("/v1/projects/proj-a/compare").status_code == 404
    with client(api, READ_A) as c:
        for params, name in (({"a_since": "yesterday"}, "a_since"), ({"b_until": "31/12/2026"}, "b_until"),
                             ({"a_status": "sideways"}, "a_status"), ({"alpha": 0}, "alpha"),
                             ({"alpha": "nan"}, "alpha"), ({"alpha": 0.7}, "alpha"),
                             ({"b_min_cost": -1}, "b_min_cost"), ({"a_model": "m" * 5000}, "a_model"),
                             ({"b_since": "2026-01-02T00:00:00Z", "b_until": "2026-01-01T00:00:00Z"}, "b_since"),
                             ({"a_since": "2200-01-01T00:00:00Z"}, "a_since"),
                             ({"b_since": "2262-06-01T00:00:00Z"}, "b_since")):
            response = c.get("/v1/projects/proj-a/compare", params=params)
            assert response.status_code == 422, params
            error = response.json()["error"]
            assert error["code"] == "invalid_parameter" and error["details"][0]["parameter"] == name, params
        hostile = c.get("/v1/projects/proj-a/compare", params={"a_agent_version": "1' OR '1'='1",
                                                                "b_tool": "x') UNION ALL SELECT 1 --"})
        assert hostile.status_code == 200 and hostile.json()["a"]["runs"] == 0 and hostile.json()["b"]["runs"] == 0
        assert c.get("/v1/projects/proj-a/compare", params={"a_agent_version": "1"}).json()["a"]["runs"] == 30
        spec = c.get("/openapi.json").json()["paths"]["/v1/projects/{project_id}/compare"]["get"]
    params = {p["name"]: p for p in spec["parameters"]}
    assert {"a_agent_version", "b_agent_version", "a_since", "b_until", "a_tool", "b_model", "alpha"} <= params.keys()
    assert all(p.get("description") for p in params.values())
    assert params["b_model"]["description"].startswith("Cohort B")
