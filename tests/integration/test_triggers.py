"""TriggerService against moto's DynamoDB and EventBridge Scheduler, and the local clock that
fires their schedules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from flyteidl2.common.identifier_pb2 import TriggerName
from flyteidl2.task import common_pb2
from flyteidl2.trigger import trigger_definition_pb2 as td
from flyteidl2.trigger import trigger_service_pb2 as ts

from functions.create_run.schedule import tick_from_event
from functions.task_registry.schedules import eventbridge_cron, standard_cron
from functions.task_registry.trigger_service import TriggerService
from functions.task_registry.triggers import Schedules, ScheduleTarget, TriggerStore
from local_stack.aws import CREATE_RUN_ARN, SCHEDULE_GROUP, SCHEDULER_DEAD_LETTER_ARN, SCHEDULER_ROLE_ARN
from local_stack.scheduler import LocalScheduler, ticks
from runplane.connect.errors import Code
from runplane.connect.pages import PageTokens
from runplane.table.actions import ActionStore
from tests.builders import DOMAIN, PROJECT
from tests.conftest import unique_name
from tests.refusals import REFUSED, code_of

pytestmark = pytest.mark.integration


@pytest.fixture
def schedules(aws):
    return Schedules(
        ScheduleTarget(
            function_arn=CREATE_RUN_ARN,
            role_arn=SCHEDULER_ROLE_ARN,
            dead_letter_arn=SCHEDULER_DEAD_LETTER_ARN,
            group=SCHEDULE_GROUP,
        )
    )


@pytest.fixture
def service(aws, schedules):
    return TriggerService(
        triggers=TriggerStore(ActionStore(table_name=aws.table_name)),
        schedules=schedules,
        tokens=PageTokens(secret=b"triggers"),
    )


def trigger_name(name=None, task="wf.nightly"):
    return TriggerName(project=PROJECT, domain=DOMAIN, name=name or unique_name("tr"), task_name=task)


def deploy(service, name, *, cron="0 2 * * *", revision=0, active=True, timezone=""):
    automation = common_pb2.TriggerAutomationSpec(
        schedule=common_pb2.Schedule(cron=common_pb2.Cron(expression=cron, timezone=timezone))
    )
    return service.deploy_trigger(
        ts.DeployTriggerRequest(
            name=name,
            revision=revision,
            spec=td.TriggerSpec(task_version="v1", active=active),
            automation_spec=automation,
        )
    ).trigger


def test_deploy_creates_a_schedule_that_targets_create_run(service, schedules):
    name = trigger_name()
    details = deploy(service, name, cron="30 2 * * 1-5", timezone="Europe/Paris")
    assert details.id.revision == 1
    schedule = boto3.client("scheduler").get_schedule(Name=_schedule_name(service, name), GroupName=SCHEDULE_GROUP)
    assert (
        schedule["ScheduleExpression"] == "cron(30 2 ? * 2-6 *)"
        and schedule["ScheduleExpressionTimezone"] == "Europe/Paris"
    )
    assert schedule["State"] == "ENABLED" and schedule["Target"]["Arn"] == CREATE_RUN_ARN
    assert schedule["Target"]["DeadLetterConfig"]["Arn"] == SCHEDULER_DEAD_LETTER_ARN
    payload = json.loads(schedule["Target"]["Input"].replace("<aws.scheduler.scheduled-time>", "2026-01-05T01:30:00Z"))
    assert tick_from_event(payload).trigger_name == name.name


def _schedule_name(service, name):
    return service._require(name).schedule_name


def test_updates_lock_optimistically(service):
    name = trigger_name()
    deploy(service, name)
    assert deploy(service, name, revision=1, cron="0 3 * * *").id.revision == 2
    with pytest.raises(REFUSED) as info:
        deploy(service, name, revision=1, cron="0 4 * * *")  # stale
    assert code_of(info.value) is Code.ABORTED
    details = service.get_trigger_details(ts.GetTriggerDetailsRequest(name=name)).trigger
    assert details.automation_spec.schedule.cron.expression == "0 3 * * *"


@pytest.mark.parametrize("cron", ["not a cron", "0 2 * *", "0 2 1 * 1", "@sometimes"])
def test_an_invalid_schedule_is_invalid_argument_and_writes_nothing(service, cron):
    name = trigger_name()
    with pytest.raises(REFUSED) as info:
        deploy(service, name, cron=cron)
    assert code_of(info.value) is Code.INVALID_ARGUMENT
    with pytest.raises(REFUSED) as info:
        service.get_trigger_details(ts.GetTriggerDetailsRequest(name=name))
    assert code_of(info.value) is Code.NOT_FOUND


def test_deactivate_activate_and_delete(service):
    name = trigger_name()
    deploy(service, name)
    scheduler = boto3.client("scheduler")
    schedule_name = _schedule_name(service, name)
    service.update_triggers(ts.UpdateTriggersRequest(names=[name], active=False))
    assert scheduler.get_schedule(Name=schedule_name, GroupName=SCHEDULE_GROUP)["State"] == "DISABLED"
    service.update_triggers(ts.UpdateTriggersRequest(names=[name], active=True))
    assert scheduler.get_schedule(Name=schedule_name, GroupName=SCHEDULE_GROUP)["State"] == "ENABLED"
    listed = service.list_triggers(
        ts.ListTriggersRequest(task_name={"project": PROJECT, "domain": DOMAIN, "name": name.task_name})
    )
    assert name.name in [t.id.name.name for t in listed.triggers]

    service.delete_triggers(ts.DeleteTriggersRequest(names=[name]))
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
        scheduler.get_schedule(Name=schedule_name, GroupName=SCHEDULE_GROUP)
    with pytest.raises(REFUSED):
        service.get_trigger_details(ts.GetTriggerDetailsRequest(name=name))


def test_cron_conversions_round_trip():
    for cron in ("0 2 * * *", "*/5 * * * *", "30 2 * * 1-5", "0 0 1 * *", "0 9 * * 0"):
        assert standard_cron(eventbridge_cron(cron)) == cron
    assert eventbridge_cron("@daily") == "cron(0 0 * * ? *)"


def test_ticks_of_cron_and_rate():
    start = datetime(2026, 1, 1, 0, 2, tzinfo=UTC)
    assert [
        t.minute for t in ticks("cron(*/5 * * * ? *)", "UTC", after=start, until=start + timedelta(minutes=11))
    ] == [5, 10]
    assert len(ticks("rate(2 minutes)", "UTC", after=start, until=start + timedelta(minutes=9), start=start)) == 4


def test_the_local_clock_fires_each_tick_once_and_not_on_deploy(service):
    name = trigger_name()
    deploy(service, name, cron="*/5 * * * *")
    delivered = []
    clock = LocalScheduler(
        client=boto3.client("scheduler"), group=SCHEDULE_GROUP, target=lambda event, context: delivered.append(event)
    )
    t0 = datetime(2026, 6, 1, 12, 1, tzinfo=UTC)
    clock.fire_due(now=t0)  # the baseline: nothing fires for the past
    ours = lambda: [e for e in delivered if e["flyteTrigger"]["name"] == name.name]  # noqa: E731
    assert ours() == []
    clock.fire_due(now=t0 + timedelta(minutes=11))
    clock.fire_due(now=t0 + timedelta(minutes=11))
    assert [e["scheduledTime"] for e in ours()] == ["2026-06-01T12:05:00Z", "2026-06-01T12:10:00Z"]
