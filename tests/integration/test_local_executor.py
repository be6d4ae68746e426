"""The local executor against the real control plane (Flyte's CRD, the garbage collector) and moto.

TaskActions are written by hand, as reconcile builds them, with task templates that run small
``python -c`` programs. Each module executor watches a namespace of its own, so resources other
tests leave in the shared namespace are never run. ActionEvents go to a tiny HTTP sink here, the
only stand-in: Kubernetes, S3 and the processes are real. The sink can refuse Record calls (401,
503) for a while, as an events endpoint whose token is missing or whose API is down.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from flyteidl2.common import phase_pb2
from flyteidl2.core import tasks_pb2
from flyteidl2.workflow import events_proxy_service_pb2, run_definition_pb2

from local_stack.aws import aws_environment
from local_stack.executor import FINALIZER, RECORD_PATH, LocalExecutor
from local_stack.executor import EventSink as ExecutorEventSink
from runplane.flyte.output_paths import action_output_path
from tests.builders import resource_name
from tests.conftest import taskaction_getter, unique_name, wait_for

pytestmark = pytest.mark.integration

PROJECT = "flytesnacks"
DOMAIN = "development"
Phase = phase_pb2.ActionPhase


# --- the event sink -----------------------------------------------------------------------------


class EventSink:
    """Decodes RecordRequest bodies and keeps their events (and each call's size). While ``refusing``
    holds an HTTP status, every call is answered with it and nothing is kept."""

    def __init__(self) -> None:
        self.events: list[run_definition_pb2.ActionEvent] = []
        self.batches: list[int] = []  # the number of events of each accepted call
        self.refused = 0  # calls answered with ``refusing``
        self.refusing: int | None = None
        self.authorizations: set[str | None] = set()  # what the callers sent as Authorization
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != RECORD_PATH or self.headers.get("Content-Type") != "application/proto":
                    self.send_response(404)
                    self.end_headers()
                    return
                request = events_proxy_service_pb2.RecordRequest.FromString(body)
                with sink._lock:
                    sink.authorizations.add(self.headers.get("Authorization"))
                    refusing = sink.refusing
                    if refusing is None:
                        sink.events.extend(request.events)
                        sink.batches.append(len(request.events))
                    else:
                        sink.refused += 1
                if refusing is not None:
                    error = b'{"code": "unauthenticated", "message": "refused by the test"}'
                    self.send_response(refusing)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    self.wfile.write(error)
                    return
                reply = events_proxy_service_pb2.RecordResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/proto")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def of(self, run: str, action: str = "a0") -> list[run_definition_pb2.ActionEvent]:
        with self._lock:
            return [e for e in self.events if e.id.run.name == run and e.id.name == action]

    def phases(self, run: str, action: str = "a0") -> list[tuple[int, int]]:
        return [(e.attempt, e.phase) for e in self.of(run, action)]

    def close(self) -> None:
        self._server.shutdown()


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sink() -> Iterator[EventSink]:
    recorder = EventSink()
    yield recorder
    recorder.close()


def _own_namespace(kube, custom_objects) -> Iterator[str]:
    """A namespace for one executor; on the way out, what is left loses the finalizer and goes."""
    from kubernetes import client, config

    name = f"ex-{uuid.uuid4().hex[:10]}"
    api_client = config.new_client_from_config(config_file=str(kube.endpoints.kubeconfig))
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    for item in custom_objects.list_namespaced_custom_object("flyte.org", "v1", name, "taskactions")["items"]:
        if item["metadata"].get("finalizers"):
            custom_objects.patch_namespaced_custom_object(
                "flyte.org", "v1", name, "taskactions", item["metadata"]["name"], {"metadata": {"finalizers": []}}
            )
    core.delete_namespace(name)
    api_client.close()


@pytest.fixture(scope="module")
def namespace(kube, custom_objects) -> Iterator[str]:
    yield from _own_namespace(kube, custom_objects)


def _start_executor(kube, namespace: str, sink: EventSink, **options: Any) -> tuple[LocalExecutor, Path]:
    work_dir = Path(tempfile.mkdtemp(prefix="executor-"))
    executor = LocalExecutor(
        kubeconfig=kube.endpoints.kubeconfig,
        namespace=namespace,
        events_endpoint=sink.endpoint,
        work_dir=work_dir,
        # what the platform gives a task pod (the bucket's endpoint and credentials), and a marker
        task_environment={**aws_environment(os.environ["AWS_ENDPOINT_URL"]), "FROM_PLATFORM": "platform-value"},
        **options,
    )
    return executor.start(), work_dir


@pytest.fixture(scope="module")
def executor(kube, aws, namespace, sink) -> Iterator[LocalExecutor]:
    running, work_dir = _start_executor(kube, namespace, sink, ttl_seconds=3600, gc_interval_seconds=60)
    yield running
    running.stop()
    shutil.rmtree(work_dir, ignore_errors=True)


# --- TaskActions and what to read back -----------------------------------------------------------


def template(*args: str, retries: int = 0, container: bool = True) -> str:
    task = tasks_pb2.TaskTemplate(type="python-task")
    task.id.project, task.id.domain, task.id.name, task.id.version = PROJECT, DOMAIN, "tests.task", "v1"
    task.metadata.retries.retries = retries
    if container:
        task.container.image = "python:3.12"  # ignored: no container runtime
        task.container.args.extend(args)
    return base64.b64encode(task.SerializeToString()).decode()


def taskaction(
    namespace: str,
    bucket: str,
    run: str,
    *args: str,
    action: str = "a0",
    retries: int = 0,
    owner: dict | None = None,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "flyte.org/v1",
        "kind": "TaskAction",
        "metadata": {
            "name": resource_name(run, action),
            "namespace": namespace,
            "labels": {
                "flyte.org/project": PROJECT,
                "flyte.org/domain": DOMAIN,
                "flyte.org/run": run,
                "flyte.org/action": action,
                "flyte.org/action-type": "task",
                "flyte.org/is-root": "false" if owner else "true",
            },
        },
        "spec": {
            "project": PROJECT,
            "domain": DOMAIN,
            "runName": run,
            "actionName": action,
            "actionType": "task",
            "taskType": "python-task",
            "taskTemplate": template(*args, retries=retries),
            "inputUri": f"s3://{bucket}/{PROJECT}/{DOMAIN}/{run}/inputs/0123abcd",
            "runOutputBase": f"s3://{bucket}/{PROJECT}/{DOMAIN}/{run}/",
            **spec,
        },
    }
    if owner is not None:
        body["metadata"]["ownerReferences"] = [
            {
                "apiVersion": "flyte.org/v1",
                "kind": "TaskAction",
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
                "blockOwnerDeletion": True,
            }
        ]
        body["spec"]["parentActionName"] = owner["spec"]["actionName"]
    return body


_PROGRESSING = {"Queued": "QUEUED", "Initializing": "INITIALIZING", "Executing": "RUNNING", "Paused": "PAUSED"}


def phase_of(resource: dict[str, Any]) -> str:
    """How the status mirror reads a TaskAction's phase: the first matching condition, in order."""
    for condition in (resource.get("status") or {}).get("conditions") or []:
        if condition["status"] != "True":
            continue
        if condition["type"] == "Succeeded":
            return "SUCCEEDED"
        if condition["type"] == "Failed":
            return "TIMED_OUT" if condition["reason"] == "TimedOut" else "FAILED"
        if condition["type"] == "Progressing" and condition["reason"] in _PROGRESSING:
            return _PROGRESSING[condition["reason"]]
    return "UNSPECIFIED"


class PhaseWatcher:
    """Every (phase, attempts) one resource passes through, as a watch of the API server sees it."""

    def __init__(self, custom_objects, namespace: str, name: str) -> None:
        self.seen: list[tuple[str, int]] = []
        self._args = ("flyte.org", "v1", namespace, "taskactions")
        self._selector = f"metadata.name={name}"
        listed = custom_objects.list_namespaced_custom_object(*self._args, field_selector=self._selector)
        self._resource_version = listed["metadata"]["resourceVersion"]
        self._api = custom_objects
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def join(self) -> None:
        self._thread.join(timeout=5)

    def _run(self) -> None:
        from kubernetes.watch import Watch

        for event in Watch().stream(
            self._api.list_namespaced_custom_object,
            *self._args,
            field_selector=self._selector,
            resource_version=self._resource_version,
            timeout_seconds=30,
        ):
            resource = event["raw_object"]
            if not (resource.get("status") or {}).get("conditions"):
                continue
            entry = (phase_of(resource), resource["status"].get("attempts", 0))
            if not self.seen or self.seen[-1] != entry:
                self.seen.append(entry)
            if event["type"] == "DELETED" or entry[0] in ("SUCCEEDED", "FAILED"):
                return


def create(custom_objects, body: dict[str, Any]) -> dict[str, Any]:
    return custom_objects.create_namespaced_custom_object(
        "flyte.org", "v1", body["metadata"]["namespace"], "taskactions", body
    )


def wait_for_phase(get, name: str, phases: tuple[str, ...], timeout: float = 20) -> dict[str, Any]:
    return wait_for(
        lambda: (r := get(name)) and phase_of(r) in phases and r, timeout=timeout, what=f"{name} in {phases}"
    )


def output_prefix(namespace: str, bucket: str, run: str, action: str = "a0", attempt: int = 1) -> str:
    return action_output_path(
        namespace=namespace,
        project=PROJECT,
        domain=DOMAIN,
        run=run,
        action=action,
        run_output_base=f"s3://{bucket}/{PROJECT}/{DOMAIN}/{run}/",
        attempt=attempt,
    )


def conditions_by_type(resource: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in resource["status"]["conditions"]}


# Programs the tasks run. argv[1] is always the attempt's output prefix.
WRITE_OUTPUTS = """
import os, sys, boto3
bucket, key = sys.argv[1][len("s3://"):].split("/", 1)
boto3.client("s3").put_object(Bucket=bucket, Key=key + "/outputs.pb", Body=b"")
print("args", *sys.argv[2:])
for name in ("ACTION_NAME", "RUN_NAME", "_U_RUN_BASE", "_U_ORG_NAME", "FLYTE_INTERNAL_EXECUTION_PROJECT",
             "FLYTE_INTERNAL_EXECUTION_DOMAIN", "FLYTE_ATTEMPT_NUMBER", "FROM_PLATFORM", "FROM_RUN",
             "HOST_ONLY_VARIABLE"):
    print(name, os.environ.get(name))
print("environment", *sorted(os.environ))
"""

RECOVERABLE_ERROR = """
import os, sys, boto3
from flyteidl2.core import execution_pb2
bucket, key = sys.argv[1][len("s3://"):].split("/", 1)
error = execution_pb2.ContainerError(code="FlakyError", message="attempt " + os.environ["FLYTE_ATTEMPT_NUMBER"],
    kind=execution_pb2.ContainerError.RECOVERABLE, origin=execution_pb2.ExecutionError.USER)
document = execution_pb2.ErrorDocument(error=error)
boto3.client("s3").put_object(Bucket=bucket, Key=key + "/error.pb", Body=document.SerializeToString())
print("previous checkpoint", sys.argv[2])
"""

SLEEP = "import os, time; print(os.getpid(), flush=True); time.sleep(60)"


# --- tests ----------------------------------------------------------------------------------------


def test_a_task_runs_to_success(executor, namespace, sink, aws, custom_objects):
    run = unique_name("ok")
    name = resource_name(run)
    watcher = PhaseWatcher(custom_objects, namespace, name)
    body = taskaction(
        namespace, aws.bucket, run,
        "python", "-c", WRITE_OUTPUTS, "{{.outputPrefix}}", "{{.input}}", "{{ .RawOutputDataPrefix }}",
        "{{.checkpointOutputPrefix}}", "{{.prevCheckpointPrefix}}", "{{.runName}}", "{{.actionName}}",
        envVars={"FROM_RUN": "run-value", "ACTION_NAME": "cannot-override"},
    )  # fmt: skip
    os.environ["HOST_ONLY_VARIABLE"] = "leaked"  # the executor's environment, when the task starts
    try:
        create(custom_objects, body)
        resource = wait_for_phase(
            taskaction_getter(custom_objects, namespace), name, ("RUNNING", "SUCCEEDED", "FAILED")
        )
    finally:
        del os.environ["HOST_ONLY_VARIABLE"]

    resource = wait_for_phase(taskaction_getter(custom_objects, namespace), name, ("SUCCEEDED", "FAILED"))
    assert phase_of(resource) == "SUCCEEDED", resource["status"]
    watcher.join()
    assert watcher.seen == [("QUEUED", 1), ("INITIALIZING", 1), ("RUNNING", 1), ("SUCCEEDED", 1)]

    status = resource["status"]
    assert conditions_by_type(resource) == {"Progressing": ("False", "Completed"), "Succeeded": ("True", "Completed")}
    assert status["attempts"] == 1
    assert [entry["phase"] for entry in status["phaseHistory"]] == ["Queued", "Initializing", "Executing", "Completed"]
    assert status["pluginPhase"] == "PhaseSuccess"
    assert "errorState" not in status
    assert resource["metadata"]["finalizers"] == [FINALIZER]
    labels = wait_for(
        lambda: (
            (r := taskaction_getter(custom_objects, namespace)(name))["metadata"]["labels"].get(
                "flyte.org/completed-time"
            )
            and r
        )
    )["metadata"]["labels"]
    assert labels["flyte.org/termination-status"] == "terminated"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d\.\d\d-\d\d", labels["flyte.org/completed-time"])

    prefix = output_prefix(namespace, aws.bucket, run)
    key = prefix[len(f"s3://{aws.bucket}/") :]
    boto3.client("s3").head_object(Bucket=aws.bucket, Key=f"{key}/outputs.pb")  # {{.outputPrefix}} was the attempt's

    events = sink.of(run)
    # buildActionEvent: the plugin's phase version (0), no start or end time
    assert [(e.attempt, e.phase, e.version) for e in events] == [
        (1, Phase.ACTION_PHASE_QUEUED, 0),
        (1, Phase.ACTION_PHASE_INITIALIZING, 0),
        (1, Phase.ACTION_PHASE_RUNNING, 0),
        (1, Phase.ACTION_PHASE_SUCCEEDED, 0),
    ]
    done = events[-1]
    assert (done.id.run.project, done.id.run.domain, done.id.run.name, done.id.name) == (PROJECT, DOMAIN, run, "a0")
    assert done.outputs.output_uri == f"{prefix}/outputs.pb"
    assert done.outputs.report_uri == f"{prefix}/report.html"
    assert done.HasField("reported_time") and done.HasField("updated_time") and not done.HasField("error_info")
    assert not any(e.HasField("start_time") or e.HasField("end_time") for e in events)
    assert sink.authorizations == {None}  # the executor has no credentials: the relay adds them

    log = executor.log_file(project=PROJECT, domain=DOMAIN, run=run, action="a0", attempt=1).read_text()
    inputs = f"s3://{aws.bucket}/{PROJECT}/{DOMAIN}/{run}/inputs/0123abcd/inputs.pb"
    # Flyte's renderer knows no {{.runName}}/{{.actionName}}: they reach the task as they are
    assert f'args {inputs} {prefix} {prefix}/_flytecheckpoints "" {{{{.runName}}}} {{{{.actionName}}}}' in log
    assert "HOST_ONLY_VARIABLE None" in log.splitlines()  # nothing of the host but PATH and HOME
    (names,) = [line.split()[1:] for line in log.splitlines() if line.startswith("environment ")]
    flyte_given = {"ACTION_NAME", "RUN_NAME", "FROM_PLATFORM", "FROM_RUN", *aws_environment("")}
    others = {n for n in names if not n.startswith(("FLYTE_", "_U_", "_F_")) and n not in flyte_given}
    # (LC_CTYPE: Python sets it itself in a C locale, PEP 538)
    assert others <= {"PATH", "HOME", "HOSTNAME", "LC_CTYPE"}, others
    for expected in (
        "ACTION_NAME a0",
        f"RUN_NAME {run}",
        f"_U_RUN_BASE s3://{aws.bucket}/{PROJECT}/{DOMAIN}/{run}/",
        "_U_ORG_NAME local",
        f"FLYTE_INTERNAL_EXECUTION_PROJECT {PROJECT}",
        f"FLYTE_INTERNAL_EXECUTION_DOMAIN {DOMAIN}",
        "FLYTE_ATTEMPT_NUMBER 0",
        "FROM_PLATFORM platform-value",
        "FROM_RUN run-value",
    ):
        assert expected in log.splitlines(), (expected, log)


def test_invalid_specs_fail_at_once_with_conditions_only(executor, namespace, sink, aws, custom_objects):
    get = taskaction_getter(custom_objects, namespace)
    condition_run = unique_name("cond")
    condition = taskaction(namespace, aws.bucket, condition_run, "true", actionType="condition")
    for field in ("taskType", "taskTemplate", "inputUri", "runOutputBase"):
        condition["spec"].pop(field)
    condition["spec"]["conditionSpec"] = base64.b64encode(b"\x0a\x00").decode()
    create(custom_objects, condition)

    missing_input, no_container = unique_name("bad"), unique_name("bad")
    body = taskaction(namespace, aws.bucket, missing_input, "true")
    del body["spec"]["inputUri"]
    create(custom_objects, body)
    body = taskaction(namespace, aws.bucket, no_container, "true")
    body["spec"]["taskTemplate"] = template(container=False)
    create(custom_objects, body)

    for run, reason, text in (
        (missing_input, "InvalidSpec", "required spec fields are empty: [inputUri]"),
        (no_container, "PluginNotFound", "no plugin found for task type 'python-task'"),
    ):
        resource = wait_for_phase(get, resource_name(run), ("FAILED", "SUCCEEDED"))
        assert phase_of(resource) == "FAILED"
        assert conditions_by_type(resource) == {"Failed": ("True", reason), "Progressing": ("False", reason)}
        failed = next(c for c in resource["status"]["conditions"] if c["type"] == "Failed")
        assert text in failed["message"]  # the validation error: the only place it is said
        assert "errorState" not in resource["status"] and "attempts" not in resource["status"]
        assert not resource["metadata"].get("finalizers")
        labels = wait_for(
            lambda run=run: get(resource_name(run))["metadata"]["labels"].get("flyte.org/termination-status")
        )
        assert labels == "terminated"
        assert sink.of(run) == []  # no event: reconcileTask writes the conditions and returns

    # A condition has no spec fields of a task: it is Paused (local_stack.executor.conditions),
    # never given the finalizer, and sends no events
    paused = wait_for(
        lambda: conditions_by_type(get(resource_name(condition_run))).get("Progressing") == ("True", "Paused")
    )
    assert paused and not get(resource_name(condition_run))["metadata"].get("finalizers")
    assert sink.of(condition_run) == []


def test_recoverable_failures_are_retried_in_place_then_fail(executor, namespace, sink, aws, custom_objects):
    run = unique_name("retry")
    name = resource_name(run)
    watcher = PhaseWatcher(custom_objects, namespace, name)
    create(
        custom_objects,
        taskaction(
            namespace,
            aws.bucket,
            run,
            "python",
            "-c",
            RECOVERABLE_ERROR,
            "{{.outputPrefix}}",
            "{{.prevCheckpointPrefix}}",
            retries=2,
        ),
    )

    resource = wait_for_phase(taskaction_getter(custom_objects, namespace), name, ("FAILED", "SUCCEEDED"), timeout=30)
    watcher.join()
    attempt = [("QUEUED",), ("INITIALIZING",), ("RUNNING",)]
    # the in-place restart: RUNNING, then Queued of the next attempt; no terminal state between
    assert watcher.seen == [
        *[(*p, 1) for p in attempt],
        *[(*p, 2) for p in attempt],
        *[(*p, 3) for p in attempt], ("FAILED", 3),
    ]  # fmt: skip
    status = resource["status"]
    assert status["attempts"] == 3
    assert conditions_by_type(resource) == {
        "Progressing": ("False", "PermanentFailure"),
        "Failed": ("True", "PermanentFailure"),
    }
    assert status["errorState"] == {"code": "FlakyError", "kind": "USER", "message": "attempt 2"}
    assert [e["phase"] for e in status["phaseHistory"]] == [
        "Queued", "Initializing", "Executing",
        "Queued", "Initializing", "Executing",
        "Queued", "Initializing", "Executing", "PermanentFailure",
    ]  # fmt: skip

    events = sink.of(run)
    per_attempt = [Phase.ACTION_PHASE_QUEUED, Phase.ACTION_PHASE_INITIALIZING, Phase.ACTION_PHASE_RUNNING]
    assert [(e.attempt, e.phase, e.version) for e in events] == [
        *[(number, phase, 0) for number in (1, 2, 3) for phase in per_attempt],
        (3, Phase.ACTION_PHASE_FAILED, 0),
    ]  # no terminal event for the retried attempts
    (failed,) = [e for e in events if e.phase == Phase.ACTION_PHASE_FAILED]
    assert failed.error_info == run_definition_pb2.ErrorInfo(
        message="attempt 2", kind=run_definition_pb2.ErrorInfo.KIND_USER
    )  # toActionErrorInfo: message and kind, no code
    restarted = next(e for e in events if e.attempt == 2 and e.phase == Phase.ACTION_PHASE_QUEUED)
    assert [c.message for c in restarted.cluster_events] == ["restarting task"]
    assert events[-1].outputs.output_uri == f"{output_prefix(namespace, aws.bucket, run, attempt=3)}/outputs.pb"

    first = output_prefix(namespace, aws.bucket, run, attempt=1)
    assert (
        'previous checkpoint ""'
        in executor.log_file(project=PROJECT, domain=DOMAIN, run=run, action="a0", attempt=1).read_text()
    )
    assert (
        f"previous checkpoint {first}/_flytecheckpoints"
        in executor.log_file(project=PROJECT, domain=DOMAIN, run=run, action="a0", attempt=2).read_text()
    )


def test_a_nonzero_exit_without_an_error_document_fails_with_the_log_tail(
    executor, namespace, sink, aws, custom_objects
):
    run = unique_name("exit")
    create(custom_objects, taskaction(namespace, aws.bucket, run, "python", "-c", "print('boom'); raise SystemExit(3)"))

    resource = wait_for_phase(taskaction_getter(custom_objects, namespace), resource_name(run), ("FAILED", "SUCCEEDED"))
    error = resource["status"]["errorState"]
    assert (error["code"], error["kind"]) == ("Error", "USER")
    assert f"[{resource_name(run)}-0] terminated with exit code (3)" in error["message"] and "boom" in error["message"]
    assert sink.phases(run)[-1] == (1, Phase.ACTION_PHASE_FAILED)


def test_deleting_a_running_action_kills_it_and_lets_the_cascade_complete(
    executor, namespace, sink, aws, custom_objects
):
    from kubernetes.client import V1DeleteOptions

    get = taskaction_getter(custom_objects, namespace)
    run = unique_name("abort")
    parent = create(custom_objects, taskaction(namespace, aws.bucket, run, "python", "-c", SLEEP))
    wait_for_phase(get, resource_name(run), ("RUNNING",))
    create(custom_objects, taskaction(namespace, aws.bucket, run, "python", "-c", SLEEP, action="c1", owner=parent))
    wait_for_phase(get, resource_name(run, "c1"), ("RUNNING",))
    pids = {
        action: int(
            wait_for(
                lambda action=action: (
                    executor.log_file(project=PROJECT, domain=DOMAIN, run=run, action=action, attempt=1)
                    .read_text()
                    .strip()
                )
            )
        )
        for action in ("a0", "c1")
    }
    assert get(resource_name(run, "c1"))["metadata"]["finalizers"] == [FINALIZER]

    custom_objects.delete_namespaced_custom_object(
        "flyte.org",
        "v1",
        namespace,
        "taskactions",
        resource_name(run),
        body=V1DeleteOptions(propagation_policy="Background"),
    )

    wait_for(
        lambda: get(resource_name(run)) is None and get(resource_name(run, "c1")) is None,
        timeout=20,
        what="the parent and its child to go",
    )
    for action, pid in pids.items():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert sink.phases(run, action)[-1] == (1, Phase.ACTION_PHASE_ABORTED)


@pytest.fixture
def collector_namespace(kube, custom_objects) -> Iterator[str]:
    yield from _own_namespace(kube, custom_objects)


def test_terminated_actions_are_collected_after_their_ttl(kube, aws, sink, custom_objects, collector_namespace):
    namespace = collector_namespace
    collector, work_dir = _start_executor(kube, namespace, sink, ttl_seconds=0, gc_interval_seconds=0.2)
    try:
        get = taskaction_getter(custom_objects, namespace)
        done, running = unique_name("gc"), unique_name("gc")
        create(custom_objects, taskaction(namespace, aws.bucket, running, "python", "-c", SLEEP))
        wait_for_phase(get, resource_name(running), ("RUNNING",))
        create(custom_objects, taskaction(namespace, aws.bucket, done, "python", "-c", "pass"))

        wait_for(lambda: get(resource_name(done)) is None, timeout=20, what="the terminated action to be collected")
        # an ended resource keeps the finalizer, so its collection is a deletion like any: ABORTED
        assert sink.phases(done)[-2:] == [(1, Phase.ACTION_PHASE_SUCCEEDED), (1, Phase.ACTION_PHASE_ABORTED)]
        assert phase_of(get(resource_name(running))) == "RUNNING"  # only terminated ones are collected
    finally:
        collector.stop()
        shutil.rmtree(work_dir, ignore_errors=True)


def test_deleting_an_action_that_succeeded_sends_aborted_then_releases_it(
    executor, namespace, sink, aws, custom_objects
):
    get = taskaction_getter(custom_objects, namespace)
    run = unique_name("ended")
    create(custom_objects, taskaction(namespace, aws.bucket, run, "python", "-c", "pass"))
    resource = wait_for_phase(get, resource_name(run), ("SUCCEEDED", "FAILED"))
    assert phase_of(resource) == "SUCCEEDED" and resource["metadata"]["finalizers"] == [FINALIZER]

    custom_objects.delete_namespaced_custom_object("flyte.org", "v1", namespace, "taskactions", resource_name(run))

    wait_for(lambda: get(resource_name(run)) is None, timeout=20, what="the deletion to complete")
    aborted = sink.of(run)[-1]
    assert (aborted.attempt, aborted.phase, aborted.version) == (1, Phase.ACTION_PHASE_ABORTED, 0)
    assert [c.message for c in aborted.cluster_events] == ["aborted"]
    assert not aborted.HasField("error_info") and not aborted.HasField("end_time")


def test_events_are_batched_across_actions_and_projects(sink):
    events = ExecutorEventSink(sink.endpoint)
    try:
        run = unique_name("batch")
        threads = [
            threading.Thread(
                target=events.record,
                args=(
                    run_definition_pb2.ActionEvent(
                        id={"run": {"project": project, "domain": DOMAIN, "name": run}, "name": f"a{n}"},
                        attempt=1,
                        phase=Phase.ACTION_PHASE_QUEUED,
                    ),
                ),
            )
            for n, project in enumerate([PROJECT, "other"] * 5)
        ]
        calls_before = len(sink.batches)
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert len([e for e in sink.events if e.id.run.name == run]) == 10
        # all ten queued within the batcher's 25 ms: one Record call, or very few
        assert len(sink.batches) - calls_before <= 2 and max(sink.batches[calls_before:]) >= 5
        assert {e.id.run.project for e in sink.events if e.id.run.name == run} == {PROJECT, "other"}
    finally:
        events.close()


@pytest.fixture
def outage_namespace(kube, custom_objects) -> Iterator[str]:
    yield from _own_namespace(kube, custom_objects)


def test_no_status_is_written_while_events_are_refused_and_none_is_lost_after(
    kube, aws, custom_objects, outage_namespace
):
    """An events endpoint answering 401 (no or a bad token), then 503 (the API down): the executor
    records each event before it writes the status, so no TaskAction gets conditions until the
    endpoint recovers; then every status arrives, each with its event, none lost."""
    namespace = outage_namespace
    refusing = EventSink()
    refusing.refusing = 401
    executor, work_dir = _start_executor(kube, namespace, refusing, ttl_seconds=3600, gc_interval_seconds=60)
    try:
        get = taskaction_getter(custom_objects, namespace)
        runs = [unique_name("outage") for _ in range(3)]
        watchers = {run: PhaseWatcher(custom_objects, namespace, resource_name(run)) for run in runs}
        for run in runs:
            create(custom_objects, taskaction(namespace, aws.bucket, run, "python", "-c", "pass"))
        wait_for(lambda: refusing.refused >= 6, timeout=20, what="the executor to try and be refused")
        time.sleep(1.0)
        refusing.refusing = 503
        seen = refusing.refused
        wait_for(lambda: refusing.refused > seen + 3, timeout=20, what="retries against the 503")
        for run in runs:
            resource = get(resource_name(run))
            assert not (resource.get("status") or {}).get("conditions"), resource.get("status")
            assert resource["metadata"]["finalizers"] == [FINALIZER]  # validated, then waiting on its event
        assert refusing.events == []

        refusing.refusing = None
        for run in runs:
            resource = wait_for_phase(get, resource_name(run), ("SUCCEEDED", "FAILED"), timeout=30)
            assert phase_of(resource) == "SUCCEEDED"
            watchers[run].join()
            assert watchers[run].seen == [("QUEUED", 1), ("INITIALIZING", 1), ("RUNNING", 1), ("SUCCEEDED", 1)]
            assert refusing.phases(run) == [
                (1, Phase.ACTION_PHASE_QUEUED),
                (1, Phase.ACTION_PHASE_INITIALIZING),
                (1, Phase.ACTION_PHASE_RUNNING),
                (1, Phase.ACTION_PHASE_SUCCEEDED),
            ]

        # a deletion while the endpoint refuses: the finalizer stays until the ABORTED is accepted
        refusing.refusing = 503
        custom_objects.delete_namespaced_custom_object(
            "flyte.org", "v1", namespace, "taskactions", resource_name(runs[0])
        )
        seen = refusing.refused
        wait_for(lambda: refusing.refused > seen + 2, timeout=20, what="the abort's event to be refused")
        held = get(resource_name(runs[0]))
        assert held is not None and held["metadata"].get("deletionTimestamp")
        assert held["metadata"]["finalizers"] == [FINALIZER]
        refusing.refusing = None
        wait_for(lambda: get(resource_name(runs[0])) is None, timeout=20, what="the deletion to complete")
        assert refusing.phases(runs[0])[-1] == (1, Phase.ACTION_PHASE_ABORTED)
    finally:
        executor.stop()
        refusing.close()
        shutil.rmtree(work_dir, ignore_errors=True)


def test_tasks_are_forked_from_the_executors_fork_server(executor, namespace, sink, aws, custom_objects):
    get = taskaction_getter(custom_objects, namespace)
    run = unique_name("fork")
    create(custom_objects, taskaction(namespace, aws.bucket, run, "python", "-c", SLEEP))
    wait_for_phase(get, resource_name(run), ("RUNNING",))
    pid = int(
        wait_for(
            lambda: (
                executor.log_file(project=PROJECT, domain=DOMAIN, run=run, action="a0", attempt=1).read_text().strip()
            )
        )
    )
    server = executor._started.launcher.fork_server
    assert server is not None and server._process is not None and server.problem is None
    parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[1])
    assert parent == server._process.pid  # forked by the server, not started by the executor
    assert os.getpgid(pid) == pid and os.getsid(pid) == pid

    custom_objects.delete_namespaced_custom_object("flyte.org", "v1", namespace, "taskactions", resource_name(run))
    wait_for(lambda: get(resource_name(run)) is None, timeout=20, what="the aborted action to go")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert sink.phases(run)[-1] == (1, Phase.ACTION_PHASE_ABORTED)
