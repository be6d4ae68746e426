"""Lambda entry point of task_registry: API Gateway HTTP API -> TaskService.

Thin by design: the procedures it serves, then ``service`` does the work.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from flyteidl2.task import task_service_pb2 as ts

from runplane.pages import PageTokens
from functions.task_registry.service import TaskRegistry
from runplane.blobs import BlobStore
from runplane.connect.apigateway import handle_http_event
from runplane.connect.router import ConnectRouter
from runplane.settings import api_settings
from runplane.store import ActionStore
from runplane.tasks import TaskStore

logger = Logger(service="task_registry")
copy_config_to_registered_loggers(source_logger=logger, include={"runplane", "functions"})

TASKS = "/flyteidl2.task.TaskService"

router = ConnectRouter()


@cache
def registry() -> TaskRegistry:
    """Built on the first request of a container and reused by every later one."""
    settings = api_settings()
    store = ActionStore(table_name=settings.actions_table, blobs=BlobStore(), spec_prefix=settings.effective_storage_prefix)
    return TaskRegistry(tasks=TaskStore(store), tokens=PageTokens(secret=settings.actions_table.encode()))


PROCEDURES = {
    f"{TASKS}/DeployTask": (ts.DeployTaskRequest, TaskRegistry.deploy_task),
    f"{TASKS}/GetTaskDetails": (ts.GetTaskDetailsRequest, TaskRegistry.get_task_details),
    f"{TASKS}/ListTasks": (ts.ListTasksRequest, TaskRegistry.list_tasks),
}
router.mount(PROCEDURES, registry)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_http_event(router, event)
