"""Reading a container's output as Container Insights ships it (runplane.aws.log_store), the settings of
projects and task logs, and the message of a procedure that is not served."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from runplane.aws.log_store import Container, ContainerLogs, container_insights_stream, fluent_bit_record
from runplane.connect.router import unimplemented_message
from runplane.ops.settings import ProjectSettings, SettingsError, TaskLogSettings

CONTAINER = Container(pod="r1-a0-0", namespace="flyte", name="r1-a0-0")
MOMENT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_names_are_container_insights_names():
    stream = container_insights_stream(node="ip-10-0-0-1", container=CONTAINER, container_id="abc")
    assert stream == "ip-10-0-0-1-application.var.log.containers.r1-a0-0_flyte_r1-a0-0-abc.log"
    assert CONTAINER.stream_marker in stream
    assert CONTAINER.filter_pattern == (
        '{ $.kubernetes.pod_name = "r1-a0-0" && $.kubernetes.namespace_name = "flyte"'
        ' && $.kubernetes.container_name = "r1-a0-0" }'
    )
    record = json.loads(fluent_bit_record(line="hi", container=CONTAINER, container_id="abc", node="n", moment=MOMENT))
    assert record["log"] == "hi" and record["kubernetes"]["pod_name"] == "r1-a0-0" and record["time"].endswith("Z")


class FakeLogs:
    """CloudWatch Logs' FilterLogEvents, answering pages it was given (a unit test's stand-in)."""

    class exceptions:
        class ResourceNotFoundException(Exception):
            pass

    def __init__(self, pages: list[dict] | None) -> None:
        self.pages = pages
        self.calls: list[dict] = []

    def filter_log_events(self, **arguments):
        self.calls.append(arguments)
        if self.pages is None:
            raise self.exceptions.ResourceNotFoundException("no such group")
        return self.pages[len(self.calls) - 1]


def event(event_id: str, message: str, *, stream: str = "n-application.var.log.containers.x.log", at: int = 1) -> dict:
    return {"eventId": event_id, "timestamp": at, "message": message, "logStreamName": stream}


def test_only_the_containers_own_lines_are_kept_in_time_order():
    own = fluent_bit_record(line="mine\n", container=CONTAINER, container_id="c", node="n", moment=MOMENT)
    other = fluent_bit_record(
        line="theirs",
        container=Container(pod="x-a0-0", namespace="flyte", name="x-a0-0"),
        container_id="c",
        node="n",
        moment=MOMENT,
    )
    marked = container_insights_stream(node="n", container=CONTAINER, container_id="d")
    client = FakeLogs(
        [
            {"events": [event("2", own, at=5), event("1", other, at=1)], "nextToken": "t"},
            {"events": [event("3", "plain text", stream=marked, at=2), event("4", "plain elsewhere", at=3)]},
        ]
    )
    result = ContainerLogs(log_group="g", client=client).read(CONTAINER, start_ms=10, end_ms=None, deadline=1e18)
    assert [(e.event_id, e.line) for e in result.events] == [("3", "plain text"), ("2", "mine")] and result.complete
    assert client.calls[0]["filterPattern"] == CONTAINER.filter_pattern and client.calls[1]["nextToken"] == "t"
    assert "endTime" not in client.calls[0] and client.calls[0]["startTime"] == 10


def test_a_missing_group_is_no_lines_and_a_spent_budget_says_so():
    assert (
        ContainerLogs(log_group="g", client=FakeLogs(None)).read(CONTAINER, start_ms=0, end_ms=5, deadline=1e18).events
        == []
    )
    endless = FakeLogs([{"events": [], "nextToken": "more"}] * 3)
    result = ContainerLogs(log_group="g", client=endless, monotonic=lambda: 10.0).read(
        CONTAINER, start_ms=0, end_ms=5, deadline=5.0
    )
    assert not result.complete and len(endless.calls) == 1


def test_project_and_task_log_settings():
    assert ProjectSettings.from_env({}).domains == ("development", "production", "staging")
    settings = ProjectSettings.from_env({"PROJECT_DOMAINS": "dev, prod", "SEED_PROJECTS": ""})
    assert settings.domains == ("dev", "prod") and settings.seed_projects == ()
    for bad in ({"PROJECT_DOMAINS": ""}, {"SEED_PROJECTS": "no spaces allowed"}):
        with pytest.raises(SettingsError):
            ProjectSettings.from_env(bad)
    logs = TaskLogSettings.from_env({"TASK_LOG_GROUP": "/aws/containerinsights/c/application"})
    assert logs.log_group.endswith("/application") and logs.follow_seconds == 20.0
    with pytest.raises(SettingsError):
        TaskLogSettings.from_env({})


def test_a_procedure_not_served_is_named():
    assert unimplemented_message("/flyteidl2.workflow.RunService/SignalEvent") == (
        "flyteidl2.workflow.RunService/SignalEvent is not implemented by this Flyte control plane"
    )
    assert "'/favicon.ico'" in unimplemented_message("/favicon.ico")
