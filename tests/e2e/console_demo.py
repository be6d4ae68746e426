"""A run with a few actions in different phases, made through the API as Flyte's data plane would
make it: for the console's browser tests and its screenshot (docs/console-run.png).

The tree: the root (running) with a data loader (succeeded), a training step (running) fanned out
to two shards (one succeeded, one running), an evaluation that failed twice (its error, and its
second attempt's log lines in the local log group, where TailLogs reads them), and a report still
queued. Times are set in the past, so durations and the timeline look like a real run's.
Inputs and outputs are written where GetActionData reads them.
"""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from flyteidl2.common.phase_pb2 import ActionPhase
from flyteidl2.task import common_pb2
from flyteidl2.workflow import internal_run_service_pb2 as internal
from flyteidl2.workflow import run_definition_pb2 as wf
from google.protobuf import json_format
from google.protobuf.message import Message

from local_stack.aws import TASK_LOG_GROUP
from local_stack.task_logs import LOCAL_NODE, pod_log_context
from runplane.aws.log_store import Container, container_insights_stream, fluent_bit_record
from runplane.flyte import phases
from tests.builders import action_id, child_task_action, create_run_request, integer_inputs, resource_name, task_spec

RUNS = "/flyteidl2.workflow.RunService"
INTERNAL = "/flyteidl2.workflow.InternalRunService"
ENQUEUE = "/flyteidl2.actions.ActionsService/Enqueue"
GET_ACTION_DATA = "/flyteidl2.dataproxy.DataProxyService/GetActionData"
CONTAINER_ID = "0123456789ab"  # any id: the stream name only has to carry one

# (action, parent, task name): the tree, in the order the parent starts its children
CHILDREN = [
    ("c1", "a0", "pipeline.load_data"),
    ("c2", "a0", "pipeline.train"),
    ("g1", "c2", "pipeline.train_shard"),
    ("g2", "c2", "pipeline.train_shard"),
    ("c3", "a0", "pipeline.evaluate"),
    ("c4", "a0", "pipeline.publish_report"),
]
EVALUATION_ERROR = (
    "Traceback (most recent call last):\n"
    '  File "pipeline.py", line 42, in evaluate\n'
    "    raise ValueError(f'accuracy {accuracy:.2f} is below the 0.90 threshold')\n"
    "ValueError: accuracy 0.84 is below the 0.90 threshold"
)
EVALUATION_LOG = [
    "loading model from s3://flyte-data/models/run-17/model.pt",
    "evaluating on 12,000 held-out rows",
    "batch 1/3: accuracy 0.86",
    "batch 2/3: accuracy 0.83",
    "batch 3/3: accuracy 0.84",
    *EVALUATION_ERROR.splitlines(),
]


def post(endpoint: str, path: str, message: Message | dict[str, Any]) -> dict[str, Any]:
    """A Connect JSON call; raises on anything but 200 (and on an in-band error status)."""
    body = message if isinstance(message, dict) else json.loads(json_format.MessageToJson(message))
    request = urllib.request.Request(
        endpoint + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Connect-Protocol-Version": "1"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, Any] = json.loads(response.read() or b"{}")
    if answer.get("status", {}).get("code"):
        raise AssertionError(f"{path}: {answer['status']}")
    return answer


def set_status(
    endpoint: str,
    run: str,
    name: str,
    phase: ActionPhase,
    *,
    attempts: int = 1,
    start: datetime | None = None,
    end: datetime | None = None,
) -> None:
    status = wf.ActionStatus(phase=phase, attempts=attempts)
    if start is not None:
        status.start_time.FromDatetime(start)
    if end is not None:
        status.end_time.FromDatetime(end)
    post(
        endpoint,
        f"{INTERNAL}/UpdateActionStatus",
        internal.UpdateActionStatusRequest(action_id=action_id(run, name), status=status),
    )


def record_attempt(
    endpoint: str,
    run: str,
    name: str,
    *,
    attempt: int,
    phase: ActionPhase,
    start: datetime,
    end: datetime | None = None,
    error: str | None = None,
    log_context: Any = None,
) -> None:
    event = wf.ActionEvent(id=action_id(run, name), attempt=attempt, phase=phase, version=attempt * 10 + phase)
    event.start_time.FromDatetime(start)
    event.updated_time.FromDatetime(end or start)
    if end is not None:
        event.end_time.FromDatetime(end)
    if error is not None:
        event.error_info.CopyFrom(wf.ErrorInfo(message=error, kind=wf.ErrorInfo.KIND_USER, code="ValueError"))
    if log_context is not None:
        event.log_context.CopyFrom(log_context)
    post(endpoint, f"{INTERNAL}/RecordActionEvents", internal.RecordActionEventsRequest(events=[event]))


def put_blob(uri: str, body: bytes) -> None:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=body)


def ship_log(*, pod: str, lines: list[str], at: datetime) -> None:
    """The lines as Container Insights ships a pod's output to the local log group."""
    client = boto3.client("logs")
    container = Container(pod=pod, namespace="flyte", name=pod)
    stream = container_insights_stream(node=LOCAL_NODE, container=container, container_id=CONTAINER_ID)
    client.create_log_stream(logGroupName=TASK_LOG_GROUP, logStreamName=stream)
    events = []
    for index, line in enumerate(lines):
        moment = at + timedelta(seconds=index)
        record = fluent_bit_record(
            line=line, container=container, container_id=CONTAINER_ID, node=LOCAL_NODE, moment=moment
        )
        events.append({"timestamp": int(moment.timestamp() * 1000), "message": record})
    client.put_log_events(logGroupName=TASK_LOG_GROUP, logStreamName=stream, logEvents=events)


def seed_demo_run(*, endpoint: str, run: str, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)

    def ago(seconds: float) -> datetime:
        return now - timedelta(seconds=seconds)

    post(
        endpoint,
        f"{RUNS}/CreateRun",
        create_run_request(run, spec=task_spec(name="pipeline.main"), inputs=integer_inputs(epochs=12, shards=2)),
    )
    set_status(endpoint, run, "a0", phases.RUNNING, start=ago(185))
    for name, parent, task in CHILDREN:
        enqueue = child_task_action(run, name, parent=parent, spec=task_spec(name=task))
        enqueue.action.task.id.name = task  # the builder names every child's task child.task
        post(endpoint, ENQUEUE, enqueue)
        data = post(
            endpoint, GET_ACTION_DATA, {"actionId": json.loads(json_format.MessageToJson(action_id(run, name)))}
        )
        put_blob(
            data["inputsUri"],
            integer_inputs(epochs=12, shard=int(name[1:]) - 1 if parent == "c2" else 0).SerializeToString(),
        )
        if name == "c1":
            outputs = common_pb2.Outputs(literals=integer_inputs(rows=120_000, columns=48).literals)
            put_blob(data["outputsUri"], outputs.SerializeToString())

    set_status(endpoint, run, "c1", phases.RUNNING, start=ago(178))
    set_status(endpoint, run, "c1", phases.SUCCEEDED, end=ago(131))
    set_status(endpoint, run, "c2", phases.RUNNING, start=ago(128))
    set_status(endpoint, run, "g1", phases.RUNNING, start=ago(121))
    set_status(endpoint, run, "g1", phases.SUCCEEDED, end=ago(52))
    set_status(endpoint, run, "g2", phases.RUNNING, start=ago(120))

    first_start, first_end = ago(126), ago(101)
    set_status(endpoint, run, "c3", phases.RUNNING, start=first_start)
    record_attempt(endpoint, run, "c3", attempt=1, phase=phases.RUNNING, start=first_start)
    record_attempt(
        endpoint, run, "c3", attempt=1, phase=phases.FAILED, start=first_start, end=first_end, error=EVALUATION_ERROR
    )
    set_status(endpoint, run, "c3", phases.FAILED, end=first_end)
    second_start, second_end = ago(96), ago(64)
    pod = f"{resource_name(run, 'c3')}-1"
    set_status(endpoint, run, "c3", phases.RUNNING, attempts=2)
    ship_log(pod=pod, lines=EVALUATION_LOG, at=second_start + timedelta(seconds=2))
    record_attempt(endpoint, run, "c3", attempt=2, phase=phases.RUNNING, start=second_start)
    record_attempt(
        endpoint,
        run,
        "c3",
        attempt=2,
        phase=phases.FAILED,
        start=second_start,
        end=second_end,
        error=EVALUATION_ERROR,
        log_context=pod_log_context(pod=pod, namespace="flyte", started=second_start, ended=second_end),
    )
    set_status(endpoint, run, "c3", phases.FAILED, attempts=2, end=second_end)
