"""One TaskAction's lifecycle in the local executor: its runner thread drives the attempts and
writes every status change and event of the resource (Flyte's TaskActionReconciler.Reconcile for one
resource).

As in updateTaskActionStatus, a status is written only once its event is recorded: a Record call
that fails leaves the status as it was, and the same transition is tried again (Flyte requeues the
reconcile with a backoff) until the event is accepted, the resource is deleted or the executor stops.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flyteidl2.common import identifier_pb2
from flyteidl2.core import execution_pb2, tasks_pb2
from flyteidl2.core.catalog_pb2 import CatalogCacheStatus
from flyteidl2.workflow import run_definition_pb2

from local_stack.executor.cache import ActionCache, CacheClient, write_object
from local_stack.executor.either import EitherEvent
from local_stack.executor.environment import task_environment_of
from local_stack.executor.events import EventNotRecorded, EventSink
from local_stack.executor.outcome import exit_failure, failure_from_error_document, read_object
from local_stack.executor.process import Launcher, TaskProcess
from local_stack.executor.status import (
    ABORTED,
    BAD_TASK_CODE,
    COMPLETED,
    EXECUTING,
    FINALIZER,
    INITIALIZING,
    MAX_RETRIES_CODE,
    MAX_SYSTEM_FAILURES,
    MAX_SYSTEM_FAILURES_CODE,
    PERMANENT_FAILURE,
    QUEUED,
    SYSTEM_ERROR_CODE,
    TERMINATED,
    Failure,
    Phase,
    _now,
    _rfc3339,
    apply_phase,
    completed_time_label,
    decode_template,
    invalid_spec,
    is_terminal,
    max_attempts,
    set_condition,
)
from local_stack.executor.taskactions import TaskActions
from local_stack.executor.templating import AttemptPaths, command_line, template_values
from local_stack.task_logs import LogSink, pod_log_context
from runplane.aws.log_store import Container
from runplane.kube.resources import LABEL_COMPLETED_TIME, LABEL_TERMINATION_STATUS

logger = logging.getLogger(__name__)

# How often a running attempt looks for a deletion of its resource.
PROCESS_POLL_SECONDS = 0.1
# A transition whose event was not recorded is tried again after this long, doubling up to the cap
# (controller-runtime's per-item backoff starts at 5 ms; capped low here so a recovered control
# plane gets every status within a second or two).
EVENT_RETRY_SECONDS = 0.05
EVENT_RETRY_MAX_SECONDS = 1.0
# The Queued message of an attempt the executor restarts (Flyte's in-place restart).
RESTART_MESSAGE = "restarting task"
LOG_FILE = "task.log"
SCRATCH_DIR = "work"


class _Interrupted(Exception):
    """The resource is being deleted (or the executor stops): the attempt ends here."""


@dataclass(frozen=True)
class _Context:
    """What every runner shares with the executor."""

    actions: TaskActions
    events: EventSink
    s3: Any
    work_dir: Path
    bin_dir: Path
    task_environment: dict[str, str]
    stopping: threading.Event
    logs: LogSink | None = None  # where the processes' output is shipped, as Container Insights does
    cache: CacheClient | None = None  # the control plane's CacheService (discoverable tasks)
    launcher: Launcher = field(default_factory=Launcher)  # with the fork server, if there is one

    def attempt_dir(self, name: str, attempt: int) -> Path:
        return self.work_dir / name / str(attempt)


class _ActionRunner:
    """The life of one TaskAction (one uid), in its own thread: every status write of the resource
    comes from here, so they are serialized. Deletion is requested from the watch thread."""

    def __init__(self, context: _Context, resource: dict[str, Any]) -> None:
        metadata = resource["metadata"]
        self._context = context
        self.name: str = metadata["name"]
        self.uid: str = metadata["uid"]
        self._spec: dict[str, Any] = resource.get("spec") or {}
        self._labels: dict[str, str] = metadata.get("labels") or {}
        self._generation = int(metadata.get("generation") or 0)
        self._status: dict[str, Any] = json.loads(json.dumps(resource.get("status") or {}))
        self._owned = FINALIZER in (metadata.get("finalizers") or [])
        self._lock = threading.Lock()
        self._deleted = threading.Event()
        self._stop_waiting = EitherEvent(self._deleted, context.stopping)  # ends a wait for the cache
        self._finished = False
        self.process: TaskProcess | None = None  # the running attempt's process, if any
        # The pod's log context once its process started (Flyte's pod plugin reports it on every
        # event of the attempt from then on), and the attempt it belongs to.
        self._log_context: tuple[int, execution_pb2.LogContext] | None = None
        self.thread = threading.Thread(target=self._run, name=f"taskaction-{self.name}", daemon=True)

    # --- called from the watch thread ---------------------------------------------------------

    def request_deletion(self) -> bool:
        """The resource is being deleted. True if this runner takes care of it (kills the process,
        records the abort, removes the finalizer); False if it has finished and the caller must
        call ``finalize_deletion``."""
        with self._lock:
            if self._deleted.is_set():
                return True
            self._deleted.set()
            return not self._finished

    def finalize_deletion(self) -> None:
        """handleAbortAndFinalize: a resource that holds the finalizer (any that passed validation,
        ended or not) gets an ABORTED event, and loses the finalizer once the event is accepted."""
        resource = self._context.actions.get(self.name, self.uid)
        if resource is None or FINALIZER not in (resource["metadata"].get("finalizers") or []):
            return
        status = resource.get("status") or self._status
        attempt = int(status.get("attempts") or 1)  # observedAttempts
        event = self._event(ABORTED, attempt, self._paths(attempt), now=_now(), failure=None, message="aborted")
        event.ClearField("log_context")  # PhaseInfoAborted carries no task info
        try:
            self._record_until_accepted(event, interruptible=False)
        except _Interrupted:  # the executor stops: the finalizer stays, a restarted one aborts it
            return
        self._context.actions.set_finalizer(self.name, self.uid, present=False)
        logger.info("%s aborted (attempt %d)", self.name, attempt)

    def finalize_deletion_in_background(self) -> None:
        """``finalize_deletion`` off the watch thread: its event may wait for the control plane."""

        def finalize() -> None:
            try:
                self.finalize_deletion()
            except Exception:
                logger.exception("finalizing the deletion of %s failed", self.name)

        threading.Thread(target=finalize, name=f"taskaction-{self.name}-finalize", daemon=True).start()

    # --- the runner's thread -----------------------------------------------------------------

    def _run(self) -> None:
        try:
            if not self._deleted.is_set():
                self._drive()
        except _Interrupted:
            pass
        except Exception as exc:
            logger.exception("running %s failed", self.name)
            self._fail_unexpectedly(exc)
        finally:
            with self._lock:
                self._finished = True
                deleted = self._deleted.is_set()
            if deleted and not self._context.stopping.is_set():
                try:
                    self.finalize_deletion()
                except Exception:
                    logger.exception("finalizing the deletion of %s failed", self.name)

    def _drive(self) -> None:
        if is_terminal(self._status):
            self._stamp_terminal_labels()
            return
        problem = invalid_spec(self._spec)
        if problem is not None:
            self._reject(*problem)
            return
        if not self._context.actions.set_finalizer(self.name, self.uid, present=True):
            raise _Interrupted
        self._owned = True
        template = decode_template(self._spec)
        attempt = int(self._status.get("attempts") or 1)
        self._transition(QUEUED, attempt)
        cache = self._cache_of(template)
        if cache is not None and self._served_from_cache(cache, attempt):
            return
        while True:
            failure = self._run_attempt(template, attempt)
            if failure is None:
                if cache is not None:
                    self._status["cacheStatus"] = cache.after_success(outputs_uri=self._outputs_uri(attempt))
                self._end(COMPLETED, attempt)
                return
            if failure.is_system_retryable:
                failures = int(self._status.get("systemFailures") or 0) + 1
                if failures > MAX_SYSTEM_FAILURES:
                    self._status["systemFailures"] = failures
                    message = f"failed with system error {failures} times: [{failure.code}] {failure.message}"
                    self._end(
                        PERMANENT_FAILURE,
                        attempt,
                        Failure(MAX_SYSTEM_FAILURES_CODE, message, kind="SYSTEM", recoverable=False),
                    )
                    return
                logger.warning("%s attempt %d: system error %s, restarting it", self.name, attempt, failure.code)
                # recordSystemError: the counter is written without an event, then the same attempt
                # starts over
                self._status["systemFailures"] = failures
                self._write_status()
                self._transition(QUEUED, attempt, message=RESTART_MESSAGE)
                continue
            self._status["systemFailures"] = 0
            if failure.recoverable and attempt < max_attempts(template):
                # the in-place restart: straight to Queued of the next attempt; the failed attempt
                # gets no terminal condition and no terminal event
                logger.info("%s attempt %d failed ([%s]), restarting", self.name, attempt, failure.code)
                attempt += 1
                self._transition(QUEUED, attempt, message=RESTART_MESSAGE)
                continue
            if failure.recoverable and not failure.code:  # retries exhausted, and nothing says why
                failure = Failure(
                    MAX_RETRIES_CODE, f"task failed after {attempt} attempt(s)", kind=failure.kind or "USER"
                )
            if cache is not None:
                cache.release()
            self._end(PERMANENT_FAILURE, attempt, failure)
            return

    # --- the task cache (local_stack.executor.cache) -------------------------------------------

    def _cache_of(self, template: tasks_pb2.TaskTemplate) -> ActionCache | None:
        s3 = self._context.s3
        return ActionCache.of(
            self._context.cache,
            spec=self._spec,
            template=template,
            owner=f"{self._context.actions.namespace}/{self.name}",  # Flyte's cacheReservationOwnerID
            inputs_uri=self._paths(1).input_file,
            read=lambda uri: read_object(s3, uri),
            write=lambda uri, body: write_object(s3, uri, body),
        )

    def _served_from_cache(self, cache: ActionCache, attempt: int) -> bool:
        """A hit ends the action (CACHE_HIT); waiting for another owner's reservation stays Queued
        with CACHE_MISS, as Flyte's WaitingForCache."""

        def waiting(holder: str) -> None:
            self._status["cacheStatus"] = int(CatalogCacheStatus.CACHE_MISS)
            self._transition(
                QUEUED, attempt, message=f"waiting for cache to be populated by reservation owner {holder!r}"
            )

        try:
            hit = cache.before(
                outputs_uri=self._outputs_uri(attempt), resuming=False, waiting=waiting, stopped=self._stop_waiting
            )
        except InterruptedError:
            raise _Interrupted from None
        if not hit:
            self._status.pop("cacheStatus", None)
            return False
        self._status["cacheStatus"] = int(CatalogCacheStatus.CACHE_HIT)
        self._end(COMPLETED, attempt)
        return True

    def _outputs_uri(self, attempt: int) -> str:
        return self._paths(attempt).output_references().output_uri

    def _run_attempt(self, template: tasks_pb2.TaskTemplate, attempt: int) -> Failure | None:
        """One launch of the task's command (its Queued already written): None if it succeeded,
        else how it failed."""
        self._check_interrupted()
        self._transition(INITIALIZING, attempt)
        namespace = self._context.actions.namespace
        paths = self._paths(attempt)
        pod_name = f"{self.name}-{attempt - 1}"  # Flyte's generated name: <resource>-<retry attempt>
        argv = command_line(
            template,
            template_values(namespace=namespace, spec=self._spec, paths=paths, unique_key=pod_name),
            self._context.bin_dir,
        )
        if not argv:
            return Failure(BAD_TASK_CODE, "the task's container has neither command nor args", recoverable=False)
        environment = task_environment_of(
            spec=self._spec,
            template=template,
            attempt=attempt,
            pod_name=pod_name,
            platform=self._context.task_environment,
            bin_dir=self._context.bin_dir,
        )
        directory = self._context.attempt_dir(self.name, attempt)
        scratch = directory / SCRATCH_DIR
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        log_file = directory / LOG_FILE
        try:
            process = self._context.launcher.launch(argv, cwd=scratch, env=environment, log_file=log_file)
        except OSError as exc:
            return Failure(BAD_TASK_CODE, f"cannot start {argv[0]!r}: {exc}", recoverable=False)
        logger.info("%s attempt %d: running %s (pid %d, log %s)", self.name, attempt, argv[0], process.pid, log_file)
        self.process = process
        started = _now()
        self._log_context = (attempt, pod_log_context(pod=pod_name, namespace=namespace, started=started))
        logs = self._context.logs
        shipper = (
            logs.ship(log_file=log_file, container=Container(pod=pod_name, namespace=namespace, name=pod_name))
            if logs is not None
            else None
        )
        try:
            self._transition(EXECUTING, attempt, message=f"the task's process is running (pid {process.pid})")
            returncode = self._wait(process)
        finally:
            process.kill_group()  # whatever it left behind ends with it, as in a pod
            self.process = None
            shutil.rmtree(scratch, ignore_errors=True)
            if shipper is not None:
                shipper.stop()  # its last lines are shipped before the attempt's end is reported
            self._log_context = (
                attempt,
                pod_log_context(pod=pod_name, namespace=namespace, started=started, ended=_now()),
            )
        return self._outcome(returncode, paths, container=pod_name, log_file=log_file)

    def _wait(self, process: TaskProcess) -> int:
        while True:
            returncode = process.wait(PROCESS_POLL_SECONDS)
            if returncode is not None:
                return returncode
            if self._deleted.is_set() or self._context.stopping.is_set():
                process.terminate()
                raise _Interrupted

    def _outcome(self, returncode: int, paths: AttemptPaths, *, container: str, log_file: Path) -> Failure | None:
        try:
            document = read_object(self._context.s3, paths.error_uri)
            if document is not None:
                return failure_from_error_document(execution_pb2.ErrorDocument.FromString(document), paths.error_uri)
        except Exception as exc:  # Flyte: an unreadable error file is a system error of the plugin
            return Failure(SYSTEM_ERROR_CODE, f"failed to read error file @[{paths.error_uri}]: {exc}", kind="SYSTEM")
        if returncode == 0:
            return None
        return exit_failure(returncode, container=container, log_file=log_file)

    # --- status and events -------------------------------------------------------------------

    def _transition(self, phase: Phase, attempt: int, *, failure: Failure | None = None, message: str = "") -> None:
        """Flyte's updateTaskActionStatus: the event first, then the status, only once the event is
        recorded (tried again until it is)."""
        now = _now()
        if not phase.ends_attempt:
            message = message or phase.message  # the plugin's reason, which Flyte makes a cluster event
        status = copy.deepcopy(self._status)
        status["attempts"] = attempt
        apply_phase(status, phase, message=message, failure=failure, now=_rfc3339(now), generation=self._generation)
        status["stateJson"] = json.dumps(
            {
                "actionId": f"{self._spec['runName']}/{self._spec['actionName']}",
                "phase": phase.plugin_phase,
                "timestamp": _rfc3339(now),
            },
            separators=(",", ":"),
        )
        event = self._event(phase, attempt, self._paths(attempt), now=now, failure=failure, message=message)
        self._record_until_accepted(event, interruptible=True)
        self._status = status
        self._write_status()
        logger.debug("%s attempt %d: %s", self.name, attempt, phase.reason)

    def _record_until_accepted(self, event: run_definition_pb2.ActionEvent, *, interruptible: bool) -> None:
        """The event recorded, however long the control plane refuses it; a deletion (when
        ``interruptible``: the abort's own event is not) or the executor stopping ends the wait."""
        delay = EVENT_RETRY_SECONDS
        while True:
            try:
                event.reported_time.FromDatetime(datetime.now(UTC))
                self._context.events.record(event)
                return
            except EventNotRecorded as exc:
                logger.debug("%s: event %s not recorded (%s); trying again", self.name, event.phase, exc)
            if self._context.stopping.is_set() or (interruptible and self._deleted.is_set()):
                raise _Interrupted
            if self._context.stopping.wait(delay):
                raise _Interrupted
            delay = min(delay * 2, EVENT_RETRY_MAX_SECONDS)

    def _end(self, phase: Phase, attempt: int, failure: Failure | None = None) -> None:
        self._transition(phase, attempt, failure=failure)
        self._stamp_terminal_labels()
        outcome = "succeeded" if failure is None else f"failed: [{failure.code}] {failure.message.strip()[:200]}"
        logger.info("%s %s (attempt %d)", self.name, outcome, attempt)

    def _reject(self, reason: str, kind: str, message: str) -> None:
        """An invalid spec: terminal at once with conditions only (Failed and Progressing, the
        validation error as their message): no errorState, no event, no finalizer (reconcileTask's
        validation failure; its Kubernetes Event is not written here)."""
        del kind  # Flyte keeps no kind for a validation failure
        now = _now()
        conditions = self._status.setdefault("conditions", [])
        for type, true in (("Failed", True), ("Progressing", False)):
            set_condition(
                conditions,
                type=type,
                true=true,
                reason=reason,
                message=message,
                now=_rfc3339(now),
                generation=self._generation,
            )
        self._write_status()
        self._stamp_terminal_labels()
        logger.warning("%s rejected: %s: %s", self.name, reason, message)

    def _fail_unexpectedly(self, error: Exception) -> None:
        if not self._owned or is_terminal(self._status) or self._deleted.is_set() or self._context.stopping.is_set():
            return
        try:
            failure = Failure(
                SYSTEM_ERROR_CODE, f"the local executor failed: {error}", kind="SYSTEM", recoverable=False
            )
            self._end(PERMANENT_FAILURE, int(self._status.get("attempts") or 1), failure)
        except Exception:
            logger.exception("could not record the failure of %s", self.name)

    def _write_status(self) -> None:
        if not self._context.actions.patch_status(self.name, self._status):
            self._deleted.set()  # gone under us: what is left is the abort
            raise _Interrupted

    def _stamp_terminal_labels(self) -> None:
        """Flyte's ensureTerminalLabels: what its garbage collector selects on."""
        if self._labels.get(LABEL_TERMINATION_STATUS) == TERMINATED and self._labels.get(LABEL_COMPLETED_TIME):
            return
        labels = {LABEL_TERMINATION_STATUS: TERMINATED, LABEL_COMPLETED_TIME: completed_time_label(self._status)}
        if self._context.actions.patch_labels(self.name, labels):
            self._labels = {**self._labels, **labels}

    def _event(
        self,
        phase: Phase,
        attempt: int,
        paths: AttemptPaths | None,
        *,
        now: datetime,
        failure: Failure | None,
        message: str,
    ) -> run_definition_pb2.ActionEvent:
        """buildActionEvent: version 0 (pluginsCore.DefaultPhaseVersion, what the container plugin
        reports), updated_time the phase history's last entry, no start or end time (the control
        plane derives them), ErrorInfo with message and kind only."""
        spec = self._spec
        event = run_definition_pb2.ActionEvent(
            id=identifier_pb2.ActionIdentifier(
                run=identifier_pb2.RunIdentifier(project=spec["project"], domain=spec["domain"], name=spec["runName"]),
                name=spec["actionName"],
            ),
            attempt=attempt,
            phase=phase.action_phase,
            version=0,
        )
        event.updated_time.FromDatetime(now)
        event.reported_time.FromDatetime(datetime.now(UTC))
        if failure is not None:
            event.error_info.CopyFrom(failure.error_info())
        if message:
            event.cluster_events.add(message=message).occurred_at.FromDatetime(now)
        if paths is not None:
            event.outputs.CopyFrom(paths.output_references())  # Flyte sets them on every event
        if self._log_context is not None and self._log_context[0] == attempt:
            event.log_context.CopyFrom(self._log_context[1])
        if self._status.get("cacheStatus"):
            event.cache_status = self._status["cacheStatus"]
        return event

    def _paths(self, attempt: int) -> AttemptPaths:
        return AttemptPaths.of(namespace=self._context.actions.namespace, spec=self._spec, attempt=attempt)

    def _check_interrupted(self) -> None:
        if self._deleted.is_set() or self._context.stopping.is_set():
            raise _Interrupted
