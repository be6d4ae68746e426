"""The local executor's pure pieces, read against Flyte's Go code: the template renderer, the task
environment, the ErrorInfo of an event (no servers)."""

from __future__ import annotations

import os
from pathlib import Path

from flyteidl2.core import tasks_pb2
from flyteidl2.workflow import run_definition_pb2

from local_stack.executor import AttemptPaths, Failure, render, task_environment_of, template_values

SPEC = {
    "project": "p",
    "domain": "d",
    "runName": "r1",
    "actionName": "a0",
    "inputUri": "s3://b/p/d/r1/inputs/abc",
    "runOutputBase": "s3://b/p/d/r1/",
    "envVars": {"FROM_RUN": "yes", "RUN_NAME": "cannot-override"},
}


def _values() -> dict[str, str]:
    paths = AttemptPaths.of(namespace="flyte", spec=SPEC, attempt=1)
    return template_values(namespace="flyte", spec=SPEC, paths=paths, unique_key="r1-a0-0")


def test_the_renderer_knows_flytes_variables_only():
    rendered = render(["{{.outputPrefix}}", "{{ .Namespace }}", "{{.runName}}", "{{.actionName}}"], _values())
    assert rendered[0].startswith("s3://b/") and rendered[1] == "flyte"
    assert rendered[2:] == ["{{.runName}}", "{{.actionName}}"]  # template.go has no such variables


def test_the_task_gets_flytes_variables_and_of_the_host_only_path_and_home(monkeypatch):
    monkeypatch.setenv("HOST_SECRET", "leaked")
    template = tasks_pb2.TaskTemplate(container=tasks_pb2.Container(env=[{"key": "FROM_TEMPLATE", "value": "t"}]))
    environment = task_environment_of(
        spec=SPEC,
        template=template,
        attempt=2,
        pod_name="r1-a0-1",
        platform={"PLATFORM": "x"},
        bin_dir=Path("/venv/bin"),
    )
    assert "HOST_SECRET" not in environment
    assert environment["PATH"].split(os.pathsep)[0] == "/venv/bin"
    assert environment["HOSTNAME"] == "r1-a0-1"
    assert (environment["FROM_TEMPLATE"], environment["PLATFORM"], environment["FROM_RUN"]) == ("t", "x", "yes")
    assert (environment["RUN_NAME"], environment["ACTION_NAME"], environment["FLYTE_ATTEMPT_NUMBER"]) == (
        "r1",
        "a0",
        "1",
    )
    host = {name for name in environment if name not in ("PATH", "HOME", "HOSTNAME")}
    assert all(name.startswith(("FLYTE_", "_U_", "_F_")) or name in ("RUN_NAME", "ACTION_NAME") or name in
               ("FROM_TEMPLATE", "PLATFORM", "FROM_RUN") for name in host), host  # fmt: skip


def test_an_events_error_info_is_message_and_kind_only():
    info = Failure("FlakyError", "it broke", kind="SYSTEM").error_info()
    assert info == run_definition_pb2.ErrorInfo(message="it broke", kind=run_definition_pb2.ErrorInfo.KIND_SYSTEM)
    assert Failure("X", "m", kind="").error_info().kind == run_definition_pb2.ErrorInfo.KIND_UNSPECIFIED
