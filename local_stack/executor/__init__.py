"""A local stand-in for Flyte's executor: runs each TaskAction's container command as a local process.

Flyte's executor (flyteorg/flyte ``executor/pkg/controller``) watches TaskAction resources and
drives each through a plugin that runs a pod. This one does the same for the local stack without a
container runtime: the image is ignored and ``container.command + container.args`` run as a process
(``a0`` and other bare names resolved in the Python environment's ``bin`` first), in a fresh scratch
folder per attempt, with stdout and stderr captured to ``<work_dir>/<resource>/<attempt>/task.log``.

What it writes, as Flyte's does: only the resource's ``status`` subresource (metav1 conditions
Progressing/Succeeded/Failed, ``attempts``, ``phaseHistory``, ``errorState``, ``pluginPhase``,
``systemFailures``, ``stateJson``), its finalizer ``flyte.org/plugin-finalizer``, the terminal labels
the garbage collector selects on, and an ``ActionEvent`` per phase transition, POSTed as binary
proto to ``<events_endpoint>/flyteidl2.workflow.EventsProxyService/Record`` (with a data-plane
bearer token when given ``events_authorization``).

The lifecycle follows ``taskaction_controller.go``:

- validate the spec (required fields; no container in the template means no plugin): an invalid
  one fails at once (InvalidSpec / PluginNotFound) and never gets the finalizer;
- add the finalizer, then Queued -> Initializing -> Executing -> Completed or PermanentFailure;
- on exit, ``<outputPrefix>/error.pb`` (an ErrorDocument, which the SDK writes before exiting 0)
  decides: RECOVERABLE with attempts left under the template's retries restarts the task in place
  (``attempts + 1``, back to Queued); a recoverable SYSTEM error restarts the same attempt, at most
  ``MAX_SYSTEM_FAILURES`` times (Flyte's system-failure counter); anything else is permanent;
- a resource being deleted has its process group killed, gets an ABORTED event and loses the
  finalizer, so the deletion (and the garbage collector's cascade to its children) completes;
- terminal resources are labelled ``flyte.org/termination-status=terminated`` and
  ``flyte.org/completed-time``, and a sweep deletes those older than ``ttl_seconds``.

Where it differs from Flyte, on purpose:

- a retryable failure is written (Progressing/RetryableFailure, a FAILED event carrying the error
  for the failed attempt) before the restart; Flyte jumps straight to Queued of the next attempt,
  so that attempt's events never say how it ended;
- deleting a resource that already ended sends no ABORTED event (Flyte sends one, which would make
  a SUCCEEDED attempt read back as ABORTED);
- a process that exits 0 without ``error.pb`` succeeds whether or not it wrote ``outputs.pb``;
- the system-failure count is reset by any other outcome of an attempt, not by the relaunch's
  Queued (with which Flyte resets it, so a task killed over and over would restart forever);
- an invalid spec gets an ``errorState`` and a FAILED event, which Flyte leaves to a Kubernetes
  Event only; no Kubernetes Events are written here;
- condition messages are never empty (Flyte's Queued has none): the local API server refuses them.

Run one per namespace: there is no leader election, and two executors would run every task twice.

The package, one concern a module: ``status`` (phases, conditions, the spec checks), ``templating``
(an attempt's paths and its rendered command), ``environment`` (what the process gets), ``outcome``
(how an attempt ended), ``taskactions`` (the Kubernetes calls), ``events`` (the Record client),
``process`` (starting and killing processes, nothing else does), ``runner`` (one resource's life)
and ``controller`` (the watch loop and the garbage collector, ``LocalExecutor``).
"""

from __future__ import annotations

from local_stack.executor.controller import (
    CONDITION_ACTION,
    WATCH_RETRY_SECONDS,
    WATCH_TIMEOUT_SECONDS,
    LocalExecutor,
)
from local_stack.executor.environment import (
    ORG_NAME,
    task_environment_of,
)
from local_stack.executor.events import (
    EVENT_POST_ATTEMPTS,
    EVENT_RETRY_SECONDS,
    EVENT_TIMEOUT_SECONDS,
    RECORD_PATH,
    EventSink,
)
from local_stack.executor.outcome import (
    EXIT_FAILURE_CODE,
    KILLED_CODE,
    LOG_TAIL_BYTES,
    LOG_TAIL_LINES,
    exit_failure,
    failure_from_error_document,
    log_tail,
    read_object,
)
from local_stack.executor.process import (
    ABORT_GRACE_SECONDS,
    TaskProcess,
    launch,
)
from local_stack.executor.runner import (
    LOG_FILE,
    PROCESS_POLL_SECONDS,
    SCRATCH_DIR,
)
from local_stack.executor.status import (
    ABORTED,
    BAD_TASK_CODE,
    COMPLETED,
    COMPLETED_TIME_FORMAT,
    EXECUTING,
    FINALIZER,
    INITIALIZING,
    INVALID_SPEC,
    MAX_CONDITION_MESSAGE,
    MAX_RETRIES_CODE,
    MAX_SYSTEM_FAILURES,
    MAX_SYSTEM_FAILURES_CODE,
    PERMANENT_FAILURE,
    PLUGIN_NOT_FOUND,
    QUEUED,
    REQUIRED_SPEC_FIELDS,
    RETRYABLE_FAILURE,
    SYSTEM_ERROR_CODE,
    TERMINATED,
    Failure,
    Phase,
    apply_phase,
    completed_time_label,
    decode_template,
    invalid_spec,
    is_terminal,
    max_attempts,
    set_condition,
    should_collect,
)
from local_stack.executor.taskactions import (
    API_RETRIES,
    API_RETRY_SECONDS,
    API_TIMEOUT_SECONDS,
    TaskActions,
)
from local_stack.executor.templating import (
    AttemptPaths,
    command_line,
    render,
    template_values,
)

__all__ = [
    "ABORTED",
    "ABORT_GRACE_SECONDS",
    "API_RETRIES",
    "API_RETRY_SECONDS",
    "API_TIMEOUT_SECONDS",
    "BAD_TASK_CODE",
    "COMPLETED",
    "COMPLETED_TIME_FORMAT",
    "CONDITION_ACTION",
    "EVENT_POST_ATTEMPTS",
    "EVENT_RETRY_SECONDS",
    "EVENT_TIMEOUT_SECONDS",
    "EXECUTING",
    "EXIT_FAILURE_CODE",
    "FINALIZER",
    "INITIALIZING",
    "INVALID_SPEC",
    "KILLED_CODE",
    "LOG_FILE",
    "LOG_TAIL_BYTES",
    "LOG_TAIL_LINES",
    "MAX_CONDITION_MESSAGE",
    "MAX_RETRIES_CODE",
    "MAX_SYSTEM_FAILURES",
    "MAX_SYSTEM_FAILURES_CODE",
    "ORG_NAME",
    "PERMANENT_FAILURE",
    "PLUGIN_NOT_FOUND",
    "PROCESS_POLL_SECONDS",
    "QUEUED",
    "RECORD_PATH",
    "REQUIRED_SPEC_FIELDS",
    "RETRYABLE_FAILURE",
    "SCRATCH_DIR",
    "SYSTEM_ERROR_CODE",
    "TERMINATED",
    "WATCH_RETRY_SECONDS",
    "WATCH_TIMEOUT_SECONDS",
    "AttemptPaths",
    "EventSink",
    "Failure",
    "LocalExecutor",
    "Phase",
    "TaskActions",
    "TaskProcess",
    "apply_phase",
    "command_line",
    "completed_time_label",
    "decode_template",
    "exit_failure",
    "failure_from_error_document",
    "invalid_spec",
    "is_terminal",
    "launch",
    "log_tail",
    "max_attempts",
    "read_object",
    "render",
    "set_condition",
    "should_collect",
    "task_environment_of",
    "template_values",
]
