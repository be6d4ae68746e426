"""The local executor against the real control plane (Flyte's CRD, the garbage collector) and moto.

TaskActions are written by hand, as reconcile builds them, with task templates that run small
``python -c`` programs. Each module executor watches a namespace of its own, so resources other
tests leave in the shared namespace are never run. ActionEvents go to a tiny HTTP sink here, the
only stand-in: Kubernetes, S3 and the processes are real.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import tempfile
import threading
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

from local_stack.executor import FINALIZER, RECORD_PATH, LocalExecutor
from runplane.flyte.output_paths import action_output_path
from tests.conftest import unique_name, wait_for

pytestmark = pytest.mark.integration

PROJECT = "flytesnacks"
DOMAIN = "development"
Phase = phase_pb2.ActionPhase


# --- the event sink -----------------------------------------------------------------------------


class EventSink:
    """Decodes RecordRequest bodies and keeps their events."""

    def __init__(self) -> None:
        self.events: list[run_definition_pb2.ActionEvent] = []
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
                    sink.events.extend(request.events)
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
        task_environment={"FROM_PLATFORM": "platform-value"},
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
            "name": f"{run}-{action}",
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


def getter(custom_objects, namespace: str):
    from kubernetes.client.exceptions import ApiException

    def get(name: str) -> dict[str, Any] | None:
        try:
            return custom_objects.get_namespaced_custom_object("flyte.org", "v1", namespace, "taskactions", name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    return get


def wait_for_phase(get, name: str, phases: tuple[str, ...], timeout: float = 20) -> dict[str, Any]:
    return wait_for(
        lambda: (r := get(name)) and phase_of(r) in phases and r, timeout=timeout, what=f"{name} in {phases}"
    )


def output_prefix(namespace: str, bucket: str, run: str, action: str = "a0", attempt: int = 1) -> str:
    return action_output_path(
        namespace=namespace,
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
             "FLYTE_INTERNAL_EXECUTION_DOMAIN", "FLYTE_ATTEMPT_NUMBER", "FROM_PLATFORM", "FROM_RUN"):
    print(name, os.environ.get(name))
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
    name = f"{run}-a0"
    watcher = PhaseWatcher(custom_objects, namespace, name)
    body = taskaction(
        namespace, aws.bucket, run,
        "python", "-c", WRITE_OUTPUTS, "{{.outputPrefix}}", "{{.input}}", "{{ .RawOutputDataPrefix }}",
        "{{.checkpointOutputPrefix}}", "{{.prevCheckpointPrefix}}", "{{.runName}}", "{{.actionName}}",
        envVars={"FROM_RUN": "run-value", "ACTION_NAME": "cannot-override"},
    )  # fmt: skip
    create(custom_objects, body)

    resource = wait_for_phase(getter(custom_objects, namespace), name, ("SUCCEEDED", "FAILED"))
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
            (r := getter(custom_objects, namespace)(name))["metadata"]["labels"].get("flyte.org/completed-time") and r
        )
    )["metadata"]["labels"]
    assert labels["flyte.org/termination-status"] == "terminated"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d\.\d\d-\d\d", labels["flyte.org/completed-time"])

    prefix = output_prefix(namespace, aws.bucket, run)
    key = prefix[len(f"s3://{aws.bucket}/") :]
    boto3.client("s3").head_object(Bucket=aws.bucket, Key=f"{key}/outputs.pb")  # {{.outputPrefix}} was the attempt's

    events = sink.of(run)
    assert [(e.attempt, e.phase, e.version) for e in events] == [
        (1, Phase.ACTION_PHASE_QUEUED, 0),
        (1, Phase.ACTION_PHASE_INITIALIZING, 1),
        (1, Phase.ACTION_PHASE_RUNNING, 2),
        (1, Phase.ACTION_PHASE_SUCCEEDED, 3),
    ]
    done = events[-1]
    assert (done.id.run.project, done.id.run.domain, done.id.run.name, done.id.name) == (PROJECT, DOMAIN, run, "a0")
    assert done.outputs.output_uri == f"{prefix}/outputs.pb"
    assert done.outputs.report_uri == f"{prefix}/report.html"
    assert done.HasField("end_time") and done.HasField("reported_time") and not done.HasField("error_info")
    assert done.start_time == events[0].updated_time

    log = executor.log_file(run=run, action="a0", attempt=1).read_text()
    inputs = f"s3://{aws.bucket}/{PROJECT}/{DOMAIN}/{run}/inputs/0123abcd/inputs.pb"
    assert f'args {inputs} {prefix} {prefix}/_flytecheckpoints "" {run} a0' in log
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


def test_invalid_specs_fail_at_once_without_a_finalizer(executor, namespace, sink, aws, custom_objects):
    get = getter(custom_objects, namespace)
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
        resource = wait_for_phase(get, f"{run}-a0", ("FAILED", "SUCCEEDED"))
        assert phase_of(resource) == "FAILED"
        assert conditions_by_type(resource) == {"Failed": ("True", reason), "Progressing": ("False", reason)}
        assert resource["status"]["errorState"]["code"] == reason
        assert text in resource["status"]["errorState"]["message"]
        assert not resource["metadata"].get("finalizers")
        labels = wait_for(lambda run=run: get(f"{run}-a0")["metadata"]["labels"].get("flyte.org/termination-status"))
        assert labels == "terminated"
        (event,) = sink.of(run)
        assert (event.attempt, event.phase, event.error_info.code) == (1, Phase.ACTION_PHASE_FAILED, reason)

    untouched = get(f"{condition_run}-a0")  # seen before the two above, and left alone
    assert not untouched.get("status") and not untouched["metadata"].get("finalizers")
    assert sink.of(condition_run) == []


def test_recoverable_failures_are_retried_in_place_then_fail(executor, namespace, sink, aws, custom_objects):
    run = unique_name("retry")
    name = f"{run}-a0"
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

    resource = wait_for_phase(getter(custom_objects, namespace), name, ("FAILED", "SUCCEEDED"), timeout=30)
    watcher.join()
    attempt = [("QUEUED",), ("INITIALIZING",), ("RUNNING",)]
    assert watcher.seen == [
        *[(*p, 1) for p in attempt], ("UNSPECIFIED", 1),  # Progressing/RetryableFailure
        *[(*p, 2) for p in attempt], ("UNSPECIFIED", 2),
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
        "Queued", "Initializing", "Executing", "RetryableFailure",
        "Queued", "Initializing", "Executing", "RetryableFailure",
        "Queued", "Initializing", "Executing", "PermanentFailure",
    ]  # fmt: skip

    events = sink.of(run)
    per_attempt = [
        Phase.ACTION_PHASE_QUEUED,
        Phase.ACTION_PHASE_INITIALIZING,
        Phase.ACTION_PHASE_RUNNING,
        Phase.ACTION_PHASE_FAILED,
    ]
    assert [(e.attempt, e.phase, e.version) for e in events] == [
        (number, phase, version) for number in (1, 2, 3) for version, phase in enumerate(per_attempt)
    ]
    failed = [e for e in events if e.phase == Phase.ACTION_PHASE_FAILED]
    assert [(e.error_info.code, e.error_info.message, e.error_info.kind) for e in failed] == [
        ("FlakyError", f"attempt {n}", run_definition_pb2.ErrorInfo.KIND_USER) for n in range(3)
    ]
    restarted = next(e for e in events if e.attempt == 2 and e.phase == Phase.ACTION_PHASE_QUEUED)
    assert [c.message for c in restarted.cluster_events] == ["restarting task"]
    assert events[-1].outputs.output_uri == f"{output_prefix(namespace, aws.bucket, run, attempt=3)}/outputs.pb"

    first = output_prefix(namespace, aws.bucket, run, attempt=1)
    assert 'previous checkpoint ""' in executor.log_file(run=run, action="a0", attempt=1).read_text()
    assert (
        f"previous checkpoint {first}/_flytecheckpoints"
        in executor.log_file(run=run, action="a0", attempt=2).read_text()
    )


def test_a_nonzero_exit_without_an_error_document_fails_with_the_log_tail(
    executor, namespace, sink, aws, custom_objects
):
    run = unique_name("exit")
    create(custom_objects, taskaction(namespace, aws.bucket, run, "python", "-c", "print('boom'); raise SystemExit(3)"))

    resource = wait_for_phase(getter(custom_objects, namespace), f"{run}-a0", ("FAILED", "SUCCEEDED"))
    error = resource["status"]["errorState"]
    assert (error["code"], error["kind"]) == ("Error", "USER")
    assert f"[{run}-a0-0] terminated with exit code (3)" in error["message"] and "boom" in error["message"]
    assert sink.phases(run)[-1] == (1, Phase.ACTION_PHASE_FAILED)


def test_deleting_a_running_action_kills_it_and_lets_the_cascade_complete(
    executor, namespace, sink, aws, custom_objects
):
    from kubernetes.client import V1DeleteOptions

    get = getter(custom_objects, namespace)
    run = unique_name("abort")
    parent = create(custom_objects, taskaction(namespace, aws.bucket, run, "python", "-c", SLEEP))
    wait_for_phase(get, f"{run}-a0", ("RUNNING",))
    create(custom_objects, taskaction(namespace, aws.bucket, run, "python", "-c", SLEEP, action="c1", owner=parent))
    wait_for_phase(get, f"{run}-c1", ("RUNNING",))
    pids = {
        action: int(
            wait_for(lambda action=action: executor.log_file(run=run, action=action, attempt=1).read_text().strip())
        )
        for action in ("a0", "c1")
    }
    assert get(f"{run}-c1")["metadata"]["finalizers"] == [FINALIZER]

    custom_objects.delete_namespaced_custom_object(
        "flyte.org", "v1", namespace, "taskactions", f"{run}-a0", body=V1DeleteOptions(propagation_policy="Background")
    )

    wait_for(
        lambda: get(f"{run}-a0") is None and get(f"{run}-c1") is None, timeout=20, what="the parent and its child to go"
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
        get = getter(custom_objects, namespace)
        done, running = unique_name("gc"), unique_name("gc")
        create(custom_objects, taskaction(namespace, aws.bucket, running, "python", "-c", SLEEP))
        wait_for_phase(get, f"{running}-a0", ("RUNNING",))
        create(custom_objects, taskaction(namespace, aws.bucket, done, "python", "-c", "pass"))

        wait_for(lambda: get(f"{done}-a0") is None, timeout=20, what="the terminated action to be collected")
        assert sink.phases(done)[-1] == (1, Phase.ACTION_PHASE_SUCCEEDED)  # no ABORTED for an ended action
        assert phase_of(get(f"{running}-a0")) == "RUNNING"  # only terminated ones are collected
    finally:
        collector.stop()
        shutil.rmtree(work_dir, ignore_errors=True)
