"""TaskService: deploy, get and list task versions (what `flyte.deploy` and task references use).

A deploy is idempotent per (project, domain, name, version): the same spec again is OK, a
different spec under an existing version is ``already_exists`` (versions are immutable). The
triggers a task declares are deployed with it, through the TriggerService.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flyteidl2.common.identifier_pb2 import TriggerName
from flyteidl2.task import task_definition_pb2 as td
from flyteidl2.task import task_service_pb2 as ts
from flyteidl2.trigger import trigger_definition_pb2 as trd
from flyteidl2.trigger import trigger_service_pb2 as tr

from runplane.connect.errors import Code, ConnectError, already_exists, invalid_argument, not_found
from runplane.identifiers import validate_scope_name
from runplane.pages import PageTokens, page_limit
from runplane.tasks import TaskRecord, TaskStore, task_key


class TaskRegistry:
    def __init__(self, *, tasks: TaskStore, tokens: PageTokens, triggers: Callable[[], Any] | None = None) -> None:
        """``triggers`` gives the TriggerService that deploys the triggers a task declares."""
        self._tasks = tasks
        self._tokens = tokens
        self._triggers = triggers

    def deploy_task(self, request: ts.DeployTaskRequest) -> ts.DeployTaskResponse:
        project, domain, name, version = task_key(request.task_id)
        if not request.spec.task_template.type:
            raise invalid_argument("spec.task_template.type is required")
        if request.triggers and self._triggers is None:
            raise ConnectError(Code.UNIMPLEMENTED, "triggers declared with a task need the trigger service")
        record = TaskRecord(
            project=project,
            domain=domain,
            name=name,
            version=version,
            spec=request.spec.SerializeToString(deterministic=True),
            short_name=request.spec.short_name,
            environment_name=request.spec.environment.name,
        )
        outcome = self._tasks.deploy(record)
        if not outcome.created and outcome.record.spec_digest != record.spec_digest:
            raise already_exists(f"task {name} version {version} already exists with a different spec")
        for trigger in request.triggers:  # Flyte deploys a task's declared triggers with it
            self._triggers().deploy_trigger(
                tr.DeployTriggerRequest(
                    name=TriggerName(project=project, domain=domain, name=trigger.name, task_name=name),
                    spec=trd.TriggerSpec(
                        task_version=version,
                        active=trigger.spec.active,
                        run_spec=trigger.spec.run_spec,
                        inputs=trigger.spec.inputs,
                        description=trigger.spec.description,
                    ),
                    automation_spec=trigger.automation_spec,
                )
            )
        return ts.DeployTaskResponse()

    def get_task_details(self, request: ts.GetTaskDetailsRequest) -> ts.GetTaskDetailsResponse:
        project, domain, name, version = task_key(request.task_id)
        record = self._tasks.get(project=project, domain=domain, name=name, version=version)
        if record is None:
            raise not_found(f"task {name} version {version} not found in {project}/{domain}")
        return ts.GetTaskDetailsResponse(
            details=td.TaskDetails(
                task_id=_identifier(record), metadata=_metadata(record), spec=td.TaskSpec.FromString(record.spec)
            )
        )

    def list_tasks(self, request: ts.ListTasksRequest) -> ts.ListTasksResponse:
        if request.WhichOneof("scope_by") != "project_id":
            raise invalid_argument("a project_id scope is required")
        project = validate_scope_name(request.project_id.name, field="project_id.name")
        domain = validate_scope_name(request.project_id.domain, field="project_id.domain")
        page = request.request
        name_equals, name_contains = None, []
        for item in page.filters:
            if item.field != "name" or item.function not in (item.EQUAL, item.CONTAINS) or len(item.values) != 1:
                raise invalid_argument(
                    f"request.filters: {item.field!r} cannot be filtered on that way; use name EQUAL or CONTAINS"
                )
            if item.function == item.EQUAL:
                name_equals = item.values[0]
            else:
                name_contains.append(item.values[0])
        sorts = list(page.sort_by_fields) or ([page.sort_by] if page.HasField("sort_by") else [])
        for sort in sorts:
            if sort.key != "created_at":
                raise invalid_argument(f"request.sort_by: tasks can be sorted by created_at, not {sort.key!r}")
        descending = bool(sorts) and sorts[0].direction == sorts[0].DESCENDING
        limit = page_limit(page.limit)
        query = f"tasks|{project}|{domain}|{name_equals}|{name_contains}|{descending}"
        position = self._tokens.read(page.token, query=query) or {"offset": 0}
        offset = position.get("offset")
        if not isinstance(offset, int) or offset < 0:
            raise invalid_argument("request.token is malformed")

        records = self._tasks.list(project=project, domain=domain, name=name_equals)
        records = [r for r in records if all(part in r.name for part in name_contains)]
        records.sort(key=lambda r: (r.created_at, r.name, r.version), reverse=descending)
        chunk = records[offset : offset + limit]
        more = offset + limit < len(records)
        token = self._tokens.issue(query=query, position={"offset": offset + limit}) if more else ""
        return ts.ListTasksResponse(
            tasks=[td.Task(task_id=_identifier(r), metadata=_metadata(r)) for r in chunk], token=token
        )


def _identifier(record: TaskRecord) -> td.TaskIdentifier:
    return td.TaskIdentifier(project=record.project, domain=record.domain, name=record.name, version=record.version)


def _metadata(record: TaskRecord) -> td.TaskMetadata:
    metadata = td.TaskMetadata(short_name=record.short_name, environment_name=record.environment_name)
    metadata.deployed_at.FromDatetime(record.created_at)
    return metadata
