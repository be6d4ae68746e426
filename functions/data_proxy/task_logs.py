"""DataProxyService/TailLogs: the output of an action attempt's container, from CloudWatch Logs
(docs/flyte-compat.md#logs).

Flyte's TailLogs asks the runs service for the attempt's log context and streams the primary
container's log from the Kubernetes API. Here the log context comes from the attempt's recorded
events (``runplane.table.attempt_logs``: an attempt that never ran is ``not_found``), and the output
from the log group EKS's Container Insights ships the task pods' output to
(``runplane.aws.log_store``), read within the container's time window.

The stream is buffered and bounded, as the watches are (``runplane.connect.streams``): the lines
there are, then, while the attempt has not ended, the lines that arrive until the follow window
ends or the attempt does; then the end of the stream. At most ``MAX_LINES`` lines and
``MAX_BYTES`` of them are sent, the latest ones; a first line from the system says what was left
out. Each line ends with a line break, as the flyte SDK's log printers expect.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flyteidl2.dataproxy import dataproxy_service_pb2 as proxy
from flyteidl2.logs.dataplane import payload_pb2 as logs
from google.protobuf.timestamp_pb2 import Timestamp

from runplane.aws.log_store import Container, ContainerLogs, LogEvent
from runplane.flyte.validation import action_key
from runplane.table.actions import ActionStore
from runplane.table.attempt_logs import attempt_logs, primary_container

# Node clocks (Fluent Bit's timestamps) and the executor's (the container's start and end) differ
# by seconds; a margin this wide never loses a line and adds little to read.
WINDOW_MARGIN_MS = 60_000
# The first read of an attempt's output may take this long; the rest of the window follows it.
READ_SECONDS = 8.0
FOLLOW_POLL_SECONDS = 2.0  # one FilterLogEvents (and one Query of the run's events) per poll
# A tail is one Lambda response (6 MB, base64 inflates binary bodies by a third): at most this
# many lines, and bytes of them.
MAX_LINES = 20_000
MAX_BYTES = 3 * 1024 * 1024
BATCH_LINES = 100  # lines per message, Flyte's podlogs.DefaultBatchSize


class LogTail:
    def __init__(
        self,
        *,
        store: ActionStore,
        logs: ContainerLogs,
        follow_seconds: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._logs = logs
        self._follow = follow_seconds
        self._sleep = sleep
        self._monotonic = monotonic

    def tail_logs(self, request: proxy.TailLogsRequest) -> list[proxy.TailLogsResponse]:
        key = action_key(request.action_id)
        found = attempt_logs(self._store, key, request.attempt)
        pod, primary = primary_container(found.log_context)
        container = Container(pod=pod.pod_name, namespace=pod.namespace, name=primary.container_name)
        process = primary.process
        started = process.container_start_time if process.HasField("container_start_time") else None
        finished = process.container_end_time if process.HasField("container_end_time") else None
        ended = found.ended or finished is not None
        window_start = max(0, (_millis(started) if started else found.started_ms) - WINDOW_MARGIN_MS)
        end_ms = _millis(finished) + WINDOW_MARGIN_MS if finished is not None else None

        began = self._monotonic()
        first = self._logs.read(container, start_ms=window_start, end_ms=end_ms, deadline=began + READ_SECONDS)
        events, complete = list(first.events), first.complete
        follow_until = began + self._follow
        while not ended and complete and self._monotonic() < follow_until:
            self._sleep(FOLLOW_POLL_SECONDS)
            ended = attempt_logs(self._store, key, request.attempt).ended
            since = events[-1].timestamp_ms if events else window_start
            more = self._logs.read(
                container,
                start_ms=since,
                end_ms=None,
                deadline=self._monotonic() + FOLLOW_POLL_SECONDS,
                seen={event.event_id for event in events if event.timestamp_ms >= since},
            )
            events.extend(more.events)
            complete = more.complete
        return _frames(events, container=container, complete=complete)


def _frames(events: list[LogEvent], *, container: Container, complete: bool) -> list[proxy.TailLogsResponse]:
    lines = [_line(event) for event in events]
    kept: list[logs.LogLine] = []
    size = 0
    for line in reversed(lines):  # the latest lines, as a tail shows them
        size += len(line.message.encode())
        if len(kept) >= MAX_LINES or size > MAX_BYTES:
            break
        kept.append(line)
    kept.reverse()
    notes = []
    if len(kept) < len(lines):
        notes.append(f"[{len(lines) - len(kept)} earlier lines are not shown: a tail holds the latest {MAX_LINES}]")
    if not complete:
        notes.append("[the output goes on beyond what one tail reads; tail again for the rest]")
    kept = [logs.LogLine(message=note + "\n", originator=logs.LogLineOriginator.SYSTEM) for note in notes] + kept
    identifier = logs.ContainerIdentifier(
        kubernetes_namespace=container.namespace,
        kubernetes_pod_name=container.pod,
        kubernetes_container_name=container.name,
    )
    return [
        proxy.TailLogsResponse(
            logs=[proxy.TailLogsResponse.Logs(lines=kept[start : start + BATCH_LINES], container=identifier)]
        )
        for start in range(0, len(kept), BATCH_LINES)
    ]


def _line(event: LogEvent) -> logs.LogLine:
    line = logs.LogLine(message=event.line + "\n", originator=logs.LogLineOriginator.USER)
    line.timestamp.FromMilliseconds(event.timestamp_ms)
    return line


def _millis(timestamp: Timestamp) -> int:
    return int(timestamp.ToMilliseconds())
