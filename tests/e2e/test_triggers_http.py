"""A trigger deployed over HTTP really starts runs on the local stack: its schedule is in moto,
the local clock fires it, create_run starts the run, reconcile materialises it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from flyteidl2.common.identifier_pb2 import TriggerName
from flyteidl2.task import common_pb2
from flyteidl2.task import task_definition_pb2 as td
from flyteidl2.task import task_service_pb2 as ts
from flyteidl2.trigger import trigger_definition_pb2 as trd
from flyteidl2.trigger import trigger_service_pb2 as tr

from runplane.flyte.identifiers import scheduled_run_name
from tests.builders import DOMAIN, PROJECT, resource_name, task_spec
from tests.conftest import unique_name, wait_for
from tests.e2e.test_create_run_http import post_json, post_proto_gzip

pytestmark = pytest.mark.e2e


def test_a_deployed_trigger_starts_its_runs(stack, get_taskaction):
    task = f"{unique_name()}.hourly"
    task_id = td.TaskIdentifier(project=PROJECT, domain=DOMAIN, name=task, version="v1")
    assert (
        post_proto_gzip(
            stack,
            ts.DeployTaskRequest(task_id=task_id, spec=task_spec(name=task)),
            "/flyteidl2.task.TaskService/DeployTask",
        )[0]
        == 200
    )
    name = TriggerName(project=PROJECT, domain=DOMAIN, name="every5", task_name=task)
    request = tr.DeployTriggerRequest(
        name=name,
        spec=trd.TriggerSpec(task_version="v1", active=True),
        automation_spec=common_pb2.TriggerAutomationSpec(
            schedule=common_pb2.Schedule(cron=common_pb2.Cron(expression="*/5 * * * *"))
        ),
    )
    status, _, body = post_json(stack, request, "/flyteidl2.trigger.TriggerService/DeployTrigger")
    assert status == 200 and json.loads(body)["trigger"]["id"]["revision"] == "1"

    start = datetime(2026, 7, 1, 9, 1, tzinfo=UTC)
    stack.scheduler.fire_due(now=start)
    stack.scheduler.fire_due(now=start + timedelta(minutes=6))
    run = scheduled_run_name(
        project=PROJECT,
        domain=DOMAIN,
        task=task,
        trigger="every5",
        scheduled_at=datetime(2026, 7, 1, 9, 5, tzinfo=UTC),
        secret=stack.environment["PAGE_TOKEN_SECRET"].encode(),  # the stack's key: only it can name the run
    )
    resource = wait_for(lambda: get_taskaction(resource_name(run)), timeout=20, what="the scheduled run's TaskAction")
    assert resource["spec"]["runName"] == run

    status, _, body = post_json(
        stack,
        tr.DeployTriggerRequest(name=name, revision=7, spec=request.spec, automation_spec=request.automation_spec),
        "/flyteidl2.trigger.TriggerService/DeployTrigger",
    )
    assert status == 409 and json.loads(body)["code"] == "aborted"  # a stale revision


def test_an_invalid_schedule_over_http_is_invalid_argument(stack):
    request = tr.DeployTriggerRequest(
        name=TriggerName(project=PROJECT, domain=DOMAIN, name="bad", task_name="t"),
        spec=trd.TriggerSpec(task_version="v1"),
        automation_spec=common_pb2.TriggerAutomationSpec(
            schedule=common_pb2.Schedule(cron=common_pb2.Cron(expression="every tuesday"))
        ),
    )
    status, _, body = post_json(stack, request, "/flyteidl2.trigger.TriggerService/DeployTrigger")
    assert status == 400 and json.loads(body)["code"] == "invalid_argument"


def test_a_task_deployed_with_a_trigger_gets_its_schedule(stack):
    import boto3

    task = f"{unique_name()}.daily"
    trigger = td.TaskTrigger(
        name="daily",
        spec=td.TaskTriggerSpec(active=True),
        automation_spec=common_pb2.TriggerAutomationSpec(
            schedule=common_pb2.Schedule(cron=common_pb2.Cron(expression="@daily"))
        ),
    )
    request = ts.DeployTaskRequest(
        task_id=td.TaskIdentifier(project=PROJECT, domain=DOMAIN, name=task, version="v1"),
        spec=task_spec(name=task),
        triggers=[trigger],
    )
    assert post_proto_gzip(stack, request, "/flyteidl2.task.TaskService/DeployTask")[0] == 200
    schedules = boto3.client("scheduler").list_schedules(GroupName="flyte-triggers")["Schedules"]
    described = [
        boto3.client("scheduler").get_schedule(Name=s["Name"], GroupName="flyte-triggers")["Description"]
        for s in schedules
    ]
    assert f"{PROJECT}/{DOMAIN}/{task}/daily" in described
