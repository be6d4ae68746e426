"""TaskService: deploy, get and list task versions (what `flyte.deploy` and task references use).

A deploy is idempotent per (project, domain, name, version): the same spec again is OK, a
different spec under an existing version is ``already_exists`` (versions are immutable). The
triggers a task declares are deployed with it, through the TriggerService.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING

from flyteidl2.common import list_pb2
from flyteidl2.common.identifier_pb2 import TriggerName
from flyteidl2.task import common_pb2
from flyteidl2.task import task_definition_pb2 as td
from flyteidl2.task import task_service_pb2 as ts
from flyteidl2.trigger import trigger_definition_pb2 as trd
from flyteidl2.trigger import trigger_service_pb2 as tr

from functions.task_registry.listings import TASKS, TaskRow
from runplane.connect.errors import Code, ConnectError, already_exists, invalid_argument, not_found
from runplane.connect.listing import list_page
from runplane.connect.pages import PageTokens
from runplane.flyte.identifiers import validate_scope_name
from runplane.table.tasks import TaskRecord, TaskStore, task_key

if TYPE_CHECKING:
    from functions.task_registry.trigger_service import TriggerService
    from functions.task_registry.triggers import TriggerRecord, TriggerStore


class TaskRegistry:
    def __init__(
        self,
        *,
        tasks: TaskStore,
        tokens: PageTokens,
        triggers: Callable[[], TriggerService] | None = None,
        trigger_items: TriggerStore | None = None,
    ) -> None:
        """``triggers`` gives the TriggerService that deploys the triggers a task declares;
        ``trigger_items`` the triggers listings summarise per task version (none without it)."""
        self._tasks = tasks
        self._tokens = tokens
        self._triggers = triggers
        self._trigger_items = trigger_items

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
            env_description=request.spec.environment.description,
            short_description=request.spec.documentation.short_description,
        )
        outcome = self._tasks.deploy(record)
        if not outcome.created and outcome.record.spec_digest != record.spec_digest:
            raise already_exists(f"task {name} version {version} already exists with a different spec")
        for trigger in request.triggers:  # Flyte deploys a task's declared triggers with it
            assert self._triggers is not None  # checked before the deploy
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
        """The latest version of each task of a project among the versions that pass the filters,
        with Flyte's filters, sorts and defaults (``listings.TASKS``)."""
        scope = request.WhichOneof("scope_by")
        if scope != "project_id":
            # Flyte lists every project's tasks without a project (or for an org): a read of every
            # project's partition here, refused as ListRuns refuses it (docs/flyte-compat.md#q11-org-scope).
            raise invalid_argument(f"scope {scope or 'none'} is not supported: list the tasks of a project_id")
        project = validate_scope_name(request.project_id.name, field="project_id.name")
        domain = validate_scope_name(request.project_id.domain, field="project_id.domain")
        deployed_by = [
            known.deployed_by for known in request.known_filters if known.WhichOneof("filter_by") == "deployed_by"
        ]
        known = TASKS.predicates(
            list_pb2.Filter(function=list_pb2.Filter.EQUAL, field="deployed_by", values=[who]) for who in deployed_by
        )
        totals: dict[str, int] = {}

        def rows() -> list[TaskRow]:
            every = self._rows(project=project, domain=domain)
            totals["total"] = len({row.record.name for row in every})
            tests = [*known, *TASKS.predicates(request.request.filters)]
            return _latest_per_name([row for row in every if all(test(row) for test in tests)])

        page = list_page(
            TASKS, request.request, rows, tokens=self._tokens, scope=f"tasks|{project}|{domain}|{deployed_by}"
        )
        return ts.ListTasksResponse(
            tasks=[_task(row) for row in page.rows],
            token=page.token,
            metadata=ts.ListTasksResponse.ListTasksMetadata(total=totals.get("total", 0), filtered_total=page.matched),
        )

    def _rows(self, *, project: str, domain: str) -> list[TaskRow]:
        """Every version of the project's tasks with the triggers attached to it."""
        attached: dict[tuple[str, str], list[TriggerRecord]] = defaultdict(list)
        if self._trigger_items is not None:
            for trigger in self._trigger_items.list(project=project, domain=domain):
                attached[(trigger.task_name, trigger.task_version)].append(trigger)
        return [
            TaskRow(record=record, triggers=attached[(record.name, record.version)])
            for record in self._tasks.list(project=project, domain=domain)
        ]


def _identifier(record: TaskRecord) -> td.TaskIdentifier:
    return td.TaskIdentifier(project=record.project, domain=record.domain, name=record.name, version=record.version)


def _latest_per_name(rows: list[TaskRow]) -> list[TaskRow]:
    """Flyte's ``ROW_NUMBER() OVER (PARTITION BY project, domain, name ORDER BY created_at DESC) = 1``."""
    latest: dict[str, TaskRow] = {}
    for row in rows:
        current = latest.get(row.record.name)
        if current is None or row.record.created_at > current.record.created_at:
            latest[row.record.name] = row
    return list(latest.values())


def _task(row: TaskRow) -> td.Task:
    metadata = _metadata(row.record)
    if row.triggers:  # Flyte's taskTriggersSummaryFromModel
        sole = row.sole_trigger
        if sole is not None:
            metadata.triggers_summary.details.CopyFrom(
                td.TaskTriggersSummary.TriggerDetails(
                    name=sole.name,
                    active=sole.active,
                    automation_spec=common_pb2.TriggerAutomationSpec.FromString(sole.automation_spec),
                )
            )
        else:
            metadata.triggers_summary.stats.CopyFrom(
                td.TaskTriggersSummary.TriggerStats(total=len(row.triggers), active=row.active_triggers)
            )
    return td.Task(task_id=_identifier(row.record), metadata=metadata, task_summary=td.TaskSummary())


def _metadata(record: TaskRecord) -> td.TaskMetadata:
    metadata = td.TaskMetadata(
        short_name=record.short_name,
        environment_name=record.environment_name,
        short_description=record.short_description,
    )
    metadata.deployed_at.FromDatetime(record.created_at)
    return metadata
