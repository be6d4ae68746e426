"""The failure path of scheduled ticks, locally as on AWS: Scheduler invokes create_run
asynchronously, so a tick that fails *inside* create_run is retried by Lambda (twice, the
template's EventInvokeConfig) and then lands in create_run's on-failure destination (the template's
CreateRunFailureQueue; the local scheduler's ``on_failure`` list). Schedules live in moto, in a
schedule group of this module's own (the stack's scheduler, if running, never sees them)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from functions.task_registry.triggers import SCHEDULED_TIME
from local_stack.aws import CREATE_RUN_ARN, SCHEDULER_ROLE_ARN
from local_stack.lambda_runtime import load_handler
from local_stack.scheduler import LocalScheduler
from local_stack.template import async_retries, function_handler

pytestmark = pytest.mark.integration

T0 = datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC)


@pytest.fixture
def group(moto_server) -> str:
    name = f"tick-failures-{uuid.uuid4().hex[:8]}"
    boto3.client("scheduler").create_schedule_group(Name=name)
    return name


def every_minute(group: str, payload: dict[str, Any]) -> str:
    name = f"s-{uuid.uuid4().hex[:8]}"
    boto3.client("scheduler").create_schedule(
        Name=name,
        GroupName=group,
        ScheduleExpression="rate(1 minute)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": CREATE_RUN_ARN, "RoleArn": SCHEDULER_ROLE_ARN, "Input": json.dumps(payload)},
    )
    return name


def fire_one_tick(scheduler: LocalScheduler) -> None:
    scheduler.fire_due(now=T0)  # the schedule's first sighting: its baseline
    assert scheduler.fire_due(now=T0 + timedelta(minutes=1)) == 1


def test_a_tick_failing_inside_create_run_is_retried_twice_then_kept_on_failure(group):
    """The real create_run handler, with a tick it cannot turn into a run."""
    malformed = {"flyteTrigger": {"project": "flytesnacks"}, "scheduledTime": SCHEDULED_TIME}
    schedule = every_minute(group, malformed)
    scheduler = LocalScheduler(
        client=boto3.client("scheduler"),
        group=group,
        target=load_handler(function_handler("CreateRunFunction")),
        max_retries=async_retries("CreateRunFunction"),
    )

    fire_one_tick(scheduler)

    (failed,) = scheduler.on_failure
    assert failed.schedule == schedule
    assert failed.attempts == 1 + 2  # the invocation and Lambda's two asynchronous retries
    assert failed.reason.startswith("MalformedTick: flyteTrigger.domain")
    assert failed.event["flyteTrigger"] == malformed["flyteTrigger"]
    assert failed.event["scheduledTime"] == "2026-06-01T12:01:30Z"  # the tick, as Scheduler fills it in


def test_a_tick_that_succeeds_on_a_retry_is_not_a_failure(group):
    every_minute(group, {"flyteTrigger": {"project": "flytesnacks"}, "scheduledTime": SCHEDULED_TIME})
    attempts: list[dict[str, Any]] = []

    def fails_once(event: dict[str, Any], context: Any) -> dict[str, Any]:
        attempts.append(event)
        if len(attempts) == 1:
            raise ConnectionError("DynamoDB throttled the write")
        return {"run": "r1"}

    scheduler = LocalScheduler(client=boto3.client("scheduler"), group=group, target=fails_once)
    fire_one_tick(scheduler)

    assert len(attempts) == 2 and attempts[0] == attempts[1]  # the same event again, as Lambda retries
    assert scheduler.on_failure == []


def test_create_run_is_configured_with_two_retries_on_aws_too():
    assert async_retries("CreateRunFunction") == 2
