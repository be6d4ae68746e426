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
proto to ``<events_endpoint>/flyteidl2.workflow.EventsProxyService/Record`` with no credentials
(setup.go's ``http.DefaultClient``): the local stack points it at the events relay, the same script
the cluster runs (deploy/kubernetes/events-relay/relay.py), which adds the data-plane client's token.
Its task-cache calls (``cache``: CacheService Get, Put, GetOrExtendReservation, ReleaseReservation)
go the same way, to ``cache_endpoint`` without credentials (cache_service/client.go's
``http.DefaultClient``), which the local stack points at the relay too.

The lifecycle follows ``taskaction_controller.go``:

- validate the spec (required fields; no container in the template means no plugin): an invalid
  one gets the Failed and Progressing conditions with the error as their message, nothing else (no
  errorState, no event, no finalizer), and its terminal labels;
- add the finalizer, then Queued -> Initializing -> Executing -> Completed or PermanentFailure;
- every transition records its event first, batched with other actions' events (``events``:
  up to 400 a Record call, flushed 25 ms after the first), and writes the status only once the
  event is accepted; a refused or failed Record leaves the status as it was and the transition is
  tried again until it is accepted (updateTaskActionStatus, the reconcile's requeue);
- on exit, ``<outputPrefix>/error.pb`` (an ErrorDocument, which the SDK writes before exiting 0)
  decides: RECOVERABLE with attempts left under the template's retries restarts the task in place,
  straight to Queued of the next attempt (``attempts + 1``): the failed attempt gets no terminal
  condition and no terminal event; a recoverable SYSTEM error restarts the same attempt (its
  counter written without an event), at most ``MAX_SYSTEM_FAILURES`` times; anything else is
  permanent;
- a resource being deleted has its process group killed; if it holds the finalizer (any valid
  resource, ended or not: terminal ones keep it) it gets an ABORTED event, and the finalizer is
  removed only once that event is accepted (handleAbortAndFinalize);
- terminal resources are labelled ``flyte.org/termination-status=terminated`` and
  ``flyte.org/completed-time``, and a sweep deletes those older than ``ttl_seconds`` without
  waiting for anything else (garbage_collector.go);
- events carry version 0, ``updated_time`` (the phase history's last entry), no start or end
  time, and an ErrorInfo of message and kind only (buildActionEvent, toActionErrorInfo);
- the task's environment is what a Flyte pod's container gets (``environment``: the template's env,
  the execution variables, the executor's, the platform's defaults), plus, of the host, only
  ``PATH`` (the venv's bin first) and ``HOME``, which a container has from its image and runtime;
  the command is rendered with Flyte's template variables only (``{{.runName}}`` and
  ``{{.actionName}}`` are left as they are).

Where it still differs from the Go code:

- ``runner._ActionRunner._record_until_accepted`` resends the same transition's event until it is
  accepted; Flyte's requeued reconcile asks the plugin again and may report a later phase instead,
  so phases a pod went through during an outage can be skipped there and are all reported here;
- ``runner._ActionRunner._outcome``: a process that exits 0 without ``error.pb`` succeeds whether or
  not it wrote ``outputs.pb`` (the pod plugin reads the outputs);
- ``runner._ActionRunner._drive``: the system-failure count is reset by any other outcome of an
  attempt, not by the relaunch's Queued (reconcileTask resets it on every non-system transition,
  so a task killed over and over would restart forever);
- ``status.invalid_spec``: a taskTemplate that does not decode is an InvalidSpec here; Flyte fails
  to build the task execution context and requeues it forever; no Kubernetes Events are written
  (reconcileTask's Recorder.Eventf);
- ``status.set_condition``: condition messages are never empty (Flyte's Queued may have none): the
  local API server (1.20) refuses them;
- ``events.EventSink``: 4 flush workers instead of 32 (eventFlushWorkers), on a shared laptop;
- ``controller.LocalExecutor``: one watch thread and a thread per resource instead of a work queue
  with MaxConcurrentReconciles; a condition action (``actionType: condition``) is skipped, not
  resolved (reconcileCondition).

Run one per namespace: there is no leader election, and two executors would run every task twice.

The package, one concern a module: ``status`` (phases, conditions, the spec checks), ``templating``
(an attempt's paths and its rendered command), ``environment`` (what the process gets), ``outcome``
(how an attempt ended), ``taskactions`` (the Kubernetes calls), ``events`` (the batching Record
client), ``process`` (starting and killing processes, nothing else does), ``runner`` (one
resource's life) and ``controller`` (the watch loop and the garbage collector, ``LocalExecutor``).
"""

from __future__ import annotations

from local_stack.executor.controller import (
    CONDITION_ACTION,
    WATCH_RETRY_SECONDS,
    WATCH_TIMEOUT_SECONDS,
    LocalExecutor,
)
from local_stack.executor.environment import (
    HOST_VARIABLES,
    ORG_NAME,
    task_environment_of,
)
from local_stack.executor.events import (
    EVENT_BATCH_MAX_DELAY_SECONDS,
    EVENT_BATCH_MAX_SIZE,
    EVENT_FLUSH_WORKERS,
    EVENT_TIMEOUT_SECONDS,
    RECORD_PATH,
    REFUSED_EVENTS_HEADER,
    EventNotRecorded,
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
    EVENT_RETRY_MAX_SECONDS,
    EVENT_RETRY_SECONDS,
    LOG_FILE,
    PROCESS_POLL_SECONDS,
    RESTART_MESSAGE,
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
    "EVENT_BATCH_MAX_DELAY_SECONDS",
    "EVENT_BATCH_MAX_SIZE",
    "EVENT_FLUSH_WORKERS",
    "EVENT_RETRY_MAX_SECONDS",
    "EVENT_RETRY_SECONDS",
    "EVENT_TIMEOUT_SECONDS",
    "EXECUTING",
    "EXIT_FAILURE_CODE",
    "FINALIZER",
    "HOST_VARIABLES",
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
    "REFUSED_EVENTS_HEADER",
    "REQUIRED_SPEC_FIELDS",
    "RESTART_MESSAGE",
    "RETRYABLE_FAILURE",
    "SCRATCH_DIR",
    "SYSTEM_ERROR_CODE",
    "TERMINATED",
    "WATCH_RETRY_SECONDS",
    "WATCH_TIMEOUT_SECONDS",
    "AttemptPaths",
    "EventNotRecorded",
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
