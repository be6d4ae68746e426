"""Where the local executor's ActionEvents go: EventsProxyService/Record, batched as Flyte batches them.

Flyte's ``eventBatcher`` (executor/pkg/controller/event_batcher.go) coalesces the events of
concurrent reconciles, whatever their action or project, into one Record call of up to 400 events,
flushed 25 ms after the first one queued; each caller blocks until its batch is answered and gets
the batch's result, so one refused batch fails every event in it. The executor's HTTP client is a
plain ``http.DefaultClient``: no credentials (executor/setup.go). Here as there: the sink adds no
Authorization header; the events relay in front of the control plane (local_stack.relay, the same
script as deploy/kubernetes/events-relay) adds the data-plane client's token.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from flyteidl2.workflow import events_proxy_service_pb2, run_definition_pb2

logger = logging.getLogger(__name__)

RECORD_PATH = "/flyteidl2.workflow.EventsProxyService/Record"
# event_batcher.go: eventBatchMaxSize, eventBatchMaxDelay, eventFlushWorkers (fewer here: the local
# stack shares two cores), eventFlushTimeout.
EVENT_BATCH_MAX_SIZE = 400
EVENT_BATCH_MAX_DELAY_SECONDS = 0.025
EVENT_FLUSH_WORKERS = 4
EVENT_TIMEOUT_SECONDS = 30.0
# The response header in which the control plane names the events of a batch it refused.
REFUSED_EVENTS_HEADER = "x-flyte-refused-events"


class EventNotRecorded(Exception):
    """The Record call carrying the event failed: its status must not be written (the caller retries)."""


@dataclass
class _Pending:
    event: run_definition_pb2.ActionEvent
    done: Future[None] = field(default_factory=Future)


class EventSink:
    """Record calls to ``<endpoint>/flyteidl2.workflow.EventsProxyService/Record`` (Connect, binary
    proto), batched across actions. ``record`` blocks until the event's batch is answered."""

    def __init__(self, endpoint: str) -> None:
        self.url = endpoint.rstrip("/") + RECORD_PATH if endpoint else ""
        self._queue: list[_Pending] = []
        self._ready = threading.Condition()
        self._stopping = False
        self._workers = ThreadPoolExecutor(max_workers=EVENT_FLUSH_WORKERS, thread_name_prefix="executor-events")
        self._collector = threading.Thread(target=self._collect, name="executor-event-batcher", daemon=True)
        self._collector.start()
        self.batches = 0  # Record calls made (how tests see events of several actions share one)

    def record(self, event: run_definition_pb2.ActionEvent) -> None:
        """Returns once the control plane accepted the event's batch; raises EventNotRecorded."""
        if not self.url:
            raise EventNotRecorded("no events endpoint")
        pending = _Pending(event)
        with self._ready:
            if self._stopping:
                raise EventNotRecorded("the executor is stopping")
            self._queue.append(pending)
            self._ready.notify()
        try:
            pending.done.result(timeout=EVENT_TIMEOUT_SECONDS + 5)  # the flush's own timeout, and a margin
        except TimeoutError:
            raise EventNotRecorded("the batch was not answered in time") from None

    def close(self) -> None:
        with self._ready:
            self._stopping = True
            waiting, self._queue = self._queue, []
            self._ready.notify_all()
        for pending in waiting:
            pending.done.set_exception(EventNotRecorded("the executor is stopping"))
        self._collector.join(timeout=1)
        self._workers.shutdown(wait=False, cancel_futures=True)

    def _collect(self) -> None:
        """eventBatcher.collect: the first queued event opens a batch, which takes what arrives
        within the delay, up to the size."""
        while True:
            with self._ready:
                while not self._queue and not self._stopping:
                    self._ready.wait()
                if self._stopping:
                    return
                deadline = time.monotonic() + EVENT_BATCH_MAX_DELAY_SECONDS
                while len(self._queue) < EVENT_BATCH_MAX_SIZE and not self._stopping:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._ready.wait(left)
                batch, self._queue = self._queue[:EVENT_BATCH_MAX_SIZE], self._queue[EVENT_BATCH_MAX_SIZE:]
            if batch:
                try:
                    self._workers.submit(self._flush, batch)
                except RuntimeError:  # shut down under us
                    for pending in batch:
                        pending.done.set_exception(EventNotRecorded("the executor is stopping"))
                    return

    def _flush(self, batch: list[_Pending]) -> None:
        """eventBatcher.flush: one Record call, its result shared by every event of the batch."""
        self.batches += 1
        body = events_proxy_service_pb2.RecordRequest(events=[p.event for p in batch]).SerializeToString()
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/proto", "Connect-Protocol-Version": "1"},
        )
        error: EventNotRecorded | None = None
        try:
            with urllib.request.urlopen(request, timeout=EVENT_TIMEOUT_SECONDS) as response:
                response.read()
                refused = response.headers.get(REFUSED_EVENTS_HEADER)
                if refused:
                    logger.warning("the control plane refused events of a batch: %s", refused[:500])
        except urllib.error.HTTPError as exc:
            error = EventNotRecorded(f"Record answered {exc.code}: {exc.read()[:300]!r}")
        except (urllib.error.URLError, OSError) as exc:
            error = EventNotRecorded(f"Record failed: {exc}")
        if error is not None:
            logger.warning("a batch of %d event(s) was not recorded: %s", len(batch), error)
        for pending in batch:
            if error is None:
                pending.done.set_result(None)
            else:
                pending.done.set_exception(error)
