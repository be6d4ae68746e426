"""The local stack's Container Insights: the local executor's task processes' output, shipped to
moto's CloudWatch Logs as Fluent Bit ships a task pod's on EKS, and the log context Flyte's
executor reports for a pod.

On EKS, Fluent Bit tails each container's log file and writes its lines to the group
``/aws/containerinsights/<cluster>/application``, one stream per container named
``<node>-application.var.log.containers.<pod>_<namespace>_<container>-<container id>.log``, each
event Fluent Bit's JSON record with the pod's Kubernetes metadata (``runplane.aws.log_store``). Here
a ``LogShipper`` tails the file the executor captures a process's output in, and writes the lines
to the same group and stream names (node ``local``), a batch every ``SHIP_SECONDS`` (Fluent Bit's
Container Insights configuration flushes every 5 s) and the rest when the process ends. So
TailLogs reads the local stack's task output with the code that reads EKS's.

Failures to ship are logged, never raised: a lost log line must not fail the task.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flyteidl2.core import execution_pb2

from runplane.aws.log_store import Container, container_insights_stream, fluent_bit_record

logger = logging.getLogger(__name__)

LOCAL_NODE = "local"  # the node name in stream names: every process runs on this machine
SHIP_SECONDS = 0.5  # how often new lines are shipped while the process runs
# PutLogEvents takes at most 10,000 events and 1 MiB (messages plus 26 bytes each) per call.
MAX_BATCH_EVENTS = 5_000
MAX_BATCH_BYTES = 800 * 1024
MAX_LINE_BYTES = 200 * 1024  # CloudWatch's event limit is 256 KiB; longer lines are cut


def pod_log_context(
    *, pod: str, namespace: str, started: datetime, ended: datetime | None = None
) -> execution_pb2.LogContext:
    """What Flyte's pod plugin reports for a task pod (BuildPodLogContext): its one container,
    named as the pod, with when it started and, once it has, ended."""
    process = execution_pb2.ContainerContext.ProcessContext()
    process.container_start_time.FromDatetime(started)
    if ended is not None:
        process.container_end_time.FromDatetime(ended)
    return execution_pb2.LogContext(
        primary_pod_name=pod,
        pods=[
            execution_pb2.PodLogContext(
                namespace=namespace,
                pod_name=pod,
                primary_container_name=pod,
                containers=[execution_pb2.ContainerContext(container_name=pod, process=process)],
            )
        ],
    )


class LogSink:
    """Where the executor's processes' output goes: one log group."""

    def __init__(self, *, log_group: str, client: Any, node: str = LOCAL_NODE) -> None:
        self.log_group = log_group
        self._client = client
        self._node = node

    def ship(self, *, log_file: Path, container: Container) -> LogShipper:
        """Start shipping what the process appends to ``log_file`` from now on."""
        shipper = LogShipper(
            client=self._client,
            log_group=self.log_group,
            log_file=log_file,
            container=container,
            container_id=uuid.uuid4().hex + uuid.uuid4().hex,  # a fresh container per launch, as a pod's
            node=self._node,
        )
        shipper.start()
        return shipper


class LogShipper:
    """Tails one process's log file into one stream, on a thread of its own."""

    def __init__(
        self, *, client: Any, log_group: str, log_file: Path, container: Container, container_id: str, node: str
    ) -> None:
        self._client = client
        self._group = log_group
        self._file = log_file
        self._container = container
        self._container_id = container_id
        self._node = node
        self.stream = container_insights_stream(node=node, container=container, container_id=container_id)
        self._offset = log_file.stat().st_size if log_file.exists() else 0  # an earlier launch's lines are not ours
        self._pending = b""
        self._stream_created = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"logs-{container.pod}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ship what is left (a last line without its line break included) and stop."""
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(SHIP_SECONDS):
            self._ship(final=False)
        self._ship(final=True)

    def _ship(self, *, final: bool) -> None:
        try:
            lines = self._read(final=final)
            if lines:
                self._put(lines)
        except Exception:
            logger.exception("could not ship the output of %s to %s", self._container.pod, self._group)

    def _read(self, *, final: bool) -> list[str]:
        try:
            with self._file.open("rb") as log:
                log.seek(self._offset)
                data = log.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        *lines, self._pending = (self._pending + data).split(b"\n")  # the last part has no line break yet
        if final and self._pending:
            lines.append(self._pending)
            self._pending = b""
        return [line[:MAX_LINE_BYTES].decode(errors="replace").rstrip("\r") for line in lines]

    def _put(self, lines: list[str]) -> None:
        if not self._stream_created:
            with contextlib.suppress(self._client.exceptions.ResourceAlreadyExistsException):
                self._client.create_log_stream(logGroupName=self._group, logStreamName=self.stream)
            self._stream_created = True
        now = datetime.now(UTC)
        timestamp = int(now.timestamp() * 1000)
        batch: list[dict[str, Any]] = []
        size = 0
        for line in lines:
            message = fluent_bit_record(
                line=line, container=self._container, container_id=self._container_id, node=self._node, moment=now
            )
            if batch and (len(batch) >= MAX_BATCH_EVENTS or size + len(message) + 26 > MAX_BATCH_BYTES):
                self._client.put_log_events(logGroupName=self._group, logStreamName=self.stream, logEvents=batch)
                batch, size = [], 0
            batch.append({"timestamp": timestamp, "message": message})
            size += len(message) + 26
        if batch:
            self._client.put_log_events(logGroupName=self._group, logStreamName=self.stream, logEvents=batch)
