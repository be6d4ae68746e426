"""Lambda entry point of task_registry: API Gateway HTTP API -> TaskService and TriggerService.

Thin by design: the procedures it serves, then ``service`` does the work.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from flyteidl2.task import task_service_pb2 as ts
from flyteidl2.trigger import trigger_service_pb2 as tr

from functions.task_registry.service import TaskRegistry
from functions.task_registry.trigger_service import TriggerService
from functions.task_registry.triggers import Schedules, ScheduleTarget, TriggerStore
from runplane.blobs import BlobStore
from runplane.connect.apigateway import handle_http_event
from runplane.connect.router import ConnectRouter
from runplane.logs import function_logger
from runplane.pages import PageTokens
from runplane.settings import api_settings, scheduler_settings
from runplane.store import ActionStore
from runplane.tasks import TaskStore

logger = function_logger("task_registry")

TASKS = "/flyteidl2.task.TaskService"
TRIGGERS = "/flyteidl2.trigger.TriggerService"

router = ConnectRouter()


@cache
def registry() -> TaskRegistry:
    """Built on the first request of a container and reused by every later one."""
    settings = api_settings()
    store = ActionStore(
        table_name=settings.actions_table, blobs=BlobStore(), spec_prefix=settings.effective_storage_prefix
    )
    return TaskRegistry(
        tasks=TaskStore(store), tokens=PageTokens(secret=settings.actions_table.encode()), triggers=trigger_service
    )


PROCEDURES = {
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
    return TriggerService(triggers=TriggerStore(store), schedules=Schedules(target))


TRIGGER_PROCEDURES = {
    f"{TRIGGERS}/DeployTrigger": (tr.DeployTriggerRequest, TriggerService.deploy_trigger),
    f"{TRIGGERS}/GetTriggerDetails": (tr.GetTriggerDetailsRequest, TriggerService.get_trigger_details),
    f"{TRIGGERS}/UpdateTriggers": (tr.UpdateTriggersRequest, TriggerService.update_triggers),
    f"{TRIGGERS}/DeleteTriggers": (tr.DeleteTriggersRequest, TriggerService.delete_triggers),
    f"{TRIGGERS}/ListTriggers": (tr.ListTriggersRequest, TriggerService.list_triggers),
}
router.mount(TRIGGER_PROCEDURES, trigger_service)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_http_event(router, event)
