"""The control plane's metrics (runplane.ops.metrics: EMF lines through Powertools) and what each log
line is about (runplane.ops.logs: the request id, the run and the action)."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import pytest
from flyteidl2.workflow import internal_run_service_pb2 as internal

from local_stack.lambda_runtime import LambdaContext
from runplane.connect.codec import HttpRequest
from runplane.connect.router import ConnectRouter
from runplane.ops import metrics
from runplane.ops.logs import bind, function_logger
from runplane.ops.metrics import FunctionMetrics, function_metrics
from tests.builders import action_id


@pytest.fixture(autouse=True)
def emf_enabled(monkeypatch):
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "FlyteServerless/test-stack")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "INFO")  # the local stack's fixture sets WARNING


def emf_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]


def values(line: dict[str, Any]) -> dict[str, float]:
    """Each metric's value on the line (Powertools writes a list of values; counts are one sum)."""
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    found = {}
    for metric in directive["Metrics"]:
        (value,) = line[metric["Name"]]
        found[metric["Name"]] = value
    return found


def test_counts_are_summed_and_written_as_one_emf_line_per_dimension_set(capsys):
    recorder = FunctionMetrics("reconcile")
    recorder.count(metrics.ACTIONS_MATERIALISED)
    recorder.count(metrics.ACTIONS_MATERIALISED, value=2)
    recorder.count(metrics.RECONCILE_OUTCOMES, Outcome="created")
    recorder.count(metrics.RECONCILE_OUTCOMES, value=4, Outcome="retried")
    recorder.flush()

    lines = emf_lines(capsys.readouterr().out)
    assert len(lines) == 3
    by_dimensions = {tuple(sorted(line["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0])): [] for line in lines}
    for line in lines:
        (directive,) = line["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "FlyteServerless/test-stack"
        assert line["service"] == "reconcile"
        assert all(m["Unit"] == "Count" for m in directive["Metrics"])
        by_dimensions[tuple(sorted(directive["Dimensions"][0]))].append(line)
    (plain,) = by_dimensions[("service",)]
    assert values(plain) == {"ActionsMaterialised": 3.0}
    outcomes = {line["Outcome"]: values(line) for line in by_dimensions[("Outcome", "service")]}
    assert outcomes == {"created": {"ReconcileOutcomes": 1.0}, "retried": {"ReconcileOutcomes": 4.0}}

    recorder.flush()  # nothing counted since: nothing written
    assert emf_lines(capsys.readouterr().out) == []


def test_counts_from_many_threads_are_never_lost(capsys):
    recorder = FunctionMetrics("reconcile")

    def count_many() -> None:
        for _ in range(1000):
            recorder.count(metrics.RECONCILE_OUTCOMES, Outcome="created")

    threads = [threading.Thread(target=count_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    recorder.flush()
    (line,) = emf_lines(capsys.readouterr().out)
    assert values(line) == {"ReconcileOutcomes": 8000.0}


def test_a_long_invocation_writes_its_counts_every_minute(capsys):
    now = [0.0]
    recorder = FunctionMetrics("mirror_status", clock=lambda: now[0])
    recorder.count(metrics.STATUS_UPDATES_APPLIED)
    assert emf_lines(capsys.readouterr().out) == []
    now[0] = metrics.FLUSH_INTERVAL_SECONDS + 1
    recorder.count(metrics.STATUS_UPDATES_APPLIED)
    (line,) = emf_lines(capsys.readouterr().out)
    assert values(line) == {"StatusUpdatesApplied": 2.0}
    assert recorder.pending() == {}


def test_flush_after_writes_the_counts_even_when_the_handler_raises(capsys):
    recorder = FunctionMetrics("create_run")

    @recorder.flush_after
    def handler(event: dict[str, Any], context: Any) -> None:
        recorder.count(metrics.RUNS_CREATED, Source="schedule")
        raise RuntimeError("the tick failed")

    with pytest.raises(RuntimeError):
        handler({}, None)
    (line,) = emf_lines(capsys.readouterr().out)
    assert values(line) == {"RunsCreated": 1.0} and line["Source"] == "schedule"


def test_metrics_disabled_write_nothing(capsys, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    recorder = FunctionMetrics("create_run")
    recorder.count(metrics.RUNS_CREATED, Source="api")
    recorder.flush()
    assert emf_lines(capsys.readouterr().out) == []


def _invoke(handler: Any, event: dict[str, Any]) -> Any:
    return handler(event, LambdaContext(function_name="test", aws_request_id="req-1234"))


def test_connect_errors_are_counted_by_code_for_the_function_serving_the_call_and_lines_carry_the_ids(capsys):
    service = f"test_{uuid.uuid4().hex[:8]}"
    logger = function_logger(service)  # created here: it writes to the captured stdout
    recorder = function_metrics(service)
    router = ConnectRouter()

    @router.unary("/flyteidl2.workflow.InternalRunService/UpdateActionStatus", internal.UpdateActionStatusRequest)
    def update(request: internal.UpdateActionStatusRequest) -> internal.UpdateActionStatusResponse:
        logger.info("updating")
        raise RuntimeError("boom")  # an unexpected failure: answered as internal, and counted

    @recorder.flush_after
    @logger.inject_lambda_context(clear_state=True)
    def handler(event: dict[str, Any], context: Any) -> Any:
        return router.dispatch(event["request"])

    from google.protobuf import json_format

    body = json_format.MessageToJson(
        internal.UpdateActionStatusRequest(action_id=action_id("run1", "c1", project="p", domain="d"))
    ).encode()
    headers = {"content-type": "application/json"}
    for path in ("/flyteidl2.workflow.InternalRunService/UpdateActionStatus", "/nope.Service/Missing"):
        request = HttpRequest(method="POST", path=path, headers=headers, body=body)
        _invoke(handler, {"request": request})

    output = capsys.readouterr().out
    codes = {line["Code"]: values(line) for line in emf_lines(output) if line["service"] == service}
    assert codes == {"internal": {"ConnectErrors": 1.0}, "unimplemented": {"ConnectErrors": 1.0}}
    logged = [json.loads(line) for line in output.splitlines() if line.startswith("{") and '"_aws"' not in line]
    (updating,) = [line for line in logged if line["message"] == "updating"]
    assert updating["function_request_id"] == "req-1234"
    assert updating["run"] == "p/d/run1" and updating["action"] == "p/d/run1/c1"
    (unhandled,) = [line for line in logged if line["message"].startswith("unhandled error")]
    assert unhandled["action"] == "p/d/run1/c1" and unhandled["service"] == service  # the shared layer's line too


def test_keys_are_per_thread_and_reset_by_the_next_invocation(capsys):
    service = f"test_{uuid.uuid4().hex[:8]}"
    logger = function_logger(service)

    @logger.inject_lambda_context(clear_state=True)
    def handler(event: dict[str, Any], context: Any) -> None:
        if event.get("bind"):
            bind(run="p/d/r", action="p/d/r/a0")
            other = threading.Thread(target=lambda: logger.info("other thread"))
            other.start()
            other.join()
        logger.info("line")

    _invoke(handler, {"bind": True})
    _invoke(handler, {})
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    other_thread, bound, next_invocation = (line for line in lines if line["message"] in ("line", "other thread"))
    assert other_thread["message"] == "other thread" and "run" not in other_thread  # the binding thread's only
    assert bound["run"] == "p/d/r" and bound["action"] == "p/d/r/a0"
    assert "run" not in next_invocation and "action" not in next_invocation


# The console serves static files only: API Gateway's own metrics count its requests and errors,
# and it stays free of the Powertools import for a cold start of a few milliseconds.
UNMETERED_FUNCTIONS = frozenset({"ConsoleFunction"})


def test_every_function_writes_its_metrics_when_an_invocation_ends():
    import importlib

    from local_stack.template import functions

    for name, resource in functions().items():
        if name in UNMETERED_FUNCTIONS:
            continue
        stream_entry = (resource.get("Metadata") or {}).get("LocalStreamEntry")
        if stream_entry:  # a web server under the Lambda Web Adapter: each stream flushes its own
            stream = importlib.import_module(stream_entry.rpartition(".")[0])
            assert stream.metrics.service == stream.__name__.split(".")[1], name
            continue
        module = importlib.import_module(resource["Properties"]["Handler"].rpartition(".")[0])
        folder = module.__name__.split(".")[1]
        assert module.metrics.service == folder, name  # the metrics carry the function as `service`
        assert module.handler.__code__.co_name == "flushing", f"{name}: handler not wrapped by flush_after"
