"""Rendering validation outcomes: the readable report, JUnit XML and JSON.

An *outcome* is ``{"runbook": {...}, "counts": {...}, "runs": [result, ...]}`` where ``runs``
lists every run that did not pass (and, for a single run, that run whatever its status).
"""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

_MARK = {"passed": "PASS", "failed": "FAIL", "incomplete": "INCOMPLETE"}


def text_report(outcome: dict, *, max_runs: int = 50) -> str:
    """A report for people: totals, then each non-passing run with its reasons and step ids."""
    rb, counts = outcome["runbook"], outcome["counts"]
    label = rb.get("name") or "(unnamed runbook)"
    lines = [f"runbook {label} (sha256 {rb.get('hash', '')[:12]}): {counts['total']} run(s) judged — "
             f"{counts['passed']} passed, {counts['failed']} failed, {counts['incomplete']} incomplete"]
    for result in outcome["runs"][:max_runs]:
        lines.append(f"{_MARK.get(result['status'], result['status'].upper()):<10} "
                     f"run {result['run_id']} (project {result['project_id']})")
        for reason in result["reasons"]:
            steps = f"  [steps: {', '.join(reason['step_ids'][:10])}" \
                    f"{' …' if len(reason['step_ids']) > 10 else ''}]" if reason["step_ids"] else ""
            lines.append(f"           {reason['rule']}: {reason['message']}{steps}")
    hidden = len(outcome["runs"]) - max_runs
    if hidden > 0:
        lines.append(f"… and {hidden} more run(s); use --json for all of them")
    return "\n".join(lines) + "\n"


def junit_xml(outcome: dict) -> bytes:
    """One ``testsuite`` for the runbook; a ``testcase`` per listed run (failed → failure,
    incomplete → skipped).  Passing runs of a batch are counted in ``tests`` only."""
    rb, counts = outcome["runbook"], outcome["counts"]
    suite = ET.Element("testsuite", name=f"runbook {rb.get('name') or rb.get('hash', '')[:12]}",
                       tests=str(counts["total"]), failures=str(counts["failed"]),
                       skipped=str(counts["incomplete"]), errors="0")
    for result in outcome["runs"]:
        case = ET.SubElement(suite, "testcase", classname=str(result["project_id"]), name=str(result["run_id"]))
        detail = "\n".join(f"{r['rule']}: {r['message']} (steps: {', '.join(r['step_ids'])})"
                           for r in result["reasons"])
        if result["status"] == "failed":
            first = next((r for r in result["reasons"] if r["rule"] != "run.incomplete"), result["reasons"][0])
            ET.SubElement(case, "failure", message=f"{first['rule']}: {first['message']}", type=first["rule"]).text = detail
        elif result["status"] == "incomplete":
            ET.SubElement(case, "skipped", message="run incomplete: root span not received").text = detail
    return ET.tostring(ET.ElementTree(suite).getroot(), encoding="utf-8", xml_declaration=True)


def json_document(outcome: dict) -> str:
    """The outcome as JSON (stable key order)."""
    return json.dumps(outcome, indent=2, sort_keys=True, default=str) + "\n"
