"""Lambda entry point of update_action: API Gateway HTTP API -> writes to existing runs.

Thin by design: the procedures it serves, then ``service`` does the work.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from flyteidl2.actions import actions_service_pb2 as actions
from flyteidl2.workflow import internal_run_service_pb2 as internal
from flyteidl2.workflow import run_service_pb2 as runs

from functions.update_action.service import ActionLifecycleService
from runplane.blobs import BlobStore
from runplane.connect.apigateway import handle_http_event
from runplane.connect.router import ConnectRouter
from runplane.settings import api_settings
from runplane.store import ActionStore

logger = Logger(service="update_action")
copy_config_to_registered_loggers(source_logger=logger, include={"runplane", "functions"})

ACTIONS = "/flyteidl2.actions.ActionsService"
INTERNAL = "/flyteidl2.workflow.InternalRunService"
RUNS = "/flyteidl2.workflow.RunService"

router = ConnectRouter()


@cache
def lifecycle() -> ActionLifecycleService:
    """Built on the first request of a container and reused by every later one."""
    settings = api_settings()
    store = ActionStore(
        table_name=settings.actions_table, blobs=BlobStore(), spec_prefix=settings.effective_storage_prefix
    )
    return ActionLifecycleService(store=store)


# procedure -> (request message, service method)
PROCEDURES = {
    f"{ACTIONS}/Enqueue": (actions.EnqueueRequest, ActionLifecycleService.enqueue),
    f"{ACTIONS}/Update": (actions.UpdateRequest, ActionLifecycleService.update),
    f"{ACTIONS}/Abort": (actions.AbortRequest, ActionLifecycleService.abort),
    f"{INTERNAL}/RecordAction": (internal.RecordActionRequest, ActionLifecycleService.record_action),
    f"{INTERNAL}/UpdateActionStatus": (internal.UpdateActionStatusRequest, ActionLifecycleService.update_action_status),
    f"{INTERNAL}/RecordActionEvents": (internal.RecordActionEventsRequest, ActionLifecycleService.record_action_events),
    f"{RUNS}/AbortRun": (runs.AbortRunRequest, ActionLifecycleService.abort_run),
    f"{RUNS}/AbortAction": (runs.AbortActionRequest, ActionLifecycleService.abort_action),
}
router.mount(PROCEDURES, lifecycle)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_http_event(router, event)
