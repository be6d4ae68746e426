"""The control plane's metrics, end to end: a run created over HTTP is counted by create_run, its
TaskAction by reconcile (driven by the stream), and a refused request by the router; each as the
EMF lines CloudWatch would extract from the functions' logs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.builders import create_run_request, resource_name
from tests.conftest import unique_name, wait_for
from tests.e2e.test_create_run_http import post_json

pytestmark = pytest.mark.e2e


@pytest.fixture
def emf(capsys, monkeypatch):
    """The EMF lines the stack's functions write from now on (the stack turns them off by default)."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    capsys.readouterr()
    seen: list[dict[str, Any]] = []

    def lines() -> list[dict[str, Any]]:
        seen.extend(json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"'))
        return seen

    return lines


def count(lines: list[dict[str, Any]], metric: str, **dimensions: str) -> float:
    return sum(
        sum(line[metric])
        for line in lines
        if metric in line and all(line.get(name) == value for name, value in dimensions.items())
    )


def test_a_run_its_taskaction_and_a_refused_request_are_counted(stack, emf, get_taskaction):
    name = unique_name()
    status, _, _ = post_json(stack, create_run_request(name))
    assert status == 200
    wait_for(lambda: get_taskaction(resource_name(name)), what="the run's TaskAction")

    lines = wait_for(
        lambda: (found := emf()) and count(found, "ActionsMaterialised", service="reconcile") and found,
        what="reconcile's metrics",
    )
    assert count(lines, "RunsCreated", service="create_run", Source="api") == 1
    assert count(lines, "ReconcileOutcomes", service="reconcile", Outcome="created") >= 1
    assert all(line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "FlyteServerless/local" for line in lines)

    status, _, _ = post_json(stack, b'{"runId": {"project": "Not A Label"}}')
    assert status == 400
    lines = wait_for(
        lambda: (found := emf()) and count(found, "ConnectErrors", service="create_run") and found,
        what="the router's error count",
    )
    assert count(lines, "ConnectErrors", service="create_run", Code="invalid_argument") == 1
