"""How an action record becomes a TaskAction body (Flyte's actions service, §4.1-4.3)."""

import base64
from datetime import UTC, datetime

from flyteidl2.core.tasks_pb2 import TaskTemplate
from flyteidl2.task import run_pb2
from flyteidl2.workflow import run_definition_pb2 as wf
from google.protobuf import wrappers_pb2

from functions.reconcile.taskaction import build_taskaction, input_directory, substitute_run_start_time
from runplane.flyte.identifiers import ActionKey, taskaction_name
from runplane.kube.resources import identity_of
from runplane.table.records import ActionRecord
from tests.builders import task_spec


def root_record(*, run_spec=None, args=("pyflyte-execute",)):
    run_spec = run_spec or run_pb2.RunSpec()
    spec = wf.ActionSpec(
        input_uri="s3://bucket/p/d/r1/inputs/abc/inputs.pb",
        run_output_base="s3://bucket/p/d/r1/",
        run_spec=run_spec,
        task=wf.TaskAction(spec=task_spec(args=args)),
    )
    return ActionRecord(
        key=ActionKey(project="p", domain="d", run="r1", name="a0"),
        action_spec=spec.SerializeToString(),
        run_spec=run_spec.SerializeToString(),
    )


def test_root_taskaction_has_flytes_name_labels_and_spec():
    body = build_taskaction(root_record(), namespace="flyte")
    assert body["apiVersion"] == "flyte.org/v1" and body["kind"] == "TaskAction"
    assert (
        body["metadata"]["name"] == taskaction_name(ActionKey("p", "d", "r1", "a0"))
        and body["metadata"]["namespace"] == "flyte"
    )
    assert body["metadata"]["labels"] == {
        "flyte.org/project": "p",
        "flyte.org/domain": "d",
        "flyte.org/run": "r1",
        "flyte.org/action": "a0",
        "flyte.org/action-type": "task",
        "flyte.org/is-root": "true",
        "runplane/mirror-shard": "0",
        "app.kubernetes.io/managed-by": "runplane",
    }
    spec = body["spec"]
    assert spec["inputUri"] == "s3://bucket/p/d/r1/inputs/abc"  # the directory: the executor adds inputs.pb
    assert spec["runOutputBase"] == "s3://bucket/p/d/r1/"
    assert spec["taskType"] == "python-task" and spec["shortName"] == "main"
    template = TaskTemplate.FromString(base64.b64decode(spec["taskTemplate"]))
    assert template.id.name == "hello.main"
    assert "parentActionName" not in spec and "envVars" not in spec and "interruptible" not in spec


def test_resources_are_labelled_with_their_runs_mirror_shard():
    from runplane.kube.resources import mirror_shard

    shards = {
        build_taskaction(root_record(), namespace="flyte", mirror_shards=8)["metadata"]["labels"][
            "runplane/mirror-shard"
        ]
    }
    assert shards == {str(mirror_shard("r1", shards=8))}
    assert {mirror_shard(f"r{i}", shards=8) for i in range(200)} == set(range(8))  # spread over every shard


def test_run_spec_is_projected_without_overriding_flyte_labels():
    run_spec = run_pb2.RunSpec(
        envs=run_pb2.Envs(values=[{"key": "A", "value": "1"}]),
        interruptible=wrappers_pb2.BoolValue(value=False),
        labels=run_pb2.Labels(values={"team": "ml", "flyte.org/run": "hijack"}),
        annotations=run_pb2.Annotations(values={"note": "x"}),
    )
    body = build_taskaction(root_record(run_spec=run_spec), namespace="flyte")
    assert body["spec"]["envVars"] == {"A": "1"}
    assert body["spec"]["interruptible"] is False  # set explicitly, so projected even when false
    assert body["metadata"]["labels"]["team"] == "ml"
    assert body["metadata"]["labels"]["flyte.org/run"] == "r1"
    assert body["metadata"]["annotations"] == {"note": "x"}


def test_run_start_time_placeholder_is_rendered_in_container_args():
    run_spec = run_pb2.RunSpec()
    run_spec.run_start_time.FromDatetime(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    record = root_record(run_spec=run_spec, args=("run", "--at={{.runStartTime}}"))
    template = TaskTemplate.FromString(
        base64.b64decode(build_taskaction(record, namespace="f")["spec"]["taskTemplate"])
    )
    assert list(template.container.args) == ["run", "--at=2026-01-02T03:04:05Z"]


def test_run_start_time_substitution_is_a_no_op_without_time_or_placeholder():
    template = task_spec(args=("a", "{{.runStartTime}}")).task_template
    assert substitute_run_start_time(template, run_pb2.RunSpec()) is template


def test_identity_and_input_directory_helpers():
    body = build_taskaction(root_record(), namespace="flyte")
    assert identity_of(body) == ("p", "d", "r1", "a0")
    assert input_directory("s3://b/x/inputs.pb") == "s3://b/x" and input_directory("s3://b/x") == "s3://b/x"


def child_record(*, condition=None):
    spec = wf.ActionSpec(
        parent_action_name="a0",
        input_uri="s3://bucket/p/d/r1/b1/inputs",
        run_output_base="s3://bucket/p/d/r1/",
        task=wf.TaskAction(spec=task_spec(name="child.task")) if condition is None else None,
        condition=condition,
    )
    return ActionRecord(
        key=ActionKey(project="p", domain="d", run="r1", name="b1"), parent="a0", action_spec=spec.SerializeToString()
    )


PARENT = {
    "metadata": {
        "name": "r1-a0",
        "uid": "4c8e4d4a-0000-4000-8000-000000000001",
        "labels": {
            "flyte.org/run": "r1",
            "flyte.org/action": "a0",
            "team": "ml",
            "flyte.org/termination-status": "terminated",
        },
        "annotations": {"note": "from-parent"},
    },
    "spec": {"envVars": {"A": "1"}, "interruptible": True},
}


def test_a_child_has_exactly_one_owner_reference_to_its_parent():
    body = build_taskaction(child_record(), namespace="flyte", parent=PARENT)
    assert body["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "flyte.org/v1",
            "kind": "TaskAction",
            "name": "r1-a0",
            "uid": PARENT["metadata"]["uid"],
            "blockOwnerDeletion": True,
        }
    ]
    assert (
        body["metadata"]["name"] == taskaction_name(ActionKey("p", "d", "r1", "b1"))
        and body["spec"]["parentActionName"] == "a0"
    )
    assert body["metadata"]["labels"]["flyte.org/is-root"] == "false"


def test_a_task_child_inherits_the_run_context_from_its_parent():
    body = build_taskaction(child_record(), namespace="flyte", parent=PARENT)
    assert body["spec"]["envVars"] == {"A": "1"} and body["spec"]["interruptible"] is True
    labels = body["metadata"]["labels"]
    assert labels["team"] == "ml" and labels["flyte.org/action"] == "b1" and labels["flyte.org/run"] == "r1"
    assert "flyte.org/termination-status" not in labels  # the parent's state is not the child's
    assert body["metadata"]["annotations"] == {"note": "from-parent"}


def test_a_condition_carries_its_spec_and_no_template():
    condition = wf.ConditionAction(name="approve")
    body = build_taskaction(child_record(condition=condition), namespace="flyte", parent=PARENT)
    assert (
        body["spec"]["actionType"] == "condition" and body["metadata"]["labels"]["flyte.org/action-type"] == "condition"
    )
    assert wf.ConditionAction.FromString(base64.b64decode(body["spec"]["conditionSpec"])) == condition
    assert "taskTemplate" not in body["spec"] and "envVars" not in body["spec"]


def test_a_child_without_its_parents_resource_is_a_programming_error():
    import pytest

    with pytest.raises(ValueError):
        build_taskaction(child_record(), namespace="flyte")
