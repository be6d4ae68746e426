"""Lambda entry point of task_registry: API Gateway HTTP API -> TaskService, TriggerService and
ProjectService (the registry-like items: deployed tasks, triggers, projects).

Thin by design: the procedures it serves, then ``service`` does the work.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from flyteidl2.project import project_service_pb2 as pj
from flyteidl2.task import task_service_pb2 as ts
from flyteidl2.trigger import trigger_service_pb2 as tr

from functions.task_registry.projects import ProjectService
from functions.task_registry.service import TaskRegistry
from functions.task_registry.trigger_service import TriggerService
from functions.task_registry.triggers import Schedules, ScheduleTarget, TriggerStore
from runplane.aws.blobs import BlobStore
from runplane.connect.apigateway import handle_http_event
from runplane.connect.pages import PageTokens
from runplane.connect.router import ConnectRouter, Procedures
from runplane.ops.logs import function_logger
from runplane.ops.metrics import function_metrics
from runplane.ops.settings import api_settings, page_token_secret, project_settings, scheduler_settings
from runplane.table.actions import ActionStore
from runplane.table.projects import ProjectStore
from runplane.table.tasks import TaskStore

logger = function_logger("task_registry")
metrics = function_metrics("task_registry")  # EMF lines, written as each invocation ends

TASKS = "/flyteidl2.task.TaskService"
TRIGGERS = "/flyteidl2.trigger.TriggerService"
PROJECTS = "/flyteidl2.project.ProjectService"

router = ConnectRouter()


@cache
def registry() -> TaskRegistry:
    """Built on the first request of a container and reused by every later one."""
    settings = api_settings()
    store = ActionStore(
        table_name=settings.actions_table, blobs=BlobStore(), spec_prefix=settings.effective_storage_prefix
    )
    return TaskRegistry(
        tasks=TaskStore(store),
        tokens=PageTokens(secret=page_token_secret()),
        triggers=trigger_service,
        trigger_items=TriggerStore(store),
    )


PROCEDURES: Procedures[TaskRegistry] = {
    f"{TASKS}/DeployTask": (ts.DeployTaskRequest, TaskRegistry.deploy_task),
    f"{TASKS}/GetTaskDetails": (ts.GetTaskDetailsRequest, TaskRegistry.get_task_details),
    f"{TASKS}/ListTasks": (ts.ListTasksRequest, TaskRegistry.list_tasks),
}
router.mount(PROCEDURES, registry)


@cache
def trigger_service() -> TriggerService:
    settings, scheduler = api_settings(), scheduler_settings()
    store = ActionStore(table_name=settings.actions_table)
    target = ScheduleTarget(
        function_arn=scheduler.create_run_arn,
        role_arn=scheduler.role_arn,
        dead_letter_arn=scheduler.dead_letter_arn,
        group=scheduler.group,
    )
    return TriggerService(
        triggers=TriggerStore(store), schedules=Schedules(target), tokens=PageTokens(secret=page_token_secret())
    )


TRIGGER_PROCEDURES: Procedures[TriggerService] = {
    f"{TRIGGERS}/DeployTrigger": (tr.DeployTriggerRequest, TriggerService.deploy_trigger),
    f"{TRIGGERS}/GetTriggerDetails": (tr.GetTriggerDetailsRequest, TriggerService.get_trigger_details),
    f"{TRIGGERS}/UpdateTriggers": (tr.UpdateTriggersRequest, TriggerService.update_triggers),
    f"{TRIGGERS}/DeleteTriggers": (tr.DeleteTriggersRequest, TriggerService.delete_triggers),
    f"{TRIGGERS}/ListTriggers": (tr.ListTriggersRequest, TriggerService.list_triggers),
}
router.mount(TRIGGER_PROCEDURES, trigger_service)


@cache
def project_service() -> ProjectService:
    settings, projects = api_settings(), project_settings()
    return ProjectService(
        projects=ProjectStore(ActionStore(table_name=settings.actions_table), seeds=projects.seed_projects),
        domains=projects.domains,
        tokens=PageTokens(secret=page_token_secret()),
    )


PROJECT_PROCEDURES: Procedures[ProjectService] = {
    f"{PROJECTS}/CreateProject": (pj.CreateProjectRequest, ProjectService.create_project),
    f"{PROJECTS}/UpdateProject": (pj.UpdateProjectRequest, ProjectService.update_project),
    f"{PROJECTS}/GetProject": (pj.GetProjectRequest, ProjectService.get_project),
    f"{PROJECTS}/ListProjects": (pj.ListProjectsRequest, ProjectService.list_projects),
}
router.mount(PROJECT_PROCEDURES, project_service)


@metrics.flush_after
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_http_event(router, event)
