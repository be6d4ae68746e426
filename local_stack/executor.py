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
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from flyteidl2.common import identifier_pb2, phase_pb2
from flyteidl2.core import execution_pb2, tasks_pb2
from flyteidl2.task import common_pb2 as task_common_pb2
from flyteidl2.workflow import events_proxy_service_pb2, run_definition_pb2
from google.protobuf.message import DecodeError

from local_stack.task_logs import LogSink, pod_log_context
from runplane.aws.log_store import Container
from runplane.flyte.identifiers import taskaction_name
from runplane.flyte.output_paths import action_output_path
from runplane.kube.resources import GROUP, LABEL_COMPLETED_TIME, LABEL_TERMINATION_STATUS, PLURAL, VERSION

logger = logging.getLogger(__name__)

FINALIZER = "flyte.org/plugin-finalizer"
TERMINATED = "terminated"
# Flyte's labelTimeFormat: minute precision, so the labels sort (and compare) as text.
COMPLETED_TIME_FORMAT = "%Y-%m-%d.%H-%M"
RECORD_PATH = "/flyteidl2.workflow.EventsProxyService/Record"
REQUIRED_SPEC_FIELDS = (
    "runName",
    "project",
    "domain",
    "actionName",
    "taskType",
    "taskTemplate",
    "inputUri",
    "runOutputBase",
)
CONDITION_ACTION = "condition"  # HITL conditions have no process; Flyte resolves them by signal or timeout
# Flyte OSS has no organisations; its executor gives every task pod _U_ORG_NAME=local.
ORG_NAME = "local"
# Flyte's DefaultMaxSystemFailures: consecutive system errors before the action fails for good.
MAX_SYSTEM_FAILURES = 3
# Kubernetes' reason for a container that exited non-zero, which Flyte reports as the error code.
EXIT_FAILURE_CODE = "Error"
# A SIGKILLed primary container is a system error for Flyte (node shutdown, preemption).
KILLED_CODE = "Interrupted"
SYSTEM_ERROR_CODE = "SystemError"
MAX_SYSTEM_FAILURES_CODE = "MaxSystemFailuresExceeded"
MAX_RETRIES_CODE = "MaxRetriesExceeded"
BAD_TASK_CODE = "BadTaskSpecification"
# The CRD's maxLength for a condition message.
MAX_CONDITION_MESSAGE = 32768
# What Kubernetes keeps of a failed container's log as its message (FallbackToLogsOnError), which
# Flyte puts in the error: the last 80 lines, at most 2 KiB.
LOG_TAIL_LINES = 80
LOG_TAIL_BYTES = 2048
# The server ends each watch after this long; the loop resumes from the last resourceVersion.
WATCH_TIMEOUT_SECONDS = 10
# After a failed list or watch, wait before relisting, so a restarting API server is not hammered.
WATCH_RETRY_SECONDS = 1.0
# How often a running attempt looks for a deletion of its resource.
PROCESS_POLL_SECONDS = 0.1
# SIGTERM, then SIGKILL after this long: a pod's grace period, shortened for a local stack.
ABORT_GRACE_SECONDS = 3.0
API_TIMEOUT_SECONDS = 10.0
# A status or finalizer write that fails for a transient reason is retried this often.
API_RETRIES = 5
API_RETRY_SECONDS = 0.2
# An event the control plane cannot take right now is posted again this often, then dropped (logged).
EVENT_POST_ATTEMPTS = 3
EVENT_RETRY_SECONDS = 0.2
EVENT_TIMEOUT_SECONDS = 5.0
LOG_FILE = "task.log"
SCRATCH_DIR = "work"


# --- phases and failures ---------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    reason: str  # the condition reason, and the phaseHistory entry
    plugin_phase: str  # Flyte's pluginsCore.Phase name, in status.pluginPhase
    action_phase: phase_pb2.ActionPhase  # the ActionPhase of the event
    message: str  # what the condition says when nothing more specific is known (the plugin's reason)
    ends_attempt: bool = False


QUEUED = Phase("Queued", "PhaseQueued", phase_pb2.ACTION_PHASE_QUEUED, "task submitted to the local executor")
INITIALIZING = Phase(
    "Initializing", "PhaseInitializing", phase_pb2.ACTION_PHASE_INITIALIZING, "starting the task's process"
)
EXECUTING = Phase("Executing", "PhaseRunning", phase_pb2.ACTION_PHASE_RUNNING, "the task's process is running")
COMPLETED = Phase(
    "Completed", "PhaseSuccess", phase_pb2.ACTION_PHASE_SUCCEEDED, "TaskAction completed successfully", True
)
RETRYABLE_FAILURE = Phase(
    "RetryableFailure", "PhaseRetryableFailure", phase_pb2.ACTION_PHASE_FAILED, "task failed", True
)
PERMANENT_FAILURE = Phase(
    "PermanentFailure", "PhasePermanentFailure", phase_pb2.ACTION_PHASE_FAILED, "task failed", True
)
ABORTED = Phase("Aborted", "PhaseAborted", phase_pb2.ACTION_PHASE_ABORTED, "TaskAction was aborted", True)

INVALID_SPEC = "InvalidSpec"
PLUGIN_NOT_FOUND = "PluginNotFound"

_ERROR_INFO_KINDS = {"USER": run_definition_pb2.ErrorInfo.KIND_USER, "SYSTEM": run_definition_pb2.ErrorInfo.KIND_SYSTEM}
_ORIGIN_KINDS = {execution_pb2.ExecutionError.USER: "USER", execution_pb2.ExecutionError.SYSTEM: "SYSTEM"}


@dataclass(frozen=True)
class Failure:
    code: str
    message: str
    kind: str = "USER"  # USER | SYSTEM | "" (unknown), as status.errorState.kind
    recoverable: bool = True

    @property
    def is_system_retryable(self) -> bool:
        """Flyte's isSystemRetryableFailure: restarts the same attempt, counted apart from retries."""
        return self.recoverable and self.kind == "SYSTEM"

    def error_state(self) -> dict[str, str]:
        return _without_empty_strings({"code": self.code, "kind": self.kind, "message": self.message})

    def error_info(self) -> run_definition_pb2.ErrorInfo:
        return run_definition_pb2.ErrorInfo(
            message=self.message,
            code=self.code,
            kind=_ERROR_INFO_KINDS.get(self.kind, run_definition_pb2.ErrorInfo.KIND_UNSPECIFIED),
        )


class _Interrupted(Exception):
    """The resource is being deleted (or the executor stops): the attempt ends here."""


# --- the spec and the status (pure) --------------------------------------------------------------


def invalid_spec(spec: dict[str, Any]) -> tuple[str, str, str] | None:
    """(reason, kind, message) if Flyte's validateTaskAction would refuse the spec, else None."""
    missing = [name for name in REQUIRED_SPEC_FIELDS if not spec.get(name)]
    if missing:
        return INVALID_SPEC, "SYSTEM", f"required spec fields are empty: [{' '.join(missing)}]"
    try:
        template = decode_template(spec)
    except ValueError as exc:
        return INVALID_SPEC, "SYSTEM", f"taskTemplate is not a serialized TaskTemplate: {exc}"
    if not template.HasField("container"):
        return (
            PLUGIN_NOT_FOUND,
            "USER",
            f"no plugin found for task type {spec['taskType']!r}: the local executor runs container tasks only",
        )
    return None


def decode_template(spec: dict[str, Any]) -> tasks_pb2.TaskTemplate:
    try:
        return tasks_pb2.TaskTemplate.FromString(base64.b64decode(spec["taskTemplate"], validate=True))
    except (binascii.Error, DecodeError, TypeError) as exc:
        raise ValueError(str(exc)) from None


def max_attempts(template: tasks_pb2.TaskTemplate) -> int:
    return template.metadata.retries.retries + 1


def is_terminal(status: dict[str, Any]) -> bool:
    return any(
        c.get("type") in ("Succeeded", "Failed") and c.get("status") == "True" for c in status.get("conditions") or []
    )


def set_condition(
    conditions: list[dict[str, Any]], *, type: str, true: bool, reason: str, message: str, now: str, generation: int
) -> None:
    """meta.SetStatusCondition: one entry per type; the transition time moves only with the status.
    The message is required and never empty (see ``_without_empty_strings``)."""
    status = "True" if true else "False"
    message = message[:MAX_CONDITION_MESSAGE] or reason
    for condition in conditions:
        if condition.get("type") == type:
            if condition.get("status") != status:
                condition["lastTransitionTime"] = now
            condition.update(status=status, reason=reason, message=message, observedGeneration=generation)
            return
    conditions.append(
        {
            "type": type,
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": now,
            "observedGeneration": generation,
        }
    )


def apply_phase(
    status: dict[str, Any], phase: Phase, *, message: str, failure: Failure | None, now: str, generation: int
) -> None:
    """Flyte's mapPhaseToConditions, and the phaseHistory entry (deduplicated against the last)."""
    conditions = status.setdefault("conditions", [])

    def condition(type: str, true: bool, text: str) -> None:
        set_condition(
            conditions, type=type, true=true, reason=phase.reason, message=text, now=now, generation=generation
        )

    if failure is not None:
        message = failure.message.strip() or failure.code
        status["errorState"] = failure.error_state()
    message = message or phase.message
    if phase is COMPLETED:
        condition("Progressing", False, "TaskAction has completed")
        condition("Succeeded", True, message)
    elif phase is PERMANENT_FAILURE:
        condition("Progressing", False, message)
        condition("Failed", True, message)
    else:
        condition("Progressing", True, message)
    history = status.setdefault("phaseHistory", [])
    if not history or history[-1].get("phase") != phase.reason:
        history.append({"phase": phase.reason, "occurredAt": now, "message": message[:MAX_CONDITION_MESSAGE]})
    status["pluginPhase"] = phase.plugin_phase
    status["pluginPhaseVersion"] = 0


def _without_empty_strings(fields: dict[str, str]) -> dict[str, str]:
    """The local API server (1.20) reads an empty string in a custom resource as null and refuses
    it against the schema, so status never carries one: an unknown value is left out."""
    return {name: value for name, value in fields.items() if value}


def completed_time_label(status: dict[str, Any]) -> str:
    """The terminal condition's transition time (Flyte's terminalTransitionTime), minute precision."""
    for condition in status.get("conditions") or []:
        if condition.get("type") in ("Succeeded", "Failed") and condition.get("status") == "True":
            moment = condition.get("lastTransitionTime")
            if moment:
                return _parse_time(moment).strftime(COMPLETED_TIME_FORMAT)
            break
    return datetime.now(UTC).strftime(COMPLETED_TIME_FORMAT)


def should_collect(completed_time: str, *, ttl_seconds: float, now: datetime) -> bool:
    """Flyte's shouldDeleteTerminalTaskAction: a non-positive TTL collects on the next sweep."""
    if not completed_time:
        return False
    if ttl_seconds <= 0:
        return True
    return completed_time < (now - timedelta(seconds=ttl_seconds)).strftime(COMPLETED_TIME_FORMAT)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)  # metav1.Time has second precision


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


# --- where an attempt reads and writes, and what it runs -------------------------------------------


@dataclass(frozen=True)
class AttemptPaths:
    """Flyte's task execution context for one attempt (task_exec_context.go)."""

    input_prefix: str
    output_prefix: str
    previous_checkpoint_prefix: str  # "" on the first attempt

    @classmethod
    def of(cls, *, namespace: str, spec: dict[str, Any], attempt: int) -> AttemptPaths:
        def output_prefix(number: int) -> str:
            return action_output_path(
                namespace=namespace,
                run=spec["runName"],
                action=spec["actionName"],
                run_output_base=spec["runOutputBase"],
                attempt=number,
            )

        input_prefix = spec["inputUri"].rstrip("/").removesuffix("/inputs.pb")
        previous = _checkpoint_prefix(output_prefix(attempt - 1)) if attempt >= 2 else ""
        return cls(input_prefix=input_prefix, output_prefix=output_prefix(attempt), previous_checkpoint_prefix=previous)

    @property
    def input_file(self) -> str:
        return f"{self.input_prefix}/inputs.pb"

    @property
    def raw_output_prefix(self) -> str:
        return self.output_prefix  # ioutils.NewRawOutputPaths(ctx, outputPrefix): the prefix itself

    @property
    def checkpoint_prefix(self) -> str:
        return _checkpoint_prefix(self.raw_output_prefix)

    @property
    def error_uri(self) -> str:
        return f"{self.output_prefix}/error.pb"

    def output_references(self) -> task_common_pb2.OutputReferences:
        return task_common_pb2.OutputReferences(
            output_uri=f"{self.output_prefix}/outputs.pb", report_uri=f"{self.output_prefix}/report.html"
        )


def _checkpoint_prefix(raw_output_prefix: str) -> str:
    return f"{raw_output_prefix}/_flytecheckpoints"  # ioutils.ConstructCheckpointPath


def _template_variable(name: str) -> re.Pattern[str]:
    return re.compile(r"(?i){{\s*[\.$]" + name + r"\s*}}")  # Flyte's template.go: case-insensitive


_TEMPLATE_VARIABLES = {
    name: _template_variable(name)
    for name in (
        "Input", "InputPrefix", "OutputPrefix", "RawOutputDataPrefix", "PrevCheckpointPrefix",
        "CheckpointOutputPrefix", "PerRetryUniqueKey", "Namespace", "RunName", "ActionName",
    )
}  # fmt: skip


def render(arguments: list[str], values: dict[str, str]) -> list[str]:
    """Flyte's template.Render over command and args (``{{.runName}}``/``{{.actionName}}`` too,
    which Flyte leaves for the SDK to take from the environment)."""
    rendered = []
    for argument in arguments:
        for name, pattern in _TEMPLATE_VARIABLES.items():
            argument = pattern.sub(_verbatim(values[name]), argument)
        rendered.append(argument)
    return rendered


def _verbatim(value: str) -> Callable[[re.Match[str]], str]:
    """A replacement for ``re.sub`` that inserts ``value`` as it is (no escapes processed)."""
    return lambda _match: value


def template_values(*, namespace: str, spec: dict[str, Any], paths: AttemptPaths, unique_key: str) -> dict[str, str]:
    return {
        "Input": paths.input_file,
        "InputPrefix": paths.input_prefix,
        "OutputPrefix": paths.output_prefix,
        "RawOutputDataPrefix": paths.raw_output_prefix,
        # Flyte renders a missing previous checkpoint as `""` (the SDK strips the quotes).
        "PrevCheckpointPrefix": paths.previous_checkpoint_prefix or '""',
        "CheckpointOutputPrefix": paths.checkpoint_prefix,
        "PerRetryUniqueKey": re.sub(r"[^a-zA-Z0-9_]+", "_", re.sub(r"^[^a-zA-Z_]+", "a", unique_key)),
        "Namespace": namespace,
        "RunName": spec["runName"],
        "ActionName": spec["actionName"],
    }


def command_line(template: tasks_pb2.TaskTemplate, values: dict[str, str], bin_dir: Path) -> list[str]:
    argv = render([*template.container.command, *template.container.args], values)
    if argv and os.sep not in argv[0]:
        candidate = bin_dir / argv[0]
        if candidate.is_file() and os.access(candidate, os.X_OK):
            argv[0] = str(candidate)
    return argv


def task_environment_of(
    *,
    spec: dict[str, Any],
    template: tasks_pb2.TaskTemplate,
    attempt: int,
    pod_name: str,
    platform: dict[str, str],
    bin_dir: Path,
) -> dict[str, str]:
    """What a Flyte task pod's container gets, in the order Kubernetes applies it (later wins):
    the template's env, the execution variables (flytek8s GetExecutionEnvVars), the executor's
    (task_exec_metadata.go: ACTION_NAME, RUN_NAME, _U_RUN_BASE, _U_ORG_NAME, then the run's env
    vars without overriding those), and the platform's defaults (``task_environment``)."""
    environment = dict(os.environ)
    environment["PATH"] = os.pathsep.join(filter(None, [str(bin_dir), environment.get("PATH", "")]))
    environment.update({pair.key: pair.value for pair in template.container.env})
    task_id = template.id
    environment.update(
        {
            "FLYTE_INTERNAL_EXECUTION_ID": spec["runName"],
            "FLYTE_INTERNAL_EXECUTION_PROJECT": spec["project"],
            "FLYTE_INTERNAL_EXECUTION_DOMAIN": spec["domain"],
            "_F_PN": pod_name,
            "FLYTE_ATTEMPT_NUMBER": str(attempt - 1),  # Flyte's retry attempt, 0-based
            "FLYTE_INTERNAL_TASK_PROJECT": task_id.project,
            "FLYTE_INTERNAL_TASK_DOMAIN": task_id.domain,
            "FLYTE_INTERNAL_TASK_NAME": task_id.name,
            "FLYTE_INTERNAL_TASK_VERSION": task_id.version,
            "FLYTE_INTERNAL_PROJECT": task_id.project,
            "FLYTE_INTERNAL_DOMAIN": task_id.domain,
            "FLYTE_INTERNAL_NAME": task_id.name,
            "FLYTE_INTERNAL_VERSION": task_id.version,
        }
    )
    executor = {
        "ACTION_NAME": spec["actionName"],
        "RUN_NAME": spec["runName"],
        "_U_RUN_BASE": spec["runOutputBase"],
        "_U_ORG_NAME": ORG_NAME,
    }
    for name, value in (spec.get("envVars") or {}).items():
        executor.setdefault(name, str(value))
    environment.update(executor)
    environment.update(platform)
    return environment


# --- outcome of a process -----------------------------------------------------------------------


def read_object(s3: Any, uri: str) -> bytes | None:
    """The object at an ``s3://`` (or ``file://``) URI; None if there is none."""
    scheme, _, rest = uri.partition("://")
    if scheme == "file":
        path = Path("/" + rest.lstrip("/"))
        return path.read_bytes() if path.exists() else None
    if scheme != "s3":
        raise ValueError(f"unsupported storage scheme in {uri!r}")
    from botocore.exceptions import ClientError

    bucket, _, key = rest.partition("/")
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return None
        raise


def failure_from_error_document(document: execution_pb2.ErrorDocument, uri: str) -> Failure:
    """Flyte's RemoteFileOutputReader.ReadError."""
    if not document.HasField("error"):
        return Failure("ErrorFileBadFormat", f"error not formatted correctly, nil error @path [{uri}]", kind="SYSTEM")
    error = document.error
    return Failure(
        code=error.code,
        message=error.message,
        kind=_ORIGIN_KINDS.get(error.origin, ""),
        recoverable=error.kind == execution_pb2.ContainerError.RECOVERABLE,
    )


def exit_failure(returncode: int, *, container: str, log_file: Path) -> Failure:
    """A process that failed without an error document: how Flyte reads a failed primary container."""
    if returncode == -signal.SIGKILL:
        return Failure(KILLED_CODE, f"[{container}] was killed (SIGKILL)", kind="SYSTEM")
    exit_code = 128 - returncode if returncode < 0 else returncode  # a signal n shows as 128 + n in a container
    return Failure(
        EXIT_FAILURE_CODE,
        f"\r\n[{container}] terminated with exit code ({exit_code}). Reason [{EXIT_FAILURE_CODE}]. Message: \n{log_tail(log_file)}.",
    )


def log_tail(path: Path) -> str:
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - LOG_TAIL_BYTES))
            data = log.read()
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-LOG_TAIL_LINES:])


# --- the Kubernetes and events sides ------------------------------------------------------------


class TaskActions:
    """The calls the executor makes on TaskActions: status, finalizer, labels, list, watch, delete."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        from kubernetes.client import CustomObjectsApi

        self.namespace = namespace
        self.api = CustomObjectsApi(api_client)

    def get(self, name: str, uid: str) -> dict[str, Any] | None:
        """The resource, or None if it is gone (or the name now belongs to another resource)."""
        from kubernetes.client.exceptions import ApiException

        try:
            resource = self.api.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name, _request_timeout=API_TIMEOUT_SECONDS
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        resource = cast("dict[str, Any]", resource)  # the decoded JSON object, typed ``object`` by the client
        return resource if resource["metadata"].get("uid") == uid else None

    def patch_status(self, name: str, status: dict[str, Any]) -> bool:
        return self._patch(self.api.patch_namespaced_custom_object_status, name, {"status": status})

    def patch_labels(self, name: str, labels: dict[str, str]) -> bool:
        return self._patch(self.api.patch_namespaced_custom_object, name, {"metadata": {"labels": labels}})

    def set_finalizer(self, name: str, uid: str, *, present: bool) -> bool:
        """Add or remove the executor's finalizer (read, then write guarded by resourceVersion, as
        others may hold finalizers too). False if the resource is gone."""
        from kubernetes.client.exceptions import ApiException

        for _ in range(API_RETRIES):
            resource = self.get(name, uid)
            if resource is None:
                return False
            current = list(resource["metadata"].get("finalizers") or [])
            wanted = [f for f in current if f != FINALIZER] + ([FINALIZER] if present else [])
            if sorted(wanted) == sorted(current):
                return True
            patch = {"metadata": {"finalizers": wanted, "resourceVersion": resource["metadata"]["resourceVersion"]}}
            try:
                self.api.patch_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, name, patch, _request_timeout=API_TIMEOUT_SECONDS
                )
                return True
            except ApiException as exc:
                if exc.status == 404:
                    return False
                if exc.status != 409:
                    raise
        raise RuntimeError(f"finalizer of {name} kept conflicting")

    def list_page(self, *, label_selector: str = "", token: str | None = None) -> dict[str, Any]:
        page = self.api.list_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            label_selector=label_selector,
            limit=500,
            _continue=token,
            _request_timeout=API_TIMEOUT_SECONDS,
        )
        return cast("dict[str, Any]", page)  # the decoded JSON object, typed ``object`` by the client

    def delete(self, name: str, uid: str) -> bool:
        """Delete with background propagation, only if the name still holds ``uid``."""
        from kubernetes.client import V1DeleteOptions, V1Preconditions
        from kubernetes.client.exceptions import ApiException

        try:
            self.api.delete_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                name,
                body=V1DeleteOptions(propagation_policy="Background", preconditions=V1Preconditions(uid=uid)),
                _request_timeout=API_TIMEOUT_SECONDS,
            )
        except ApiException as exc:
            if exc.status in (404, 409):
                return False
            raise
        return True

    def _patch(self, call: Any, name: str, body: dict[str, Any]) -> bool:
        from kubernetes.client.exceptions import ApiException

        for attempt in range(API_RETRIES):
            try:
                call(GROUP, VERSION, self.namespace, PLURAL, name, body, _request_timeout=API_TIMEOUT_SECONDS)
                return True
            except ApiException as exc:
                if exc.status == 404:
                    return False
                if exc.status in (400, 422) or attempt == API_RETRIES - 1:
                    raise
            except OSError:
                if attempt == API_RETRIES - 1:
                    raise
            time.sleep(API_RETRY_SECONDS * 2**attempt)
        return False


class EventSink:
    """Posts ActionEvents to the control plane's EventsProxyService/Record (Connect, binary proto).
    Failures are logged, never raised: an event lost here must not stop the task."""

    def __init__(self, endpoint: str, *, authorization: Callable[[], str] | None = None) -> None:
        self.url = endpoint.rstrip("/") + RECORD_PATH if endpoint else ""
        # The Authorization header's value (a data-plane bearer token), asked for per event.
        self._authorization = authorization

    def record(self, event: run_definition_pb2.ActionEvent) -> bool:
        if not self.url:
            return False
        body = events_proxy_service_pb2.RecordRequest(events=[event]).SerializeToString()
        headers = {"Content-Type": "application/proto", "Connect-Protocol-Version": "1"}
        if self._authorization is not None:
            headers["Authorization"] = self._authorization()
        request = urllib.request.Request(self.url, data=body, method="POST", headers=headers)
        for attempt in range(EVENT_POST_ATTEMPTS):
            try:
                with urllib.request.urlopen(request, timeout=EVENT_TIMEOUT_SECONDS) as response:
                    response.read()
                return True
            except urllib.error.HTTPError as exc:
                if exc.code < 500 or exc.code == 501:  # the request itself is refused: retrying cannot help
                    logger.warning("event refused by %s: %s %s", self.url, exc.code, exc.read()[:500])
                    return False
                error: Exception = exc
            except (urllib.error.URLError, OSError) as exc:
                error = exc
            time.sleep(EVENT_RETRY_SECONDS * 2**attempt)
        logger.warning("event for %s/%s not recorded: %s", event.id.run.name, event.id.name, error)
        return False


# --- one resource --------------------------------------------------------------------------------


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
        self.process: subprocess.Popen | None = None  # the running attempt's process, if any
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
            with log_file.open("ab") as log:
                process = subprocess.Popen(
                    argv, cwd=scratch, env=environment, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: an abort kills everything it started
                )  # fmt: skip
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
            _kill_group(process, signal.SIGKILL)  # whatever it left behind ends with it, as in a pod
            self.process = None
            shutil.rmtree(scratch, ignore_errors=True)
            if shipper is not None:
                shipper.stop()  # its last lines are shipped before the attempt's end is reported
            self._log_context = (
                attempt,
                pod_log_context(pod=pod_name, namespace=namespace, started=started, ended=_now()),
            )
        return self._outcome(returncode, paths, container=pod_name, log_file=log_file)

    def _wait(self, process: subprocess.Popen) -> int:
        while True:
            try:
                return process.wait(timeout=PROCESS_POLL_SECONDS)
            except subprocess.TimeoutExpired:
                pass
            if self._deleted.is_set() or self._context.stopping.is_set():
                _terminate(process)
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


def _kill_group(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _terminate(process: subprocess.Popen) -> None:
    _kill_group(process, signal.SIGTERM)
    try:
        process.wait(timeout=ABORT_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        _kill_group(process, signal.SIGKILL)
        process.wait()


# --- the executor -----------------------------------------------------------------------------


class LocalExecutor:
    """Watches the TaskActions of one namespace and runs them; see the module docstring."""

    def __init__(
        self,
        *,
        kubeconfig: str | os.PathLike[str],
        namespace: str,
        events_endpoint: str,
        work_dir: str | os.PathLike[str],
        task_environment: dict[str, str] | None = None,
        ttl_seconds: float = 3600.0,
        gc_interval_seconds: float = 60.0,
        python_bin_dir: str | os.PathLike[str] | None = None,
        events_authorization: Callable[[], str] | None = None,
        log_group: str | None = None,
    ) -> None:
        """``log_group``: the CloudWatch Logs group the processes' output is shipped to (none: kept
        in the work folder only)."""
        self.kubeconfig = Path(kubeconfig)
        self.namespace = namespace
        self.events_endpoint = events_endpoint
        self.events_authorization = events_authorization  # the Authorization header of its events
        self.log_group = log_group
        self.work_dir = Path(work_dir)
        self.task_environment = dict(task_environment or {})
        self.ttl_seconds = ttl_seconds
        self.gc_interval_seconds = gc_interval_seconds
        self.python_bin_dir = Path(python_bin_dir) if python_bin_dir else Path(sys.executable).parent
        self._stopping = threading.Event()
        self._runners: dict[str, _ActionRunner] = {}  # by uid; finished ones stay until the resource goes
        self._runners_lock = threading.Lock()
        self._skipped: set[str] = set()  # condition actions, logged once
        self._threads: list[threading.Thread] = []
        self._api_client: Any = None
        self._context: _Context | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> LocalExecutor:
        import boto3
        from kubernetes import config

        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._api_client = config.new_client_from_config(config_file=str(self.kubeconfig))
        self._context = _Context(
            actions=TaskActions(self._api_client, self.namespace),
            events=EventSink(self.events_endpoint, authorization=self.events_authorization),
            s3=boto3.client("s3"),
            work_dir=self.work_dir,
            bin_dir=self.python_bin_dir,
            task_environment=self.task_environment,
            stopping=self._stopping,
            logs=LogSink(log_group=self.log_group, client=boto3.client("logs")) if self.log_group else None,
        )
        for name, target in (("executor-watch", self._watch_forever), ("executor-gc", self._collect_forever)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        logger.info("local executor watching TaskActions in %s (work dir %s)", self.namespace, self.work_dir)
        return self

    def running_processes(self, run: str) -> list[int]:
        """The pids of the task processes still alive for a run's actions."""
        with self._runners_lock:
            runners = list(self._runners.values())
        return [
            runner.process.pid
            for runner in runners
            if runner.process is not None
            and runner.process.poll() is None
            and runner._labels.get("flyte.org/run") == run
        ]

    def stop(self) -> None:
        """Kill running task processes and stop watching; resources keep their status (a restarted
        executor runs an unfinished attempt again)."""
        self._stopping.set()
        with self._runners_lock:
            runners = list(self._runners.values())
        for runner in runners:
            runner.thread.join(timeout=ABORT_GRACE_SECONDS + 2)
        for thread in self._threads:
            thread.join(timeout=1)  # the watch notices within WATCH_TIMEOUT_SECONDS; it is a daemon
        self._threads.clear()

    def __enter__(self) -> LocalExecutor:
        return self.start()

    @property
    def _started(self) -> _Context:
        assert self._context is not None, "the executor is not started"
        return self._context

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def log_file(self, *, run: str, action: str, attempt: int) -> Path:
        """Where the stdout and stderr of an attempt are captured."""
        return self.work_dir / taskaction_name(run, action) / str(attempt) / LOG_FILE

    # --- garbage collection -----------------------------------------------------------------

    def collect_garbage(self) -> int:
        """Delete terminated TaskActions older than the TTL (Flyte's GarbageCollector.collect)."""
        actions = self._started.actions
        now = datetime.now(UTC)
        deleted, token = 0, None
        while True:
            page = actions.list_page(
                label_selector=f"{LABEL_TERMINATION_STATUS}={TERMINATED},{LABEL_COMPLETED_TIME}", token=token
            )
            for item in page.get("items") or []:
                metadata = item["metadata"]
                completed = (metadata.get("labels") or {}).get(LABEL_COMPLETED_TIME, "")
                if should_collect(completed, ttl_seconds=self.ttl_seconds, now=now) and not metadata.get(
                    "deletionTimestamp"
                ):
                    deleted += actions.delete(metadata["name"], metadata["uid"])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
        if deleted:
            logger.info("garbage collector deleted %d terminated TaskActions", deleted)
        return deleted

    def _collect_forever(self) -> None:
        while not self._stopping.is_set():  # a first sweep at once, as Flyte's does on start
            try:
                self.collect_garbage()
            except Exception:
                logger.exception("TaskAction garbage collection failed")
            self._stopping.wait(self.gc_interval_seconds)

    # --- watching ---------------------------------------------------------------------------

    def _watch_forever(self) -> None:
        from kubernetes.client.exceptions import ApiException

        resource_version: str | None = None
        while not self._stopping.is_set():
            try:
                if resource_version is None:
                    resource_version = self._relist()
                resource_version = self._watch(resource_version)
            except ApiException as exc:
                resource_version = None  # 410 Gone, or anything else: relist, nothing is missed
                if exc.status != 410:
                    logger.warning("watching TaskActions failed: %s %s; relisting", exc.status, exc.reason)
                    self._stopping.wait(WATCH_RETRY_SECONDS)
            except Exception:
                resource_version = None
                logger.exception("watching TaskActions failed; relisting")
                self._stopping.wait(WATCH_RETRY_SECONDS)

    def _relist(self) -> str:
        actions = self._started.actions
        seen: set[str] = set()
        token = None
        while True:
            page = actions.list_page(token=token)
            for item in page.get("items") or []:
                seen.add(item["metadata"]["uid"])
                self._dispatch("ADDED", item)
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
        with self._runners_lock:
            vanished = [uid for uid in self._runners if uid not in seen]
        for uid in vanished:  # deleted while nobody watched
            self._dispatch("DELETED", {"metadata": {"uid": uid}})
        return str((page.get("metadata") or {}).get("resourceVersion", ""))

    def _watch(self, resource_version: str) -> str:
        from kubernetes.watch import Watch

        watch = Watch()
        try:
            for event in watch.stream(
                self._started.actions.api.list_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=WATCH_TIMEOUT_SECONDS,
                _request_timeout=(API_TIMEOUT_SECONDS, WATCH_TIMEOUT_SECONDS + API_TIMEOUT_SECONDS),
            ):
                resource = event["raw_object"]
                resource_version = str(resource.get("metadata", {}).get("resourceVersion") or resource_version)
                if event["type"] != "BOOKMARK":
                    self._dispatch(event["type"], resource)
                if self._stopping.is_set():
                    break
        finally:
            watch.stop()
        return resource_version

    def _dispatch(self, kind: str, resource: dict[str, Any]) -> None:
        """Called from the watch thread only."""
        metadata = resource.get("metadata") or {}
        uid = metadata.get("uid")
        if not uid:
            return
        if kind == "DELETED":
            with self._runners_lock:
                runner = self._runners.pop(uid, None)
            self._skipped.discard(uid)
            if runner is not None:
                runner.request_deletion()  # a running one kills its process and records the abort
            return
        if (resource.get("spec") or {}).get("actionType") == CONDITION_ACTION:
            if uid not in self._skipped:
                self._skipped.add(uid)
                logger.info("%s is a condition action: not the local executor's to run", metadata.get("name"))
            return
        with self._runners_lock:
            runner = self._runners.get(uid)
            if runner is None:
                if self._stopping.is_set():
                    return
                runner = self._runners[uid] = _ActionRunner(self._started, resource)
                if metadata.get("deletionTimestamp"):
                    runner.request_deletion()
                runner.thread.start()
                return
        if metadata.get("deletionTimestamp") and not runner.request_deletion():
            try:
                runner.finalize_deletion()
            except Exception:
                logger.exception("finalizing the deletion of %s failed", runner.name)
