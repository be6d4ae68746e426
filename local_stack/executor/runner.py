"""One TaskAction's lifecycle in the local executor: its runner thread drives the attempts and
writes every status change and event of the resource (Flyte's TaskActionReconciler.Reconcile for one
resource)."""

from __future__ import annotations

import json
import logging
import shutil
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flyteidl2.common import identifier_pb2
from flyteidl2.core import execution_pb2, tasks_pb2
from flyteidl2.workflow import run_definition_pb2

from local_stack.executor.environment import task_environment_of
from local_stack.executor.events import EventSink
from local_stack.executor.outcome import exit_failure, failure_from_error_document, read_object
from local_stack.executor.process import TaskProcess, launch
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
    RETRYABLE_FAILURE,
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
        self._finished = False
        self.process: TaskProcess | None = None  # the running attempt's process, if any
        self._event_attempt = 0
        self._event_version = 0
        self._attempt_started = _now()
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
        """Record the abort of an action that had not ended, and let the deletion complete."""
        resource = self._context.actions.get(self.name, self.uid)
        holds_finalizer = resource is not None and FINALIZER in (resource["metadata"].get("finalizers") or [])
        if (self._owned or holds_finalizer) and not is_terminal(self._status) and invalid_spec(self._spec) is None:
            attempt = int(self._status.get("attempts") or 1)
            self._record_event(ABORTED, attempt, self._paths(attempt), now=_now(), failure=None, message="aborted")
            logger.info("%s aborted (attempt %d)", self.name, attempt)
        if holds_finalizer:
            self._context.actions.set_finalizer(self.name, self.uid, present=False)

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
        restarting = False
        while True:
            failure = self._run_attempt(template, attempt, restarting=restarting)
            restarting = True
            if failure is None:
                self._end(COMPLETED, attempt)
                return
            if failure.is_system_retryable:
                self._status["systemFailures"] = int(self._status.get("systemFailures") or 0) + 1
                if self._status["systemFailures"] > MAX_SYSTEM_FAILURES:
                    message = f"failed with system error {self._status['systemFailures']} times: [{failure.code}] {failure.message}"
                    self._end(
                        PERMANENT_FAILURE,
                        attempt,
                        Failure(MAX_SYSTEM_FAILURES_CODE, message, kind="SYSTEM", recoverable=False),
                    )
                    return
                logger.warning("%s attempt %d: system error %s, restarting it", self.name, attempt, failure.code)
                continue
            self._status["systemFailures"] = 0
            if failure.recoverable and attempt < max_attempts(template):
                self._transition(RETRYABLE_FAILURE, attempt, failure=failure)
                attempt += 1
                continue
            if failure.recoverable and not failure.code:  # retries exhausted, and nothing says why
                failure = Failure(
                    MAX_RETRIES_CODE, f"task failed after {attempt} attempt(s)", kind=failure.kind or "USER"
                )
            self._end(PERMANENT_FAILURE, attempt, failure)
            return

    def _run_attempt(self, template: tasks_pb2.TaskTemplate, attempt: int, *, restarting: bool) -> Failure | None:
        """One launch of the task's command: None if it succeeded, else how it failed."""
        self._transition(QUEUED, attempt, message="restarting task" if restarting else "")
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
            process = launch(argv, cwd=scratch, env=environment, log_file=log_file)
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
        """Flyte's updateTaskActionStatus: the event first, then the status."""
        now = _now()
        if not phase.ends_attempt:
            message = message or phase.message  # the plugin's reason, which Flyte makes a cluster event
        self._status["attempts"] = attempt
        apply_phase(
            self._status, phase, message=message, failure=failure, now=_rfc3339(now), generation=self._generation
        )
        self._status["stateJson"] = json.dumps(
            {
                "actionId": f"{self._spec['runName']}/{self._spec['actionName']}",
                "phase": phase.plugin_phase,
                "timestamp": _rfc3339(now),
            },
            separators=(",", ":"),
        )
        self._record_event(phase, attempt, self._paths(attempt), now=now, failure=failure, message=message)
        self._write_status()
        logger.debug("%s attempt %d: %s", self.name, attempt, phase.reason)

    def _end(self, phase: Phase, attempt: int, failure: Failure | None = None) -> None:
        self._transition(phase, attempt, failure=failure)
        self._stamp_terminal_labels()
        outcome = "succeeded" if failure is None else f"failed: [{failure.code}] {failure.message.strip()[:200]}"
        logger.info("%s %s (attempt %d)", self.name, outcome, attempt)

    def _reject(self, reason: str, kind: str, message: str) -> None:
        """An invalid spec: terminal at once, no finalizer (Flyte's validation failure)."""
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
        failure = Failure(reason, message, kind=kind, recoverable=False)
        self._status["errorState"] = failure.error_state()
        if all(self._spec.get(name) for name in ("project", "domain", "runName", "actionName")):
            self._record_event(PERMANENT_FAILURE, 1, None, now=now, failure=failure, message="")
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

    def _record_event(
        self,
        phase: Phase,
        attempt: int,
        paths: AttemptPaths | None,
        *,
        now: datetime,
        failure: Failure | None,
        message: str,
    ) -> None:
        if attempt != self._event_attempt:
            self._event_attempt, self._event_version, self._attempt_started = attempt, 0, now
        spec = self._spec
        event = run_definition_pb2.ActionEvent(
            id=identifier_pb2.ActionIdentifier(
                run=identifier_pb2.RunIdentifier(project=spec["project"], domain=spec["domain"], name=spec["runName"]),
                name=spec["actionName"],
            ),
            attempt=attempt,
            phase=phase.action_phase,
            version=self._event_version,
        )
        self._event_version += 1
        event.start_time.FromDatetime(self._attempt_started)
        event.updated_time.FromDatetime(now)
        if phase.ends_attempt:
            event.end_time.FromDatetime(now)
        event.reported_time.FromDatetime(datetime.now(UTC))
        if failure is not None:
            event.error_info.CopyFrom(failure.error_info())
        if message:
            event.cluster_events.add(message=message).occurred_at.FromDatetime(now)
        if paths is not None:
            event.outputs.CopyFrom(paths.output_references())  # Flyte sets them on every event
        if self._log_context is not None and self._log_context[0] == attempt:
            event.log_context.CopyFrom(self._log_context[1])
        self._context.events.record(event)

    def _paths(self, attempt: int) -> AttemptPaths:
        return AttemptPaths.of(namespace=self._context.actions.namespace, spec=self._spec, attempt=attempt)

    def _check_interrupted(self) -> None:
        if self._deleted.is_set() or self._context.stopping.is_set():
            raise _Interrupted
