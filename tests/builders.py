"""Request builders shared by the tests: the messages a flyte client would send."""

from __future__ import annotations

from flyteidl2.common.identifier_pb2 import ProjectIdentifier, RunIdentifier
from flyteidl2.core import identifier_pb2, literals_pb2, tasks_pb2
from flyteidl2.task import common_pb2, run_pb2, task_definition_pb2
from flyteidl2.workflow import run_definition_pb2
from flyteidl2.workflow.run_service_pb2 import CreateRunRequest

PROJECT = "flytesnacks"
DOMAIN = "development"


def task_spec(
    *, name: str = "hello.main", task_type: str = "python-task", args: tuple[str, ...] = ("pyflyte-execute",)
) -> task_definition_pb2.TaskSpec:
    template = tasks_pb2.TaskTemplate(
        id=identifier_pb2.Identifier(name=name, version="v1"),
        type=task_type,
        container=tasks_pb2.Container(image="python:3.12", args=list(args)),
    )
    return task_definition_pb2.TaskSpec(task_template=template, short_name=name.rsplit(".", 1)[-1])


def integer_inputs(**values: int) -> common_pb2.Inputs:
    return common_pb2.Inputs(
        literals=[
            common_pb2.NamedLiteral(
                name=name,
                value=literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(integer=value))),
            )
            for name, value in values.items()
        ]
    )


def create_run_request(
    run_name: str | None,
    *,
    project: str = PROJECT,
    domain: str = DOMAIN,
    inputs: common_pb2.Inputs | None = None,
    run_spec: run_pb2.RunSpec | None = None,
    spec: task_definition_pb2.TaskSpec | None = None,
) -> CreateRunRequest:
    request = CreateRunRequest(
        task_spec=spec or task_spec(),
        inputs=inputs or integer_inputs(x=21),
        run_spec=run_spec or run_pb2.RunSpec(),
        source=run_definition_pb2.RUN_SOURCE_CLI,
    )
    if run_name is None:
        request.project_id.CopyFrom(ProjectIdentifier(organization="o", name=project, domain=domain))
    else:
        request.run_id.CopyFrom(RunIdentifier(org="o", project=project, domain=domain, name=run_name))
    return request


def child_task_action(
    run_name: str, name: str, *, parent: str = "a0", project: str = PROJECT, domain: str = DOMAIN, spec=None
):
    from flyteidl2.actions import actions_service_pb2 as actions
    from flyteidl2.common.identifier_pb2 import ActionIdentifier
    from flyteidl2.task.task_definition_pb2 import TaskIdentifier

    return actions.EnqueueRequest(
        action=actions.Action(
            action_id=ActionIdentifier(
                run=RunIdentifier(org="o", project=project, domain=domain, name=run_name), name=name
            ),
            parent_action_name=parent,
            input_uri=f"s3://flyte-data/{project}/{domain}/{run_name}/{name}/inputs",
            run_output_base=f"s3://flyte-data/{project}/{domain}/{run_name}/",
            task=run_definition_pb2.TaskAction(
                id=TaskIdentifier(project=project, domain=domain, name="child.task", version="v1"),
                spec=spec or task_spec(name="child.task"),
            ),
        )
    )


def action_id(run_name: str, name: str, *, project: str = PROJECT, domain: str = DOMAIN):
    from flyteidl2.common.identifier_pb2 import ActionIdentifier

    return ActionIdentifier(run=RunIdentifier(org="o", project=project, domain=domain, name=run_name), name=name)


def resource_name(run_name: str, action: str = "a0", *, project: str = PROJECT, domain: str = DOMAIN) -> str:
    """The TaskAction resource of an action (runplane.flyte.identifiers.taskaction_name)."""
    from runplane.flyte.identifiers import ActionKey, taskaction_name

    return taskaction_name(ActionKey(project=project, domain=domain, run=run_name, name=action))
