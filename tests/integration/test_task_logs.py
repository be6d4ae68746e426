"""Task logs against moto's CloudWatch Logs: the local stack's shipper writes a process's output as
Container Insights does, GetActionLogContext answers the log context the data plane reported, and
TailLogs reads the primary container's lines back (only its own); an attempt that never ran is
not_found."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from flyteidl2.common.phase_pb2 import ActionPhase
from flyteidl2.dataproxy import dataproxy_service_pb2 as proxy
from flyteidl2.logs.dataplane import payload_pb2 as logs
from flyteidl2.workflow import internal_run_service_pb2 as internal
from flyteidl2.workflow import run_definition_pb2 as wf
from flyteidl2.workflow import run_service_pb2 as runs

from functions.data_proxy.task_logs import LogTail
from functions.read_runs.service import RunReader
from functions.update_action.service import ActionLifecycleService
from local_stack.aws import TASK_LOG_GROUP
from local_stack.task_logs import LogSink, pod_log_context
from runplane.aws.log_store import Container, ContainerLogs
from runplane.connect.errors import Code
from runplane.connect.pages import PageTokens
from runplane.flyte import phases
from tests.builders import action_id, resource_name
from tests.refusals import REFUSED, code_of

pytestmark = pytest.mark.integration


@pytest.fixture
def tail(store):
    return LogTail(store=store, logs=ContainerLogs(log_group=TASK_LOG_GROUP), follow_seconds=1.0, sleep=lambda _: None)


def ship(tmp_path, pod: str, lines: list[str]) -> None:
    log_file = tmp_path / f"{pod}.log"
    log_file.write_bytes(b"")
    shipper = LogSink(log_group=TASK_LOG_GROUP, client=boto3.client("logs")).ship(
        log_file=log_file, container=Container(pod=pod, namespace="flyte", name=pod)
    )
    log_file.write_text("".join(f"{line}\n" for line in lines[:-1]) + lines[-1])  # the last without a line break
    shipper.stop()


def record(store, run: str, *, attempt: int, phase: ActionPhase, version: int, log_context=None) -> None:
    event = wf.ActionEvent(id=action_id(run, "a0"), attempt=attempt, phase=phase, version=version)
    event.updated_time.FromDatetime(datetime.now(UTC))
    if log_context is not None:
        event.log_context.CopyFrom(log_context)
    ActionLifecycleService(store=store).record_action_events(internal.RecordActionEventsRequest(events=[event]))


def test_tail_logs_reads_the_attempts_own_lines_from_the_log_group(tmp_path, store, run, tail):
    pod = f"{resource_name(run)}-0"
    ship(tmp_path, pod, ["hello", "from the task", "last line"])
    ship(tmp_path, f"{resource_name(run)}-9", ["someone else's line"])  # another pod of the same run
    started = datetime.now(UTC) - timedelta(seconds=5)
    context = pod_log_context(pod=pod, namespace="flyte", started=started)
    record(store, run, attempt=1, phase=phases.RUNNING, version=0, log_context=context)
    ended = pod_log_context(pod=pod, namespace="flyte", started=started, ended=datetime.now(UTC) + timedelta(seconds=1))
    record(store, run, attempt=1, phase=phases.SUCCEEDED, version=1, log_context=ended)
    record(store, run, attempt=1, phase=phases.ABORTED, version=2)  # a later event without one hides nothing

    frames = tail.tail_logs(proxy.TailLogsRequest(action_id=action_id(run, "a0"), attempt=1))
    lines = [line for frame in frames for group in frame.logs for line in group.lines]
    assert [line.message for line in lines] == ["hello\n", "from the task\n", "last line\n"]
    assert all(line.originator == logs.LogLineOriginator.USER and line.HasField("timestamp") for line in lines)
    assert frames[0].logs[0].container.kubernetes_pod_name == pod

    reader = RunReader(store=store, tokens=PageTokens(secret=b"t"))
    answered = reader.get_action_log_context(runs.GetActionLogContextRequest(action_id=action_id(run, "a0"), attempt=1))
    assert answered.log_context.primary_pod_name == pod and answered.log_context.pods[0].namespace == "flyte"


def test_an_attempt_that_never_ran_has_no_logs(store, run, tail):
    reader = RunReader(store=store, tokens=PageTokens(secret=b"t"))
    record(store, run, attempt=1, phase=phases.QUEUED, version=0)  # queued, never started: no log context
    for attempt in (1, 2):  # 2: no events at all
        with pytest.raises(REFUSED) as info:
            tail.tail_logs(proxy.TailLogsRequest(action_id=action_id(run, "a0"), attempt=attempt))
        assert code_of(info.value) is Code.NOT_FOUND and "attempt" in info.value.message
        with pytest.raises(REFUSED) as info:
            reader.get_action_log_context(
                runs.GetActionLogContextRequest(action_id=action_id(run, "a0"), attempt=attempt)
            )
        assert code_of(info.value) is Code.NOT_FOUND and "attempt" in info.value.message
    with pytest.raises(REFUSED) as info:  # a malformed action id is refused before anything is read
        tail.tail_logs(proxy.TailLogsRequest(action_id=action_id(run, "a0", project=""), attempt=1))
    assert code_of(info.value) is Code.INVALID_ARGUMENT


def test_a_running_attempt_is_followed_until_the_window_ends(tmp_path, store, run):
    pod = f"{resource_name(run)}-0"
    context = pod_log_context(pod=pod, namespace="flyte", started=datetime.now(UTC))
    record(store, run, attempt=1, phase=phases.RUNNING, version=0, log_context=context)
    polls = []

    def sleep(_: float) -> None:  # a line arrives while the tail follows
        if not polls:
            ship(tmp_path, pod, [f"late {uuid.uuid4().hex[:6]}"])
        polls.append(1)

    clock = iter(range(0, 1000, 1))
    tail = LogTail(
        store=store,
        logs=ContainerLogs(log_group=TASK_LOG_GROUP),
        follow_seconds=3.0,
        sleep=sleep,
        monotonic=lambda: float(next(clock)),
    )
    frames = tail.tail_logs(proxy.TailLogsRequest(action_id=action_id(run, "a0"), attempt=1))
    messages = [line.message for frame in frames for group in frame.logs for line in group.lines]
    assert len(messages) == 1 and messages[0].startswith("late ") and polls
