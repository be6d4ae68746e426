"""EventBridge Scheduler ticks -> the CreateRun of a trigger's run (docs/flyte-compat.md#trigger-service).

The schedule's target input carries the trigger and the scheduled time, which Scheduler fills
in per tick (``<aws.scheduler.scheduled-time>``)::

    {"flyteTrigger": {"project": "...", "domain": "...", "name": "daily", "taskName": "...",
                      "taskVersion": "...", "revision": 3, "runSpec": {...}, "inputs": {...}},
     "scheduledTime": "2026-01-02T03:04:05Z"}

The run is named deterministically from the trigger and the tick, keyed with the stack's secret
(``runplane.flyte.identifiers.scheduled_run_name``: nobody else can predict it, so nobody can take
the name first), so a repeated or retried delivery of the same tick is a duplicate CreateRun: it
creates nothing and materialises nothing.
A malformed event raises ``MalformedTick``, and nothing is written for it. Scheduler invokes
create_run asynchronously, so a failure *inside* the function (a malformed tick, a throttled
write) is Lambda's to retry: its asynchronous retries (2), then create_run's on-failure
destination (template.yaml: ``CreateRunFailureQueue``) receives the event with the error.
Scheduler's own retries and dead-letter queue only cover ticks it could not deliver (the invoke
itself failed: permissions, throttling of the invoke).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flyteidl2.common.identifier_pb2 import RunIdentifier
from flyteidl2.task import common_pb2, run_pb2
from flyteidl2.task.task_definition_pb2 import TaskIdentifier
from flyteidl2.workflow import run_definition_pb2 as wf
from flyteidl2.workflow.run_service_pb2 import CreateRunRequest
from google.protobuf import json_format

from runplane.flyte.identifiers import scheduled_run_name

TRIGGER_KEY = "flyteTrigger"


class MalformedTick(ValueError):
    """The event is not a tick this function understands; after Lambda's asynchronous retries
    it goes to create_run's on-failure destination."""


@dataclass(frozen=True)
class Tick:
    request: CreateRunRequest
    trigger_name: str
    trigger_task_name: str
    trigger_revision: int


def is_tick(event: dict[str, Any]) -> bool:
    return isinstance(event, dict) and TRIGGER_KEY in event


def tick_from_event(event: dict[str, Any], *, secret: bytes | None = None) -> Tick:
    trigger = event.get(TRIGGER_KEY)
    if not isinstance(trigger, dict):
        raise MalformedTick(f"{TRIGGER_KEY} must be an object")
    fields = {}
    for name in ("project", "domain", "name", "taskName", "taskVersion"):
        value = trigger.get(name)
        if not isinstance(value, str) or not value:
            raise MalformedTick(f"{TRIGGER_KEY}.{name} must be a non-empty string")
        fields[name] = value
    revision = trigger.get("revision", 0)
    if not isinstance(revision, int) or revision < 0:
        raise MalformedTick(f"{TRIGGER_KEY}.revision must be a non-negative integer")
    scheduled_at = _scheduled_time(event.get("scheduledTime"))

    request = CreateRunRequest(
        run_id=RunIdentifier(
            project=fields["project"],
            domain=fields["domain"],
            name=scheduled_run_name(
                project=fields["project"],
                domain=fields["domain"],
                task=fields["taskName"],
                trigger=fields["name"],
                scheduled_at=scheduled_at,
                secret=secret,
            ),
        ),
        task_id=TaskIdentifier(
            project=fields["project"], domain=fields["domain"], name=fields["taskName"], version=fields["taskVersion"]
        ),
        source=wf.RUN_SOURCE_SCHEDULE_TRIGGER,
    )
    try:
        if trigger.get("runSpec") is not None:
            json_format.ParseDict(trigger["runSpec"], request.run_spec)
        if trigger.get("inputs") is not None:
            json_format.ParseDict(trigger["inputs"], request.inputs)
        else:
            request.inputs.CopyFrom(common_pb2.Inputs())
    except (json_format.ParseError, TypeError, ValueError) as exc:
        raise MalformedTick(f"{TRIGGER_KEY}: {exc}") from None
    request.run_start_time.FromDatetime(scheduled_at)
    if not request.HasField("run_spec"):
        request.run_spec.CopyFrom(run_pb2.RunSpec())
    request.run_spec.run_start_time.FromDatetime(scheduled_at)  # the tick, not the delivery
    return Tick(
        request=request, trigger_name=fields["name"], trigger_task_name=fields["taskName"], trigger_revision=revision
    )


def _scheduled_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise MalformedTick("scheduledTime must be an ISO-8601 time")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedTick(f"scheduledTime {value!r} is not an ISO-8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
