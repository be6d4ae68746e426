"""The data access of the task pods' output: CloudWatch Logs, as EKS's Container Insights ships it.

Fluent Bit's Container Insights configuration (``amazon-cloudwatch-container-insights``,
``fluent-bit.yaml``) tails ``/var/log/containers/*.log`` under the tag ``application.*`` and writes
to the group ``/aws/containerinsights/<cluster>/application``, one stream per container::

    <node>-application.var.log.containers.<pod>_<namespace>_<container>-<container id>.log

Each event is Fluent Bit's record as JSON: the line in ``log``, ``stream`` (stdout or stderr), and
the Kubernetes metadata of the pod (``kubernetes``: ``pod_name``, ``namespace_name``,
``container_name``, ``docker_id``, ``host``, ...).

The node and the container id are not known to the control plane, so a container's output is
found by its metadata: FilterLogEvents over the group, within the container's time window, with a
JSON filter pattern on pod, namespace and container. An event is kept only if its metadata (or,
for an event without any, its stream's name) names that container, so a group shipped another way
(or a log service that ignores the pattern) never mixes containers. Reads are bounded in pages,
events and time; they say when a bound cut them short.

The local stack's executor writes its processes' output to moto under the same naming
(``local_stack.executor``), so this module serves both.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Container Insights' application log group; <cluster> is the EKS cluster (template.yaml: TaskLogGroup).
CONTAINER_INSIGHTS_GROUP = "/aws/containerinsights/{cluster}/application"
# The tail input's tag prefix and the output's stream prefix (${HOST_NAME}-) in that configuration.
CONTAINER_INSIGHTS_TAG = "application"
# FilterLogEvents returns at most 10,000 events or 1 MB a page; a tail reads this many pages at most.
MAX_PAGES = 50
PAGE_EVENTS = 10_000


@dataclass(frozen=True)
class Container:
    """One container of one pod: whose output to read."""

    pod: str
    namespace: str
    name: str

    @property
    def stream_marker(self) -> str:
        """What the name of its stream contains, whatever the node, tag prefix and container id:
        the kubelet's log file ``/var/log/containers/<pod>_<namespace>_<container>-<id>.log``."""
        return f"var.log.containers.{self.pod}_{self.namespace}_{self.name}-"

    @property
    def filter_pattern(self) -> str:
        """CloudWatch's JSON filter pattern selecting its events by Fluent Bit's metadata."""
        return (
            f'{{ $.kubernetes.pod_name = "{self.pod}" && $.kubernetes.namespace_name = "{self.namespace}"'
            f' && $.kubernetes.container_name = "{self.name}" }}'
        )


@dataclass(frozen=True)
class LogEvent:
    event_id: str
    timestamp_ms: int
    line: str  # the output line, without its line break


@dataclass(frozen=True)
class ReadResult:
    events: list[LogEvent]
    complete: bool  # False: a bound (pages, time) stopped the read before the window's end


def container_insights_stream(*, node: str, container: Container, container_id: str) -> str:
    """The stream Fluent Bit's Container Insights output writes a container's output to."""
    return f"{node}-{CONTAINER_INSIGHTS_TAG}.{container.stream_marker}{container_id}.log"


def fluent_bit_record(
    *, line: str, container: Container, container_id: str, node: str, moment: datetime, stream: str = "stdout"
) -> str:
    """One event as Fluent Bit's Container Insights configuration ships it (the cri parser's
    fields, then the kubernetes filter's metadata), as JSON."""
    return json.dumps(
        {
            "time": moment.isoformat().replace("+00:00", "Z"),
            "stream": stream,
            "_p": "F",
            "log": line,
            "kubernetes": {
                "pod_name": container.pod,
                "namespace_name": container.namespace,
                "container_name": container.name,
                "docker_id": container_id,
                "host": node,
            },
        },
        separators=(",", ":"),
    )


class ContainerLogs:
    """Reads one container's output from a log group (FilterLogEvents)."""

    def __init__(self, *, log_group: str, client: Any = None, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.log_group = log_group
        self._client = client
        self._monotonic = monotonic

    @property
    def client(self) -> Any:
        if self._client is None:
            from botocore.config import Config

            from runplane.aws.clients import client

            self._client = client(
                "logs", config=Config(retries={"mode": "standard", "max_attempts": 4}, read_timeout=10)
            )
        return self._client

    def read(
        self, container: Container, *, start_ms: int, end_ms: int | None, deadline: float, seen: set[str] | None = None
    ) -> ReadResult:
        """The container's events within [start, end] in time order, those in ``seen`` left out;
        a group that does not exist (nothing was ever shipped) has none."""
        arguments: dict[str, Any] = {
            "logGroupName": self.log_group,
            "filterPattern": container.filter_pattern,
            "startTime": max(0, start_ms),
            "limit": PAGE_EVENTS,
        }
        if end_ms is not None:
            arguments["endTime"] = end_ms
        events: list[LogEvent] = []
        client = self.client
        for _ in range(MAX_PAGES):
            try:
                response = client.filter_log_events(**arguments)
            except client.exceptions.ResourceNotFoundException:
                return ReadResult(events=events, complete=True)
            for event in response.get("events", []):
                line = _line_of(event, container)
                if line is not None and event.get("eventId") not in (seen or ()):
                    events.append(LogEvent(str(event.get("eventId", "")), int(event.get("timestamp", 0)), line))
            token = response.get("nextToken")
            if not token:
                events.sort(key=lambda e: (e.timestamp_ms, e.event_id))
                return ReadResult(events=events, complete=True)
            if self._monotonic() >= deadline:
                break
            arguments["nextToken"] = token
        events.sort(key=lambda e: (e.timestamp_ms, e.event_id))
        return ReadResult(events=events, complete=False)


def _line_of(event: dict[str, Any], container: Container) -> str | None:
    """The output line an event carries, if it is the container's; None otherwise."""
    message = str(event.get("message", ""))
    try:
        record = json.loads(message)
    except ValueError:
        record = None
    if isinstance(record, dict) and isinstance(record.get("kubernetes"), dict):
        metadata = record["kubernetes"]
        if (
            metadata.get("pod_name") != container.pod
            or metadata.get("namespace_name") != container.namespace
            or metadata.get("container_name") != container.name
        ):
            return None
        return str(record.get("log", "")).rstrip("\r\n")
    if container.stream_marker not in str(event.get("logStreamName", "")):
        return None
    if isinstance(record, dict) and "log" in record:
        return str(record["log"]).rstrip("\r\n")
    return message.rstrip("\r\n")
