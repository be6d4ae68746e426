"""Scheduler ticks through create_run's real handler on the local stack: each tick starts its run
exactly once, however often and however concurrently it is delivered."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from flyteidl2.common import list_pb2
from flyteidl2.common.identifier_pb2 import ProjectIdentifier
from flyteidl2.task import task_definition_pb2 as td
from flyteidl2.task import task_service_pb2 as ts
from flyteidl2.workflow import run_definition_pb2 as wf
from flyteidl2.workflow import run_service_pb2 as runs

from functions.create_run.handler import handler as create_run_handler
from functions.create_run.schedule import MalformedTick
from functions.read_runs.handler import reader
from functions.task_registry.handler import registry
from local_stack.lambda_runtime import LambdaContext
from runplane.flyte.identifiers import ActionKey
from runplane.table.actions import ActionStore
from tests.builders import DOMAIN, PROJECT, task_spec
from tests.conftest import unique_name, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def deployed_task(stack):
    name = f"{unique_name()}.nightly"
    registry().deploy_task(
        ts.DeployTaskRequest(
            task_id=td.TaskIdentifier(project=PROJECT, domain=DOMAIN, name=name, version="v1"),
            spec=task_spec(name=name),
        )
    )
    return name


def tick(task: str, trigger: str, at: str) -> dict:
    return {
        "flyteTrigger": {
            "project": PROJECT,
            "domain": DOMAIN,
            "name": trigger,
            "taskName": task,
            "taskVersion": "v1",
            "revision": 1,
        },
        "scheduledTime": at,
    }


def deliver(event):
    return create_run_handler(event, LambdaContext(function_name="CreateRunFunction"))


def test_one_tick_delivered_three_times_and_concurrently_is_one_run(stack, deployed_task, custom_objects):
    event = tick(deployed_task, "nightly", "2026-05-01T02:00:00Z")
    names = {deliver(event)["run"] for _ in range(3)}
    with ThreadPoolExecutor(max_workers=4) as pool:
        names |= {r["run"] for r in pool.map(deliver, [event] * 4)}
    (name,) = names

    record = ActionStore(table_name=stack.aws.table_name).get_action(
        ActionKey(project=PROJECT, domain=DOMAIN, run=name, name="a0")
    )
    assert record.version == 1 and record.run_source == "RUN_SOURCE_SCHEDULE_TRIGGER"
    assert (record.trigger_name, record.trigger_task_name, record.trigger_revision) == ("nightly", deployed_task, 1)
    wait_for(
        lambda: custom_objects.list_namespaced_custom_object(
            "flyte.org", "v1", "flyte", "taskactions", label_selector=f"flyte.org/run={name}"
        )["items"],
        what="the run's TaskAction",
    )
    items = custom_objects.list_namespaced_custom_object(
        "flyte.org", "v1", "flyte", "taskactions", label_selector=f"flyte.org/run={name}"
    )["items"]
    assert len(items) == 1


def test_two_ticks_are_two_runs_and_listed_by_trigger(stack, deployed_task):
    trigger = unique_name("tr")
    first = deliver(tick(deployed_task, trigger, "2026-05-01T02:00:00Z"))["run"]
    second = deliver(tick(deployed_task, trigger, "2026-05-02T02:00:00Z"))["run"]
    assert first != second
    listing = reader().list_runs(
        runs.ListRunsRequest(
            project_id=ProjectIdentifier(name=PROJECT, domain=DOMAIN),
            request=list_pb2.ListRequest(
                filters=[list_pb2.Filter(function=list_pb2.Filter.EQUAL, field="trigger_name", values=[trigger])]
            ),
        )
    )
    assert {r.action.id.run.name for r in listing.runs} == {first, second}
    assert all(r.action.metadata.source == wf.RUN_SOURCE_SCHEDULE_TRIGGER for r in listing.runs)


def test_a_malformed_tick_fails_and_writes_nothing(stack):
    with pytest.raises(MalformedTick, match="scheduledTime"):
        deliver({"flyteTrigger": tick("t", "x", "")["flyteTrigger"], "scheduledTime": "not a time"})
